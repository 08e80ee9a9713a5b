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
    for section in [
        "PCA of the audio features",
        "LSI of the genre space",
        "LDA topics",
        "k-NN genre prediction: knn_full",
        "k-NN genre prediction: knn_topics",
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
    assert!(stdout(&metrics).contains("knn_full.jaccard_mean[1]"));
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
    let diff = p.pipeline(&["metrics", "--diff", "other.json"]);
    let text = stdout(&diff);
    assert!(text.contains("knn_full.k_best"), "{text}");
    assert!(text.contains("1 of "), "{text}");
}
