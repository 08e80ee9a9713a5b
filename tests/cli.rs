//! The binary end to end on the real stage kinds (small synthetic data).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{stderr, stdout, Project};

const SMALL: &str = r#"
[stages.source]
kind = "synthetic_fma"
tracks = 60
seed = 7

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]
"#;

#[test]
fn run_then_status_with_the_json_contract() {
    let p = Project::new(SMALL);
    let out = p.pipeline(&["run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], true);
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages[0]["stage"], "source");
    assert_eq!(stages[0]["outcome"], "ran");
    assert!(stages[1]["seconds"].is_number());

    let out = p.pipeline(&["status", "--json"]);
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status[1]["stage"], "ingest");
    assert_eq!(status[1]["kind"], "ingest");
    assert_eq!(status[1]["state"], "up-to-date");
    assert_eq!(status[1]["reasons"], Value::Array(vec![]));

    p.write("pipeline.toml", SMALL.replace("seed = 7", "seed = 8"));
    let out = p.pipeline(&["status"]);
    assert_eq!(
        stdout(&out),
        "source  stale: param `seed` changed: 7 -> 8\ningest  stale: upstream `source` is stale\n"
    );
    let out = p.pipeline(&["run", "--json", "source"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["stages"].as_array().unwrap().len(), 1);
    assert!(
        stderr(&out).contains("note: downstream stages left stale: ingest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_of_a_fresh_project_says_never_run() {
    let p = Project::new(SMALL);
    let out = p.pipeline(&["status", "--json"]);
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status[0]["state"], "never-run");
    assert_eq!(status[1]["state"], "never-run");
}

#[test]
fn dry_run_agrees_with_the_run() {
    let p = Project::new(SMALL);
    p.pipeline(&["run"]);
    p.write(
        "pipeline.toml",
        SMALL.replace("kind = \"ingest\"", "kind = \"ingest\"\nfloat64 = true"),
    );
    let dry = p.pipeline(&["run", "--dry-run", "--json"]);
    let plan: Value = serde_json::from_str(&stdout(&dry)).unwrap();
    assert_eq!(plan["stages"][0]["action"], "up-to-date");
    assert_eq!(plan["stages"][1]["action"], "run");
    assert_eq!(
        plan["stages"][1]["reasons"][0],
        "param `float64` changed: false -> true"
    );
    let out = p.pipeline(&["run", "--json"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["stages"][0]["outcome"], "up-to-date");
    assert_eq!(report["stages"][1]["outcome"], "ran");
}

#[test]
fn inspect_shows_schema_and_provenance() {
    let p = Project::new(SMALL);
    p.pipeline(&["run"]);
    let out = p.pipeline(&["inspect", "outputs/ingest/features.parquet"]);
    let text = stdout(&out);
    assert!(text.contains("rows:       60"), "{text}");
    assert!(text.contains("columns:    519"), "{text}");
    assert!(text.contains("mfcc.mean.01"), "{text}");
    assert!(text.contains("pipeline.stage = ingest"), "{text}");
    assert!(text.contains("pipeline.kind = ingest"), "{text}");
    assert!(
        text.contains("pipeline.params = {\"float64\":false}"),
        "{text}"
    );
    let lock: Value = serde_json::from_str(&p.read("pipeline.lock")).unwrap();
    let key = lock["stages"]["ingest"]["key"].as_str().unwrap();
    assert!(text.contains(&format!("pipeline.key = {key}")), "{text}");
}

#[test]
fn dag_prints_text_dot_and_mermaid() {
    let p = Project::new(SMALL);
    assert_eq!(
        stdout(&p.pipeline(&["dag"])),
        "source  (synthetic_fma)\ningest  (ingest) <- source\n"
    );
    assert_eq!(
        stdout(&p.pipeline(&["dag", "--format", "dot"])),
        concat!(
            "digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n",
            "  \"source\" [label=\"source\\n(synthetic_fma)\"];\n",
            "  \"ingest\" [label=\"ingest\\n(ingest)\"];\n",
            "  \"source\" -> \"ingest\";\n}\n"
        )
    );
    assert_eq!(
        stdout(&p.pipeline(&["dag", "--format", "mermaid"])),
        concat!(
            "flowchart LR\n  source[\"source<br/>(synthetic_fma)\"]\n",
            "  ingest[\"ingest<br/>(ingest)\"]\n  source --> ingest\n"
        )
    );
}

#[test]
fn exit_codes_distinguish_usage_from_stage_failure() {
    let p = Project::new(SMALL);
    assert_eq!(p.pipeline(&["run", "nosuch"]).status.code(), Some(2));
    assert_eq!(
        stderr(&p.pipeline(&["run", "ingestt"])),
        "error: no stage named `ingestt` in pipeline.toml; did you mean `ingest`?\n"
    );
    let broken = r#"
[stages.source]
kind = "fma_files"
dir = "fma"

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]
"#;
    let q = Project::new(broken);
    q.write("fma/features.csv", "not,a,features,file\n");
    q.write("fma/tracks.csv", "x\n");
    q.write(
        "fma/genres.csv",
        "genre_id,#tracks,parent,title,top_level\n1,1,0,Rock,1\n",
    );
    let out = q.command(&["run", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "error: stage `ingest` failed: fma/tracks.csv:1: header line 1 has 1 fields, expected 53\n"
    );
    assert!(!q.file("outputs/ingest").exists());
    assert_eq!(p.pipeline(&["--version"]).status.code(), Some(0));
}

#[test]
fn a_second_run_waits_for_the_lock() {
    let slow = SMALL.replace("tracks = 60", "tracks = 6000");
    let p = Project::new(&slow);
    let mut first = p.command(&["run", "source"]).spawn().unwrap();
    // Give the first run time to take the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.file("cache/tmp").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = p.pipeline(&["run", "source"]);
    assert!(first.wait().unwrap().success());
    assert!(second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("waiting for lock on cache/lock (held by another pipeline run)"),
        "{err}"
    );
    // The second run found the first one's result.
    assert!(
        stdout(&second).contains("up to date"),
        "{}",
        stdout(&second)
    );
    // status needs no lock: it answers during a run too.
    let mut third = p.command(&["run", "--force", "source"]).spawn().unwrap();
    let status = p.pipeline(&["status"]);
    assert!(status.status.success());
    third.wait().unwrap();
}

#[test]
fn sigkill_mid_stage_leaves_nothing_half_written_and_the_next_run_recovers() {
    let big = SMALL.replace("tracks = 60", "tracks = 30000");
    let p = Project::new(&big);
    let mut child = p.command(&["run"]).spawn().unwrap();
    // Wait until the source stage is writing its large output, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(20);
    let staged = loop {
        let entries: Vec<_> = std::fs::read_dir(p.file("cache/tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let writing = entries.iter().find(|d| {
            std::fs::metadata(d.join("features.csv"))
                .map(|m| m.len() > 1_000_000)
                .unwrap_or(false)
        });
        if let Some(dir) = writing {
            break dir.clone();
        }
        assert!(Instant::now() < deadline, "stage never started writing");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        staged.exists(),
        "the staging folder is where the partial file lives"
    );
    assert!(!p.file("outputs/source/features.csv").exists());
    let manifests = std::fs::read_dir(p.file("cache/manifests"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(manifests, 0);

    let out = p.pipeline(&["run", "source"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!staged.exists(), "leftovers are cleaned by the next run");
    let features = p.read("outputs/source/features.csv");
    assert_eq!(features.lines().count(), 30004);
}

#[test]
fn ctrl_c_stops_cleanly_and_the_next_run_carries_on() {
    let p = Project::new(&SMALL.replace("tracks = 60", "tracks = 20000"));
    let child = p
        .command(&["run", "-j", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p
        .file("cache/tmp")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the run never started a stage");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["stages"][1]["outcome"], "skipped");
    assert!(!p.file("outputs/ingest").exists());
    let again = p.pipeline(&["run", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let report: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(report["stages"][1]["outcome"], "ran");
}

#[test]
fn set_overrides_a_parameter_for_one_command_and_status_agrees() {
    let p = Project::new(SMALL);
    assert!(p
        .pipeline(&["run", "--set", "source.seed=9"])
        .status
        .success());
    let out = p.pipeline(&["status", "--set", "source.seed=9"]);
    assert_eq!(stdout(&out), "source  up to date\ningest  up to date\n");
    let out = p.pipeline(&["status"]);
    assert_eq!(
        stdout(&out),
        "source  stale: param `seed` changed: 9 -> 7\ningest  stale: upstream `source` is stale\n"
    );
    // Floats read as written, in reasons and in provenance.
    let q = Project::new(&format!(
        "{SMALL}\n[stages.standardize]\nkind = \"standardize\"\ninputs = [\"ingest:features\", \"ingest:tracks\"]\n\n[stages.classifier]\nkind = \"classifier\"\ninputs = [\"standardize:minmax\", \"ingest:labels_genres_all\"]\nepochs = 1\nhidden = [8]\n"
    ));
    assert!(q.pipeline(&["run"]).status.success());
    let out = q.pipeline(&["status", "classifier", "--set", "classifier.dropout=0.3"]);
    assert_eq!(
        stdout(&out),
        "classifier  stale: param `dropout` changed: 0.2 -> 0.3\n"
    );
}

#[test]
fn show_prints_the_first_rows_and_du_the_footprint() {
    let p = Project::new(SMALL);
    assert!(p.pipeline(&["run"]).status.success());
    let out = p.pipeline(&[
        "show",
        "ingest:genres",
        "--head",
        "2",
        "--columns",
        "genre_id,title,parent",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "genre_id  title          parent\n1         Avant-Garde    38\n2         International  0\n(2 of 163 rows; 2 more columns, choose with --columns)\n"
    );
    let out = p.pipeline(&["show", "ingest:genres", "--head", "1", "--json"]);
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"genre_id": 1, "#tracks": 4, "parent": 38, "title": "Avant-Garde", "top_level": 38}])
    );
    let out = p.pipeline(&["show", "ingest:genres", "--columns", "titel"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: `outputs/ingest/genres.parquet` has no column `titel`; did you mean `title`?\n"
    );
    let out = p.pipeline(&["show", "source:genres"]);
    assert_eq!(
        stderr(&out),
        "error: `source:genres` is `genres.csv`, not a Parquet table\n"
    );

    let out = p.pipeline(&["du", "--json"]);
    let usage: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(usage["stages"][1]["stage"], "ingest");
    assert_eq!(usage["stages"][1]["cached_results"], 1);
    assert!(usage["stages"][1]["output_bytes"].as_u64().unwrap() > 10_000);
    assert_eq!(usage["collectable_bytes"], 0);
    assert!(stdout(&p.pipeline(&["du"]))
        .starts_with("stage   results       cache     outputs\nsource        1"));
}

#[test]
fn on_a_terminal_the_run_draws_a_live_view_and_in_ci_plain_lines() {
    let p = Project::new(&SMALL.replace("tracks = 60", "tracks = 3000"));
    // `script` gives the run a terminal; what it drew lands in the typescript.
    let typescript = p.file("typescript");
    let command = format!("{} run", env!("CARGO_BIN_EXE_pipeline"));
    let out = std::process::Command::new("script")
        .args(["-qefc", &command])
        .arg(&typescript)
        .current_dir(p.path())
        .output()
        .expect("script(1) from util-linux runs the pipeline on a pseudo-terminal");
    assert!(out.status.success(), "{}", stderr(&out));
    let drawn = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(drawn.contains("finished 0 of 2, running"), "{drawn}");
    assert!(drawn.contains("no estimate yet"), "{drawn}");
    // Not a terminal: no bars, only log lines.
    let plain = p.pipeline(&["run", "--force"]);
    let err = stderr(&plain);
    assert!(!err.contains("finished 0 of"), "{err}");
    assert!(
        err.contains("INFO source: running (forced (--force))"),
        "{err}"
    );
    // The lock now holds the durations the next live view estimates from.
    let lock: Value = serde_json::from_str(&p.read("pipeline.lock")).unwrap();
    assert!(lock["stages"]["ingest"]["seconds"].is_number(), "{lock}");
}

#[test]
fn a_run_saves_every_published_file_s_stat_once_it_is_synced() {
    let p = Project::new(SMALL);
    assert!(p.pipeline(&["run"]).status.success());
    // Published copies are synced at the run's end; only then is the record that lets the
    // next run trust them by their stat saved. Every one of them must be in it, or each
    // no-op run would read them all again.
    let saved: Value = serde_json::from_slice(
        &std::fs::read(p.path().join("cache").join("stat-cache.json")).unwrap(),
    )
    .unwrap();
    let recorded: Vec<std::path::PathBuf> = saved
        .as_object()
        .unwrap()
        .keys()
        .map(|key| p.path().join(key))
        .collect();
    let mut published = Vec::new();
    for stage in ["source", "ingest"] {
        for entry in std::fs::read_dir(p.path().join("outputs").join(stage)).unwrap() {
            published.push(entry.unwrap().path());
        }
    }
    assert!(published.len() >= 8, "{published:?}");
    for file in &published {
        assert!(
            recorded.contains(file),
            "{} has no stat record after the run",
            file.display()
        );
    }
}
