//! The Parquet artifacts read back outside this project: pyarrow checks types, row counts
//! and provenance (CI installs pyarrow; see `.ci/run`).

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
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/check_parquet.py"
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let check = Command::new(python)
        .arg(script)
        .arg(p.file("outputs"))
        .output()
        .expect("python3 must be installed (see .ci/run)");
    assert!(
        check.status.success(),
        "pyarrow check failed:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
