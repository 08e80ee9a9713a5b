//! Every configuration mistake is reported before any work, with its position (exit 2).

use crate::support::{stderr, Project};

fn check(config: &str) -> (i32, String) {
    let p = Project::new(config);
    let out = p.pipeline(&["check"]);
    (out.status.code().unwrap_or(-1), stderr(&out))
}

const SOURCE: &str = "[stages.source]\nkind = \"synthetic_fma\"\ntracks = 50\n";

#[test]
fn each_mistake_gets_a_message_and_a_position() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[stages.source]\nkind = \"synthetic_fmaa\"\n",
            "stage `source` has unknown kind `synthetic_fmaa`; did you mean `synthetic_fma`?",
            "--> pipeline.toml:2:8",
        ),
        (
            "[stages.source]\nkind = \"synthetic_fma\"\ntrack = 50\n",
            "stage `source`: unknown key `track`; did you mean `tracks`?",
            "--> pipeline.toml:3:1",
        ),
        (
            "[stages.source]\nkind = \"synthetic_fma\"\ntracks = \"many\"\n",
            "stage `source`: key `tracks`: invalid type: string \"many\", expected usize",
            "--> pipeline.toml:3:10",
        ),
        (
            "[stages.source]\nkind = \"synthetic_fma\"\ntracks = 3\n",
            "stage `source`: key `tracks`: must be between 10 and 2000000, got 3",
            "--> pipeline.toml:3:10",
        ),
        (
            "[stages.source]\ntracks = 3\n",
            "stage `source` has no `kind` key",
            "--> pipeline.toml:1:9",
        ),
        (
            &format!("{SOURCE}[stages.ingest]\nkind = \"ingest\"\ninputs = [\"sorce:features\", \"source:tracks\", \"source:genres\"]\n"),
            "stage `ingest` depends on unknown stage `sorce`; did you mean `source`?",
            "--> pipeline.toml:6:10",
        ),
        (
            &format!("{SOURCE}[stages.ingest]\nkind = \"ingest\"\ninputs = [\"source:feature\", \"source:tracks\", \"source:genres\"]\n"),
            "stage `ingest`: stage `source` has no output `feature` (it writes: features, tracks, genres)",
            "--> pipeline.toml:6:10",
        ),
        (
            &format!("{SOURCE}[stages.ingest]\nkind = \"ingest\"\ninputs = [\"source:features\"]\n"),
            "stage `ingest`: kind `ingest` takes inputs [features, tracks, genres], got 1 input",
            "--> pipeline.toml:6:10",
        ),
        (
            &format!("{SOURCE}[stages.ingest]\nkind = \"ingest\"\ninputs = [\"data/features.csv\", \"source:tracks\", \"source:genres\"]\n"),
            "stage `ingest`: input file `data/features.csv` does not exist",
            "--> pipeline.toml:6:10",
        ),
        (
            "[stages.real]\nkind = \"fma_files\"\ndir = \"nowhere\"\n",
            "stage `real`: input file `nowhere/features.csv` does not exist",
            "--> pipeline.toml:1:9",
        ),
        (
            "[stages.real]\nkind = \"fma_files\"\n",
            "stage `real`: required key `dir` is missing",
            "--> pipeline.toml:1:9",
        ),
        (
            "[stages.a]\nkind = \"ingest\"\ninputs = [\"a:features\", \"a:tracks\", \"a:genres\"]\n",
            "stage `a` depends on itself",
            "--> pipeline.toml:3:10",
        ),
        (
            "[stages.a]\nkind = \"ingest\"\ninputs = [\"b:features\", \"b:tracks\", \"b:genres\"]\n[stages.b]\nkind = \"ingest\"\ninputs = [\"a:features\", \"a:tracks\", \"a:genres\"]\n",
            "dependency cycle: a -> b -> a",
            "--> pipeline.toml:1:9",
        ),
        (
            "[stages.a]\nkind = \"synthetic_fma\"\n[stages.a]\n",
            "duplicate key",
            "--> pipeline.toml:3:",
        ),
        ("[cash]\n", "unknown field `cash`", "--> pipeline.toml:1:"),
        (
            &format!("[executor]\nkind = \"slurmm\"\n{SOURCE}"),
            "[executor] kind: expected \"local\" or \"slurm\", got \"slurmm\"",
            "--> pipeline.toml:2:8",
        ),
        (
            &format!("[executor]\npoll_seconds = -1\n{SOURCE}"),
            "[executor] poll_seconds: expected seconds from 0.05 to 86400, got -1",
            "--> pipeline.toml:2:16",
        ),
        (
            &format!("[executor]\nqueue = \"x\"\n{SOURCE}"),
            "[executor] queue: unknown key `queue` (expected one of kind, partition, account, poll_seconds, sbatch_args, cache, worker, log_dir, vanished_after_seconds)",
            "--> pipeline.toml:2:9",
        ),
        (
            &format!("[executor]\nsbatch_args = [\"short\"]\n{SOURCE}"),
            "[executor] sbatch_args: every sbatch argument must be an option (`--qos=short`), got \"short\"",
            "--> pipeline.toml:2:15",
        ),
        (
            &format!("{SOURCE}[stages.source.resources]\nmem = \"lots\"\n"),
            "stage `source`: resources.mem: expected megabytes (2048) or a size with a unit (500M, 4G), got \"lots\"",
            "--> pipeline.toml:4:",
        ),
        (
            &format!("{SOURCE}resources = 4\n"),
            "stage `source`: resources: expected a table (`[stages.NAME.resources]`)",
            "--> pipeline.toml:4:13",
        ),
    ];
    for (config, message, position) in cases {
        let (code, err) = check(config);
        assert_eq!(code, 2, "config:\n{config}\nstderr:\n{err}");
        assert!(err.contains(message), "expected {message:?} in:\n{err}");
        assert!(err.contains(position), "expected {position:?} in:\n{err}");
    }
}

#[test]
fn independent_mistakes_are_all_reported_sorted_by_line() {
    let (code, err) =
        check("[stages.a]\nkind = \"nope\"\n\n[stages.b]\nkind = \"synthetic_fma\"\nseeed = 1\n");
    assert_eq!(code, 2);
    let first = err.find("unknown kind `nope`").unwrap();
    let second = err
        .find("unknown key `seeed`; did you mean `seed`?")
        .unwrap();
    assert!(first < second, "{err}");
    assert!(err.contains("2 configuration errors"), "{err}");
}

#[test]
fn the_error_shows_the_line_with_a_caret() {
    let (_, err) = check("[stages.source]\nkind = \"synthetic_fma\"\ntrack = 50\n");
    assert!(err.contains("3 | track = 50\n  | ^^^^^"), "{err}");
}

#[test]
fn a_folder_given_as_a_file_and_a_file_given_as_a_folder_are_named() {
    let config = format!(
        "{SOURCE}[stages.ingest]\nkind = \"ingest\"\ninputs = [\"data\", \"source:tracks\", \"source:genres\"]\n"
    );
    let p = Project::new(&config);
    std::fs::create_dir(p.file("data")).unwrap();
    let out = p.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(
            "error: stage `ingest`: input `data` is a folder, not a file\n --> pipeline.toml:6:10\n"
        ),
        "{}",
        stderr(&out)
    );

    let p = Project::new(&format!("[cache]\ndir = \"pipeline.toml\"\n{SOURCE}"));
    let out = p.pipeline(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(
            "error: [cache]: dir: `pipeline.toml` exists and is not a folder\n --> pipeline.toml:2:7\n"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_set_argument_is_reported_at_the_argument() {
    let p = Project::new(SOURCE);
    let out = p.pipeline(&["check", "--set", "source.tracks=3"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        concat!(
            "error: stage `source`: key `tracks`: must be between 10 and 2000000, got 3\n",
            " --> --set argument\n  |\n  | source.tracks=3\n  |               ^\n"
        )
    );
    let out = p.pipeline(&[
        "check",
        "--set",
        "sorce.tracks=30",
        "--set",
        "source.seed=x",
        "--set",
        "source.trcks=30",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        concat!(
            "error: --set: no stage named `sorce`; did you mean `source`?\n",
            " --> --set argument\n  |\n  | sorce.tracks=30\n  | ^^^^^\n",
            "error: --set source.seed=x: `x` is not a TOML value (quote text: source.seed=\"...\")\n",
            " --> --set argument\n  |\n  | source.seed=x\n  |             ^\n",
            "error: stage `source`: unknown key `trcks`; did you mean `tracks`?\n",
            " --> --set argument\n  |\n  | source.trcks=30\n  |        ^^^^^\n",
            "3 configuration errors\n"
        )
    );
}
