//! The whole default pipeline on small data, its report opened in headless Chromium
//! (installed by `.ci/run`), and `pipeline metrics`.

use std::process::Command;

use crate::support::{stderr, stdout, Project};

fn small_default_pipeline() -> String {
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipeline.toml")).unwrap();
    config
        .replace("tracks = 8000", "tracks = 1500")
        .replace("kind = \"lda\"", "kind = \"lda\"\npasses = 2")
        .replace("kind = \"classifier\"", "kind = \"classifier\"\nepochs = 2")
        .replace(
            "kind = \"autoencoder\"",
            "kind = \"autoencoder\"\nepochs = 2",
        )
        .replace(
            "kind = \"encoded_classifier\"",
            "kind = \"encoded_classifier\"\nepochs = 2",
        )
        .replace(
            "kind = \"balanced_classifier\"",
            "kind = \"balanced_classifier\"\nepochs = 2",
        )
}

#[test]
fn the_report_renders_every_figure_offline_and_metrics_diff() {
    let p = Project::new(&small_default_pipeline());
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = p.read("outputs/report/index.html");
    // Nothing in the page points outside it.
    for needle in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "url(http",
        "@import",
    ] {
        assert!(
            !html.contains(needle),
            "the report must not load anything ({needle})"
        );
    }
    assert!(html.contains("Content-Security-Policy"));
    // Each model beside itself on the other split, never beside another model.
    for (random, fma) in [
        ("knn_full", "knn_full_fma"),
        ("knn_pca", "knn_pca_fma"),
        ("classifier", "classifier_fma"),
        ("encoded_classifier", "encoded_classifier_fma"),
    ] {
        let row = html
            .split("<tr>")
            .find(|row| row.contains(&format!("({random})</td>")))
            .unwrap_or_else(|| panic!("no split comparison row for {random}"));
        assert!(
            row.contains(&format!("({fma})</td>")),
            "{random} paired wrongly: {row}"
        );
    }
    for section in [
        "PCA of the audio features",
        "LSI of the genre space",
        "LDA topics",
        "k-NN genre prediction: knn_full",
        "k-NN genre prediction: knn_topics",
        "k-NN genre prediction: knn_full_fma",
        "Neural network: classifier_fma",
        "Balanced per-genre classifiers: balanced_linear",
        "Balanced per-genre classifiers: balanced_mlp",
        "Popularity: popularity",
        "Random split against artist-disjoint split",
    ] {
        assert!(html.contains(section), "missing section {section}");
    }

    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let dom = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!(
            "file://{}",
            p.file("outputs/report/index.html").display()
        ))
        .output()
        .expect("chromium must be installed (see .ci/run)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let body = dom.split("<body").nth(1).unwrap_or_default();
    let attr = |name: &str| -> usize {
        body.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let total = attr("data-figures-total");
    assert!(
        total >= 14,
        "expected every figure in the page, found {total}"
    );
    assert_eq!(
        attr("data-figures-rendered"),
        total,
        "some figures did not render"
    );

    let metrics = p.pipeline(&["metrics"]);
    assert!(metrics.status.success(), "{}", stderr(&metrics));
    assert!(
        stdout(&metrics).contains("\nknn_full                knn                  best k "),
        "{}",
        stdout(&metrics)
    );
    let all = p.pipeline(&["metrics", "--all"]);
    assert!(stdout(&all).contains("knn_full.jaccard_mean[1] "));
    let evaluate: serde_json::Value =
        serde_json::from_str(&p.read("outputs/evaluate/metrics.json")).unwrap();
    for stage in ["knn_full", "knn_pca", "knn_topics"] {
        assert_eq!(
            evaluate[stage]["jaccard_mean"].as_array().unwrap().len(),
            10
        );
        assert_eq!(evaluate[stage]["jaccard_std"].as_array().unwrap().len(), 10);
        assert!(evaluate[stage]["k_best"].as_u64().unwrap() >= 1);
    }
    let mut other = evaluate.clone();
    other["knn_full"]["k_best"] = serde_json::json!(99);
    p.write("other.json", serde_json::to_string(&other).unwrap());
    let diff = p.pipeline(&["metrics", "--all", "--diff", "other.json"]);
    let text = stdout(&diff);
    assert!(text.contains("knn_full.k_best"), "{text}");
    assert!(text.contains("1 of "), "{text}");
    let diff = p.pipeline(&["metrics", "--diff", "other.json"]);
    let text = stdout(&diff);
    assert!(text.contains("knn_full: best k "), "{text}");
}

#[test]
fn neural_stages_are_reproducible_byte_for_byte() {
    let config = r#"
[stages.source]
kind = "synthetic_fma"
tracks = 400

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.standardize]
kind = "standardize"
inputs = ["ingest:features", "ingest:tracks"]

[stages.classifier]
kind = "classifier"
inputs = ["standardize:minmax", "ingest:labels_genres_all"]
epochs = 2
hidden = [64, 32]

[stages.autoencoder]
kind = "autoencoder"
inputs = ["standardize:minmax"]
epochs = 2
encoder = [64, 16]

[stages.encoded_classifier]
kind = "encoded_classifier"
inputs = ["standardize:minmax", "ingest:labels_genres_all", "autoencoder:encoder"]
epochs = 2
hidden = [32]
"#;
    let p = Project::new(config);
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = [
        "outputs/classifier/weights.safetensors",
        "outputs/classifier/metrics.json",
        "outputs/autoencoder/encoder.safetensors",
        "outputs/autoencoder/metrics.json",
        "outputs/encoded_classifier/weights.safetensors",
        "outputs/encoded_classifier/metrics.json",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(p.file(f)).unwrap())
        .collect();
    let again = p.pipeline(&[
        "run",
        "--force",
        "-j",
        "1",
        "classifier",
        "autoencoder",
        "encoded_classifier",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).matches("ran").count() >= 3,
        "{}",
        stdout(&again)
    );
    for (file, bytes) in files.iter().zip(before) {
        assert_eq!(
            std::fs::read(p.file(file)).unwrap(),
            bytes,
            "{file} changed between identical runs"
        );
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&p.read("outputs/autoencoder/metrics.json")).unwrap();
    assert!(metrics["r2"].as_f64().unwrap().is_finite());
    let metrics: serde_json::Value =
        serde_json::from_str(&p.read("outputs/classifier/metrics.json")).unwrap();
    assert_eq!(
        metrics["jaccard_by_threshold"].as_array().unwrap().len(),
        50
    );
    // The weights load as safetensors with the architecture in the metadata.
    let (tensors, meta) =
        stages::io::safetensors::read(&p.file("outputs/classifier/weights.safetensors")).unwrap();
    assert_eq!(tensors["dense_0.weight"].shape, vec![64, 518]);
    assert!(meta["architecture"].contains("relu"));
    assert_eq!(meta["pipeline.stage"], "classifier");
}
