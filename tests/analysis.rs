//! The analysis' open questions end to end: popularity, balanced per-genre classifiers and
//! the artist-disjoint split, on small synthetic data; same bytes whatever the thread count.

use crate::support::{stderr, Project};

const CONFIG: &str = r#"
[stages.source]
kind = "synthetic_fma"
tracks = 1200

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.standardize]
kind = "standardize"
inputs = ["ingest:features", "ingest:tracks"]

[stages.metadata]
kind = "sql"
inputs = ["ingest:tracks"]
query = """
SELECT track_id, "track.duration", "album.type", "artist.bio" IS NOT NULL AS has_bio,
       "track.date_created" - "album.date_released" AS album_age,
       "track.favorites", "track.comments", "track.interest"
FROM tracks
"""

[stages.popularity]
kind = "popularity"
inputs = ["standardize:zscore", "metadata:table", "ingest:tracks"]

[stages.balanced]
kind = "balanced_classifier"
inputs = ["standardize:minmax", "ingest:labels_genres_all", "ingest:tracks"]
model = "mlp"
hidden = [32]
epochs = 2

[stages.classifier_fma]
kind = "classifier"
inputs = ["standardize:minmax", "ingest:labels_genres_all", "ingest:tracks"]
split = "fma"
hidden = [128]
epochs = 2
"#;

// classifier_fma's first layer (32 x 518 x 128 at batch 32, 2^21 multiply-adds) is over the
// size at which the GEMMs go parallel, so one thread against the default pool checks the
// parallel training too; the balanced MLP's (32 x 518 x 32) stays under it.
const OUTPUTS: [&str; 8] = [
    "outputs/popularity/predictions.parquet",
    "outputs/popularity/importances.parquet",
    "outputs/popularity/metrics.json",
    "outputs/balanced/weights.safetensors",
    "outputs/balanced/per_genre.parquet",
    "outputs/balanced/metrics.json",
    "outputs/classifier_fma/metrics.json",
    "outputs/classifier_fma/weights.safetensors",
];

#[test]
fn the_open_questions_are_answered_and_reproducible_across_thread_counts() {
    let p = Project::new(CONFIG);
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let metrics = |stage: &str| -> serde_json::Value {
        serde_json::from_str(&p.read(&format!("outputs/{stage}/metrics.json")))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let popularity = metrics("popularity");
    assert_eq!(popularity["kind"], "popularity");
    assert_eq!(popularity["split"], "fma");
    for set in ["audio", "audio+metadata", "audio+engagement"] {
        for model in ["mean", "ridge", "trees"] {
            let m = &popularity["models"][format!("{set}/{model}")];
            assert_eq!(m["features"], set);
            assert_eq!(m["model"], model);
            // Spearman and the AUC are null where a model predicts a constant (the mean, or
            // trees whose best round on validation is none).
            assert!(
                m["r2"].is_number() && m["mae"].is_number(),
                "{set}/{model}: {m}"
            );
            for key in ["spearman", "top10_auc"] {
                assert!(m.get(key).is_some(), "{set}/{model} {key}: {m}");
            }
        }
    }
    // Engagement (favorites follow listens in the synthetic archive) explains far more than
    // audio does.
    let r2 = |name: &str| {
        popularity["models"][name]["r2"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    assert!(
        r2("audio+engagement/trees") > r2("audio/trees") + 0.2,
        "{popularity}"
    );

    let balanced = metrics("balanced");
    assert_eq!(balanced["kind"], "balanced_classifier");
    assert_eq!(balanced["split"], "fma");
    for key in [
        "macro_f1",
        "macro_f1_unbalanced",
        "micro_f1",
        "micro_f1_unbalanced",
    ] {
        assert!(balanced[key].is_number(), "{key}: {balanced}");
    }
    // Class weights and tuned thresholds find more of the rare genres.
    assert!(
        balanced["macro_recall"].as_f64() > balanced["macro_recall_unbalanced"].as_f64(),
        "{balanced}"
    );
    let classifier = metrics("classifier_fma");
    assert_eq!(classifier["split"], "fma");
    assert_eq!(classifier["threshold_tuned_on"], "the validation set");

    // The synthetic archive splits by artist, as the real one does.
    let tracks = stages::io::table_columns::read_columns(
        &p.file("outputs/ingest/tracks.parquet"),
        Some(&["artist.id", "set.split"]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (
        stages::io::table_columns::Values::Number(artists),
        stages::io::table_columns::Values::Text(sets),
    ) = (&tracks.columns[0].1, &tracks.columns[1].1)
    else {
        panic!("artist.id and set.split columns");
    };
    let mut set_of: std::collections::HashMap<u64, &Option<String>> =
        std::collections::HashMap::new();
    for (artist, set) in artists.iter().zip(sets) {
        let first = set_of.entry(artist.to_bits()).or_insert(set);
        assert_eq!(*first, set, "artist {artist} is in two sets");
    }

    let before: Vec<Vec<u8>> = OUTPUTS
        .iter()
        .map(|f| std::fs::read(p.file(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let again = p
        .command(&["run", "--force", "popularity", "balanced", "classifier_fma"])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.status.success(), "{}", stderr(&again));
    for (file, bytes) in OUTPUTS.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(p.file(file)).unwrap_or_else(|e| panic!("{file}: {e}")),
            bytes,
            "{file} differs with one thread"
        );
    }
}
