//! Stages users write themselves: `command` (any program) and `sql` (polars), cached,
//! restored and explained like every built-in kind.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{stderr, stdout, Project};

const COUNT: &str = r#"
[stages.count]
kind = "command"
inputs = ["data/words.txt"]
code = ["scripts/count.sh"]
env = ["MY_SETTING"]
params = { alpha = 0.5 }
run = "sh scripts/count.sh {input.0} {output.counts} {params}"
outputs = { counts = "counts.txt" }
"#;

const SCRIPT: &str =
    "wc -l < \"$1\" | tr -d ' ' > \"$2\"\ncat \"$3\" >> \"$2\"\necho ran >> runs.log\n";

fn project() -> Project {
    let p = Project::new(COUNT);
    p.write("data/words.txt", "a\nb\nc\n");
    p.write("scripts/count.sh", SCRIPT);
    p
}

fn runs(p: &Project) -> usize {
    std::fs::read_to_string(p.file("runs.log")).map_or(0, |t| t.lines().count())
}

fn run_with(p: &Project, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = p.command(&["run"]);
    cmd.env_remove("MY_SETTING");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn status_with(p: &Project, env: &[(&str, &str)]) -> String {
    let mut cmd = p.command(&["status"]);
    cmd.env_remove("MY_SETTING");
    for (k, v) in env {
        cmd.env(k, v);
    }
    stdout(&cmd.output().unwrap())
}

#[test]
fn a_command_reruns_when_its_code_env_or_params_change_and_not_when_touched() {
    let p = project();
    let out = run_with(&p, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        p.read("outputs/count/counts.txt"),
        "3\n{\n  \"alpha\": 0.5\n}"
    );
    assert_eq!(runs(&p), 1);
    assert_eq!(status_with(&p, &[]), "count  up to date\n");

    // Touching the script changes nothing; editing it reruns the stage.
    let script = p.file("scripts/count.sh");
    let now = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&script)
        .unwrap()
        .set_modified(now)
        .unwrap();
    assert_eq!(status_with(&p, &[]), "count  up to date\n");
    p.write("scripts/count.sh", format!("{SCRIPT}# edited\n"));
    assert_eq!(
        status_with(&p, &[]),
        "count  stale: code file scripts/count.sh changed\n"
    );
    assert!(run_with(&p, &[]).status.success());
    assert_eq!(runs(&p), 2);

    // An environment variable it declares: named, never shown.
    assert_eq!(
        status_with(&p, &[("MY_SETTING", "secret-value")]),
        "count  stale: env `MY_SETTING` changed\n"
    );
    assert!(run_with(&p, &[("MY_SETTING", "secret-value")])
        .status
        .success());
    assert!(!p.read("pipeline.lock").contains("secret-value"));
    assert_eq!(runs(&p), 3);

    // Params are part of the key and reach the program.
    p.write(
        "pipeline.toml",
        COUNT.replace("alpha = 0.5", "alpha = 0.75"),
    );
    assert_eq!(
        status_with(&p, &[("MY_SETTING", "secret-value")]),
        "count  stale: param `params` changed: {\"alpha\":0.5} -> {\"alpha\":0.75}\n"
    );
    assert!(run_with(&p, &[("MY_SETTING", "secret-value")])
        .status
        .success());
    assert!(p.read("outputs/count/counts.txt").contains("0.75"));

    // Switching back restores from the cache without running.
    p.write("pipeline.toml", COUNT);
    std::fs::remove_dir_all(p.file("outputs")).unwrap();
    let out = p
        .command(&["run", "--json"])
        .env("MY_SETTING", "secret-value")
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["stages"][0]["outcome"], "restored", "{report}");
    assert_eq!(runs(&p), 4, "restored, not run");
    assert!(p.file("outputs/count/counts.txt").is_file());
}

#[test]
fn a_failing_command_reports_its_status_and_stderr_and_keeps_its_logs() {
    let p = project();
    p.write(
        "scripts/count.sh",
        "echo working\nfor i in 1 2 3; do echo \"problem $i\" >&2; done\nexit 3\n",
    );
    let out = p.command(&["run", "--json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let row = &report["stages"][0];
    assert_eq!(row["outcome"], "failed");
    assert_eq!(row["cause"]["cause"], "computation");
    assert_eq!(row["cause"]["logs"], "cache/logs/count");
    assert_eq!(
        stderr(&out),
        concat!(
            "error: stage `count` failed: the command exited with status 3; the end of its stderr:\n",
            "problem 1\nproblem 2\nproblem 3\n",
            "(its full stdout and stderr are in cache/logs/count)\n"
        )
    );
    assert_eq!(p.read("cache/logs/count/stdout.log"), "working\n");
    assert!(!p.file("outputs/count").exists());

    // Exit 0 without writing a declared output.
    p.write("scripts/count.sh", "true\n");
    let out = p.command(&["run", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        concat!(
            "error: stage `count` failed: parameter `outputs`: the command exited 0 but did not write output `counts` (counts.txt); write it to {output.counts}\n",
            "(its full stdout and stderr are in cache/logs/count)\n"
        )
    );
}

#[test]
fn a_placeholder_naming_nothing_is_a_configuration_error() {
    let p = project();
    p.write("pipeline.toml", COUNT.replace("{input.0}", "{input.1}"));
    let out = p.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(
            "error: stage `count`: key `run`: `{input.1}` names input 1, but the stage has 1 input (numbered from 0)\n --> pipeline.toml:8:7\n"
        ),
        "{}",
        stderr(&out)
    );
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(marker) && !text.contains("cargo") {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn long_command(marker: &str) -> String {
    // A background grandchild and a foreground child, both long.
    format!(
        "[stages.slow]\nkind = \"command\"\nrun = \"sleep {marker} & sleep {marker}; echo > {{output.out}}\"\noutputs = {{ out = \"out.txt\" }}\n"
    )
}

#[test]
fn ctrl_c_during_a_long_command_leaves_no_process_behind() {
    let marker = "31.4159";
    let p = Project::new(&long_command(marker));
    let mut run = p.command(&["run"]).spawn().unwrap();
    wait_until("the command to start", Duration::from_secs(20), || {
        processes_with(marker).len() >= 2
    });
    // What a terminal's Ctrl-C sends the pipeline.
    let pid = run.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    wait_until(
        "the command's processes to end",
        Duration::from_secs(10),
        || processes_with(marker).is_empty(),
    );
    assert!(!p.file("outputs/slow").exists());
}

#[test]
fn a_killed_run_leaves_nothing_running_once_the_next_run_starts() {
    let marker = "32.7182";
    let p = Project::new(&long_command(marker));
    let mut run = p.command(&["run"]).spawn().unwrap();
    wait_until("the command to start", Duration::from_secs(20), || {
        processes_with(marker).len() >= 2
    });
    run.kill().unwrap();
    run.wait().unwrap();
    // The kernel ends the direct child at once; the next run ends the rest of its group.
    p.write(
        "pipeline.toml",
        long_command(marker).replace(&format!("sleep {marker} & sleep {marker}; "), ""),
    );
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(
        "the group of the killed run to end",
        Duration::from_secs(10),
        || processes_with(marker).is_empty(),
    );
}

const TRACKS: &str = r#"
[stages.source]
kind = "synthetic_fma"
tracks = 300
seed = 11

[stages.ingest]
kind = "ingest"
inputs = ["source:features", "source:tracks", "source:genres"]

[stages.by_artist]
kind = "sql"
inputs = ["ingest:tracks"]
query = """
SELECT "artist.id" AS artist, count(*) AS n, sum("track.listens") AS listens
FROM tracks GROUP BY "artist.id" ORDER BY "artist.id"
"""

[stages.joined]
kind = "sql"
inputs = ["by_artist:table", "ingest:tracks"]
query = """
SELECT t.track_id, t."artist.id" AS artist, a.n AS artist_tracks
FROM tracks t JOIN "table" a ON t."artist.id" = a.artist
ORDER BY t.track_id
"""
"#;

fn duckdb(script: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rows_of(p: &Project, output: &str) -> Value {
    let out = p.pipeline(&["show", output, "--head", "100000", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn a_sql_group_by_equals_duckdb_and_a_join_of_two_inputs_works() {
    let p = Project::new(TRACKS);
    let out = p.pipeline(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = rows_of(&p, "by_artist:table");
    let tracks = p.file("outputs/ingest/tracks.parquet");
    let theirs: Value = serde_json::from_str(&duckdb(&format!(
        "import duckdb, json\n\
         rows = duckdb.sql('''SELECT \"artist.id\" AS artist, count(*) AS n, sum(\"track.listens\") AS listens FROM read_parquet('{}') GROUP BY \"artist.id\" ORDER BY \"artist.id\"''').fetchall()\n\
         print(json.dumps([{{'artist': a, 'n': n, 'listens': int(l)}} for a, n, l in rows]))",
        tracks.display()
    )))
    .unwrap();
    assert_eq!(ours, theirs);
    let joined = rows_of(&p, "joined:table");
    assert_eq!(joined.as_array().unwrap().len(), 300);
    let first = &joined[0];
    let artist = ours
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["artist"] == first["artist"])
        .unwrap();
    assert_eq!(first["artist_tracks"], artist["n"]);

    // Byte-identical on a forced rerun, with provenance like every artifact.
    let before = std::fs::read(p.file("outputs/by_artist/table.parquet")).unwrap();
    assert!(p
        .pipeline(&["run", "--force", "by_artist"])
        .status
        .success());
    assert_eq!(
        std::fs::read(p.file("outputs/by_artist/table.parquet")).unwrap(),
        before
    );
    let inspect = stdout(&p.pipeline(&["inspect", "outputs/by_artist/table.parquet"]));
    assert!(inspect.contains("pipeline.kind = sql"), "{inspect}");
}

#[test]
fn a_bad_query_is_caught_by_check_before_any_work() {
    let p = Project::new(&TRACKS.replace("FROM tracks GROUP BY", "FROM trakcs GROUP BY"));
    let out = p.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: stage `by_artist`: key `query`: "),
        "{err}"
    );
    assert!(err.contains("trakcs"), "{err}");
    assert!(err.contains("(tables: tracks)"), "{err}");
    assert!(err.contains(" --> pipeline.toml:14:9"), "{err}");
    assert!(!Path::new(&p.file("cache")).exists());

    let p = Project::new(&TRACKS.replace(
        "SELECT \"artist.id\" AS artist",
        "SELEC \"artist.id\" AS artist",
    ));
    let out = p.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("key `query`: "), "{}", stderr(&out));

    // An unknown column is caught once the input exists.
    let p = Project::new(TRACKS);
    assert!(p.pipeline(&["run", "ingest"]).status.success());
    p.write(
        "pipeline.toml",
        TRACKS.replace("sum(\"track.listens\")", "sum(\"track.listen\")"),
    );
    let out = p.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("track.listen"), "{}", stderr(&out));
}
