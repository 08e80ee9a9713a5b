//! The Parquet artifacts read back outside this project: pyarrow checks types, row counts
//! and provenance, and the models are checked against scikit-learn, numpy and gensim on the
//! same files (CI installs them; see `.ci/run`).

use std::process::Command;

use crate::support::{stderr, Project};

#[test]
fn pyarrow_reads_every_ingest_artifact() {
    let p = Project::new(
        r#"
[stages.source]
kind = "synthetic_fma"
tracks = 200

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]
"#,
    );
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    python_check(&p, "check_parquet.py");
}

#[test]
fn pca_lsi_and_lda_match_scikit_learn_numpy_and_gensim() {
    let p = Project::new(
        r#"
[stages.source]
kind = "synthetic_fma"
tracks = 1500

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.standardize]
kind = "standardize"
inputs = ["ingest:features", "ingest:tracks"]

[stages.pca]
kind = "pca"
inputs = ["standardize:zscore"]

[stages.lsi]
kind = "lsi"
inputs = ["ingest:labels_genres_all"]

[stages.lda]
kind = "lda"
inputs = ["ingest:labels_genres_all"]
passes = 3
"#,
    );
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    python_check(&p, "check_models.py");
}

/// Runs `tests/interop/SCRIPT OUTPUTS_DIR` and fails with its output unless it succeeds.
fn python_check(p: &Project, script: &str) {
    let script = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let check = Command::new(python)
        .arg(&script)
        .arg(p.file("outputs"))
        .output()
        .expect("python3 must be installed (see .ci/run)");
    assert!(
        check.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The popularity stage of the default pipeline (its own metadata query) on 3000 tracks,
/// checked against scikit-learn: the same ridge fit, the metrics recomputed from the
/// predictions, and the trees beside `HistGradientBoostingRegressor` on the same features
/// and split.
#[test]
fn popularity_matches_scikit_learn() {
    let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipeline.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let p = Project::new(&config.replace("tracks = 8000", "tracks = 3000"));
    let out = p.pipeline(&["run", "popularity"]);
    assert!(out.status.success(), "{}", stderr(&out));
    python_check(&p, "check_popularity.py");
}
