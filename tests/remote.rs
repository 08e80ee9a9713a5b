//! The shared remote cache: a folder store (`file://`) and a real S3-compatible server
//! (`moto_server`, installed by `.ci/run`) on loopback.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{keygen, stderr, stdout, Project};

const SMALL: &str = r#"
[stages.source]
kind = "synthetic_fma"
tracks = 80
seed = 5

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.explore]
kind = "explore"
inputs = ["ingest:labels_genres", "ingest:tracks"]
"#;

pub(crate) fn run_json(
    p: &Project,
    args: &[&str],
    envs: &[(&str, String)],
) -> (Value, String, i32) {
    let mut cmd = p.command(args);
    cmd.arg("--json");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let json = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
    (json, stderr(&out), out.status.code().unwrap_or(-1))
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["stage"].as_str().unwrap_or("").to_owned(),
                        s["outcome"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_second_clone_restores_everything_from_a_folder_remote_and_runs_nothing() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let first = Project::new(SMALL);
    let (report, err, code) = run_json(&first, &["run", "--remote", &url, "--push"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        report["transfers"]["uploaded_objects"].as_u64().unwrap() >= 10,
        "{report}"
    );

    let second = Project::new(SMALL);
    let (report, err, code) = run_json(&second, &["run", "--remote", &url], &[]);
    assert_eq!(code, 0, "{err}");
    for (stage, outcome) in outcomes(&report) {
        assert_eq!(
            outcome, "restored",
            "{stage} should come from the remote: {report}"
        );
    }
    assert!(report["stages"][0]["source"] == "remote");
    assert_eq!(
        report["transfers"]["uploaded_objects"], 0,
        "read-only by default"
    );
    let bytes = |p: &Project| std::fs::read(p.file("outputs/ingest/features.parquet")).unwrap();
    assert_eq!(bytes(&first), bytes(&second));
    // Asking for one stage downloads only what it and its upstream need.
    let third = Project::new(SMALL);
    let (report, _, _) = run_json(&third, &["run", "--remote", &url, "source"], &[]);
    assert_eq!(outcomes(&report).len(), 1);
    assert_eq!(report["transfers"]["downloaded_objects"], 3);
}

#[test]
fn a_corrupt_remote_object_is_discarded_and_the_stage_runs_locally() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let first = Project::new(SMALL);
    run_json(&first, &["run", "--remote", &url, "--push"], &[]);
    // Corrupt every object of the remote.
    for dir in std::fs::read_dir(shared.path().join("objects"))
        .unwrap()
        .flatten()
    {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            std::fs::write(file.path(), b"garbage").unwrap();
        }
    }
    let second = Project::new(SMALL);
    let (report, err, code) = run_json(&second, &["run", "--remote", &url], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is corrupt"), "{err}");
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "ran"),
        "{report}"
    );
    assert!(!second.file("cache/objects").read_dir().unwrap().any(|d| {
        d.unwrap()
            .path()
            .read_dir()
            .unwrap()
            .any(|f| std::fs::read(f.unwrap().path()).unwrap() == b"garbage")
    }));
    // With --require-remote the same corruption is an error.
    let third = Project::new(SMALL);
    let (_, _, code) = run_json(&third, &["run", "--remote", &url, "--require-remote"], &[]);
    assert_eq!(code, 1);
}

#[test]
fn two_processes_pushing_the_same_results_do_not_corrupt_each_other() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let a = Project::new(SMALL);
    let b = Project::new(SMALL);
    let mut first = a
        .command(&["run", "--remote", &url, "--push"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut second = b
        .command(&["run", "--remote", &url, "--push"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let c = Project::new(SMALL);
    let (report, err, code) = run_json(&c, &["run", "--remote", &url], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "restored"),
        "{report}"
    );
}

#[test]
fn push_and_pull_commands() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let a = Project::new(SMALL);
    assert!(a.pipeline(&["run"]).status.success());
    let out = a.pipeline(&["push", "--remote", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ingest: pushed"));
    let b = Project::new(SMALL);
    let out = b.pipeline(&["pull", "--remote", &url, "ingest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.file("outputs/ingest/tracks.parquet").is_file());
    assert!(
        !b.file("outputs/explore").exists(),
        "pull brings only what was asked for"
    );
    assert_eq!(
        b.pipeline(&["push"]).status.code(),
        Some(2),
        "no remote configured"
    );
}

pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into()))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server must be installed (pip install 'moto[server]'; see .ci/run)");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Buckets are created with a plain S3 request: PUT /bucket.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(stream, "PUT /pipeline-cache HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "bucket creation failed: {reply}"
    );
    Moto { child, endpoint }
}

pub(crate) fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("PIPELINE_REMOTE", "s3://pipeline-cache/ci".into()),
    ]
}

#[test]
fn an_s3_compatible_server_serves_a_fresh_clone_and_its_loss_degrades_to_local_work() {
    let moto = start_moto();
    let env = aws_env(&moto.endpoint);
    let first = Project::new(SMALL);
    let mut push_env = env.clone();
    push_env.push(("PIPELINE_PUSH", "1".into()));
    let (report, err, code) = run_json(&first, &["run"], &push_env);
    assert_eq!(code, 0, "{err}");
    assert!(
        report["transfers"]["uploaded_objects"].as_u64().unwrap() >= 10,
        "{report}"
    );

    let second = Project::new(SMALL);
    let (report, err, code) = run_json(&second, &["run"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "restored"),
        "{report}"
    );
    assert!(report["transfers"]["downloaded_bytes"].as_u64().unwrap() > 100_000);

    // The server goes away: the run warns and computes locally.
    drop(moto);
    let third = Project::new(SMALL);
    let (report, err, code) = run_json(&third, &["run"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("computing locally"), "{err}");
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "ran"),
        "{report}"
    );
    let (_, _, code) = run_json(&Project::new(SMALL), &["run", "--require-remote"], &env);
    assert_eq!(code, 1);
}

#[test]
fn an_s3_result_signed_by_an_untrusted_key_is_never_restored() {
    let moto = start_moto();
    let env = aws_env(&moto.endpoint);
    let pusher = Project::new(SMALL);
    let (_, untrusted_secret) = keygen(&pusher);
    let (trusted_public, _) = keygen(&pusher);
    let mut push_env = env.clone();
    push_env.push(("PIPELINE_PUSH", "1".into()));
    push_env.push(("PIPELINE_SIGNING_KEY", untrusted_secret));
    let (_, err, code) = run_json(&pusher, &["run"], &push_env);
    assert_eq!(code, 0, "{err}");

    let puller = Project::new(&format!(
        "[cache]\ntrusted_keys = [{trusted_public:?}]\n{SMALL}"
    ));
    let (report, err, code) = run_json(&puller, &["run"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "ran"),
        "{report}"
    );
    assert!(err.contains("not signed by a trusted key"), "{err}");
    // Without trusted keys the same remote serves it.
    let open = Project::new(SMALL);
    let (report, err, _) = run_json(&open, &["run"], &env);
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "restored"),
        "{report} {err}"
    );
}
