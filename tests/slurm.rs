//! The Slurm executor against a real one-node cluster on localhost (`.ci/slurm-up`, which
//! `.ci/run` calls): the same bytes as a local run, Slurm's own verdicts (FAILED, TIMEOUT)
//! with the job's log, Ctrl-C cancelling every job, the sharded k-NN, and the remote cache
//! as the only exchange.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::remote::run_json;
use crate::support::{stderr, stdout, Project};

/// The default pipeline, small: every kind, through Slurm in under a minute.
fn small_default(executor: &str) -> String {
    let default = include_str!("../pipeline.toml").replace("tracks = 8000", "tracks = 900");
    format!("[executor]\nkind = \"{executor}\"\npoll_seconds = 0.3\n\n{default}")
}

fn require_cluster() {
    let answer = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    let up = answer.as_ref().is_ok_and(|o| {
        let states = stdout(o);
        // Busy states (allocated, mixed, completing, planned) count: other tests run jobs too.
        o.status.success()
            && states.lines().any(|s| {
                let s = s.trim();
                !s.is_empty()
                    && !["down", "drain", "fail", "unknown", "future", "maint"]
                        .iter()
                        .any(|bad| s.starts_with(bad))
            })
    });
    assert!(
        up,
        "no Slurm cluster answers `sinfo` (start the one-node test cluster with .ci/slurm-up): {answer:?}"
    );
}

fn row<'a>(report: &'a Value, stage: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["stage"] == stage))
        .unwrap_or_else(|| panic!("no row for {stage} in {report}"))
}

fn jobs_of(report: &Value) -> Vec<String> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["jobs"].as_array().cloned().unwrap_or_default())
        .map(|j| j.as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (left, right) = (tree(a), tree(b));
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&left), names(&right));
    for ((name, x), (_, y)) in left.iter().zip(&right) {
        assert!(
            x == y,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Slurm's job completion log (`JobCompLoc`), as `scontrol show config` names it.
fn job_completion_log() -> String {
    let config = stdout(
        &Command::new("scontrol")
            .args(["show", "config"])
            .output()
            .unwrap(),
    );
    let path = config
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("JobCompLoc")
                .map(|r| r.trim_start_matches([' ', '=']).trim().to_owned())
        })
        .expect("JobCompLoc in scontrol show config");
    // Slurm creates the file when the first job ends; until then the caller keeps waiting.
    std::fs::read_to_string(&path).unwrap_or_else(|e| format!("(cannot read {path}: {e})"))
}

fn in_queue(jobs: &[String]) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i|%T", &format!("--jobs={}", jobs.join(","))])
        .output()
        .unwrap();
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn the_default_pipeline_through_slurm_gives_the_bytes_of_a_local_run() {
    require_cluster();
    let cluster = Project::new(&small_default("slurm"));
    let (report, err, code) = run_json(&cluster, &["run", "-j", "8"], &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    let jobs = jobs_of(&report);
    assert_eq!(jobs.len(), 24, "one job per stage: {report}");
    assert!(row(&report, "knn_full")["jobs"]
        .as_array()
        .is_some_and(|j| j.len() == 1));

    let local = Project::new(&small_default("local"));
    let (report, err, code) = run_json(&local, &["run"], &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    assert!(jobs_of(&report).is_empty());
    assert_same_tree(&cluster.file("outputs"), &local.file("outputs"));

    // Every job is in Slurm's own record of finished jobs, COMPLETED, under the stage's name.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = job_completion_log();
        let recorded = jobs.iter().all(|id| {
            log.lines().any(|l| {
                l.starts_with(&format!("JobId={id} "))
                    && l.contains("JobState=COMPLETED")
                    && l.contains("Name=pipeline:")
            })
        });
        if recorded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs {jobs:?} missing from the job completion log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Nothing changed: no job is submitted. A new shard count is not a new result either.
    let (report, err, code) = run_json(&cluster, &["run", "--set", "knn_full.shards=4"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(jobs_of(&report).is_empty(), "{report}");
    assert!(
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "up-to-date"),
        "{report}"
    );
}

#[test]
fn a_failing_stage_reports_failed_and_a_slow_one_timeout_each_with_its_log() {
    require_cluster();
    let p = Project::new(
        r#"
[executor]
kind = "slurm"
poll_seconds = 0.3

[stages.fails]
kind = "command"
run = "echo working on it; echo the input is malformed >&2; exit 3"
outputs = { out = "out.txt" }

[stages.after]
kind = "command"
inputs = ["fails:out"]
run = "cp {input.0} {output.out}"
outputs = { out = "out.txt" }

[stages.slow]
kind = "command"
run = "echo started; sleep 600; echo > {output.out}"
outputs = { out = "out.txt" }

[stages.slow.resources]
time = "0:01"
"#,
    );
    let (report, err, code) = run_json(&p, &["run"], &[]);
    assert_ne!(code, 0);
    let fails = row(&report, "fails");
    assert_eq!(fails["outcome"], "failed", "{report}");
    assert_eq!(fails["cause"]["cause"], "job", "{report}");
    assert_eq!(fails["cause"]["state"], "FAILED", "{report}");
    let job = fails["jobs"][0].as_str().unwrap();
    let message = fails["error"].as_str().unwrap();
    let log = p.file(&format!("cache/logs/slurm/fails-{job}.log"));
    assert!(
        message.starts_with(&format!(
            "Slurm job {job} ended FAILED; the end of its log ({}):\n",
            log.display()
        )),
        "{message}"
    );
    assert!(
        message.contains("the command exited with status 3"),
        "{message}"
    );
    assert!(message.contains("the input is malformed"), "{message}");
    assert_eq!(row(&report, "after")["outcome"], "skipped");
    assert!(err.contains("stage `fails` failed: Slurm job"), "{err}");

    let slow = row(&report, "slow");
    assert_eq!(slow["cause"]["state"], "TIMEOUT", "{report}");
    let message = slow["error"].as_str().unwrap();
    assert!(message.contains("DUE TO TIME LIMIT"), "{message}");
    // Neither left a result that could be served later.
    assert!(std::fs::read_dir(p.file("cache/manifests")).map_or(true, |d| d.count() == 0));
}

#[test]
fn ctrl_c_cancels_every_submitted_job() {
    require_cluster();
    let p = Project::new(
        r#"
[executor]
kind = "slurm"
poll_seconds = 0.3

[stages.one]
kind = "command"
run = "sleep 600; echo > {output.out}"
outputs = { out = "out.txt" }

[stages.two]
kind = "command"
run = "sleep 601; echo > {output.out}"
outputs = { out = "out.txt" }
"#,
    );
    let child = p
        .command(&["run", "--json", "-j", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both jobs are in the queue (running, or pending behind other tests' jobs).
    let deadline = Instant::now() + Duration::from_secs(60);
    let ours = || {
        let listing = Command::new("squeue")
            .args(["-h", "-o", "%i|%j|%Z"])
            .output()
            .unwrap();
        let dir = p.path().canonicalize().unwrap().display().to_string();
        stdout(&listing)
            .lines()
            .filter(|l| l.ends_with(&format!("|{dir}")))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    while ours().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "jobs were not submitted: {:?}",
            ours()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let jobs = jobs_of(&report);
    assert_eq!(jobs.len(), 2, "{report}");
    assert!(report["interrupted"].as_bool().unwrap(), "{report}");
    // scancel is asynchronous: the jobs leave the running states within moments.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = in_queue(&jobs);
        if left
            .iter()
            .all(|l| !l.ends_with("|RUNNING") && !l.ends_with("|PENDING"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still queued after Ctrl-C: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const KNN: &str = r#"
[executor]
kind = "slurm"
poll_seconds = 0.3

[stages.source]
kind = "synthetic_fma"
tracks = 1500

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.standardize]
kind = "standardize"
inputs = ["ingest:features", "ingest:tracks"]

[stages.knn]
kind = "knn"
inputs = ["standardize:zscore", "ingest:labels_genres", "ingest:tracks"]
repeats = 3
test_fraction = 0.05
"#;

#[test]
fn the_sharded_knn_as_a_job_array_equals_the_unsharded_one() {
    require_cluster();
    let sharded =
        Project::new(&KNN.replace("test_fraction = 0.05", "test_fraction = 0.05\nshards = 3"));
    let (report, err, code) = run_json(&sharded, &["run", "-j", "4"], &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    let jobs = row(&report, "knn")["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2, "a job array and a merge job: {report}");
    let array = jobs[0].as_str().unwrap();
    for task in 0..3 {
        assert!(sharded
            .file(&format!("cache/logs/slurm/knn-{array}_{task}.log"))
            .is_file());
    }
    let single = Project::new(&KNN.replace("kind = \"slurm\"", "kind = \"local\""));
    let (report, err, code) = run_json(&single, &["run"], &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    assert_same_tree(&sharded.file("outputs/knn"), &single.file("outputs/knn"));
}

#[test]
fn with_the_remote_exchange_workers_need_no_shared_cache_folder() {
    require_cluster();
    let moto = crate::remote::start_moto();
    let mut env = crate::remote::aws_env(&moto.endpoint);
    env.push(("PIPELINE_REMOTE", "s3://pipeline-cache/slurm".into()));
    let config = KNN.replace(
        "poll_seconds = 0.3",
        "poll_seconds = 0.3\ncache = \"remote\"",
    );
    let p =
        Project::new(&config.replace("test_fraction = 0.05", "test_fraction = 0.05\nshards = 2"));
    let (report, err, code) = run_json(&p, &["run", "-j", "4"], &env);
    assert_eq!(code, 0, "{err}\n{report}");
    assert_eq!(jobs_of(&report).len(), 5, "{report}");
    // Every result came back through the bucket: the controller downloaded what the workers
    // computed, and no worker staged anything in the controller's cache folder.
    assert!(
        report["transfers"]["downloaded_objects"].as_u64().unwrap() >= 10,
        "{report}"
    );
    assert!(std::fs::read_dir(p.file("cache/tmp")).map_or(true, |d| d.count() == 0));

    let local = Project::new(&KNN.replace("kind = \"slurm\"", "kind = \"local\""));
    let (report, err, code) = run_json(&local, &["run"], &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    assert_same_tree(&p.file("outputs"), &local.file("outputs"));
}

#[test]
fn two_workers_committing_one_stage_to_a_shared_cache_folder_leave_it_sound() {
    require_cluster();
    let p = Project::new(KNN);
    let (report, err, code) = run_json(&p, &["run", "knn"], &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    let job = row(&report, "knn")["jobs"][0].as_str().unwrap().to_owned();
    // The job's own batch script, as Slurm stored it, holds the spec.
    let script = stdout(
        &Command::new("scontrol")
            .args(["write", "batch_script", &job, "-"])
            .output()
            .unwrap(),
    );
    let spec = script
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a spec line")
        .to_owned();
    p.write("spec.json", &spec);
    let key = serde_json::from_str::<Value>(&spec).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(p.file(&format!("cache/manifests/{key}.json"))).unwrap();
    for entry in std::fs::read_dir(p.file("cache/objects"))
        .unwrap()
        .flatten()
    {
        std::fs::remove_dir_all(entry.path()).unwrap();
    }
    // The inputs went with the objects: restore them, then two workers race on one key.
    let (_, err, code) = run_json(&p, &["run", "standardize", "ingest"], &[]);
    assert_eq!(code, 0, "{err}");
    let workers: Vec<_> = (0..2)
        .map(|_| {
            p.command(&["worker", "--spec", "spec.json"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let verify = p.command(&["verify", "--json"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}\n{}",
        stdout(&verify),
        stderr(&verify)
    );
    let (report, err, code) = run_json(&p, &["run"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        jobs_of(&report).is_empty(),
        "the raced result serves the next run: {report}"
    );
}
