//! The engine through its library API, with the small `text` kind from `support.rs`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pipeline::config::Config;
use pipeline::plan::{Action, Project as EngineProject};
use pipeline::registry::Registry;
use pipeline::runner::{run, Outcome, RunOptions, RunReport};

use crate::support::{Journal, Project, TextKind};

const CHAIN: &str = r#"
[stages.a]
kind = "text"
text = "alpha"

[stages.b]
kind = "text"
text = "beta"
inputs = ["a:out"]

[stages.c]
kind = "text"
text = "gamma"
inputs = ["b:out"]

[stages.other]
kind = "text"
text = "unrelated"
"#;

fn registry(version: &str, journal: &Arc<Journal>) -> Registry {
    let mut registry = Registry::new();
    registry.insert(Arc::new(TextKind {
        version: version.into(),
        journal: journal.clone(),
    }));
    registry
}

fn open(dir: &Path, registry: &Registry) -> EngineProject {
    let config =
        Config::load(&dir.join("pipeline.toml"), registry).unwrap_or_else(|e| panic!("{e}"));
    EngineProject::open(config)
}

fn run_all(dir: &Path, registry: &Registry, jobs: usize) -> RunReport {
    let mut project = open(dir, registry);
    let targets = (0..project.config.stages.len()).collect();
    let report = run(
        &mut project,
        &RunOptions {
            targets,
            force: false,
            jobs,
            cancel: Arc::new(AtomicBool::new(false)),
            restore_only: false,
            observer: None,
            executor: pipeline::executor::ExecutorKind::Local,
        },
        None,
    );
    project.lockfile.save(&project.lockfile_path).unwrap();
    // As `pipeline run` does: the next run knows the published files by their stat.
    if let Some(bytes) = project.stat_cache.to_json_if_changed() {
        std::fs::write(project.cache.stat_cache_path(), bytes).unwrap();
    }
    report
}

fn outcomes(report: &RunReport) -> Vec<(String, Outcome)> {
    report
        .stages
        .iter()
        .map(|s| (s.stage.clone(), s.outcome))
        .collect()
}

fn outcome_of(report: &RunReport, stage: &str) -> Outcome {
    report
        .stages
        .iter()
        .find(|s| s.stage == stage)
        .unwrap()
        .outcome
}

fn reasons(dir: &Path, registry: &Registry, stage: &str) -> (Action, Vec<String>) {
    let project = open(dir, registry);
    let all: Vec<usize> = (0..project.config.stages.len()).collect();
    let plan = project.plan(&all, &[]);
    let index = project
        .config
        .stages
        .iter()
        .position(|s| s.id.as_str() == stage)
        .unwrap();
    let e = &plan[&index];
    (
        e.action(),
        e.reasons.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn second_run_is_all_up_to_date() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    let first = run_all(p.path(), &reg, 2);
    assert!(first.ok);
    assert!(first.stages.iter().all(|s| s.outcome == Outcome::Ran));
    assert_eq!(p.read("outputs/c/out.txt"), "gamma|beta|alpha");
    journal.clear();
    let second = run_all(p.path(), &reg, 2);
    assert!(
        second.stages.iter().all(|s| s.outcome == Outcome::UpToDate),
        "{:?}",
        outcomes(&second)
    );
    assert!(journal.ran().is_empty());
}

#[test]
fn changing_a_param_makes_exactly_that_stage_and_its_descendants_stale() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    p.write(
        "pipeline.toml",
        CHAIN.replace("text = \"beta\"", "text = \"BETA\""),
    );
    assert_eq!(reasons(p.path(), &reg, "a").0, Action::UpToDate);
    assert_eq!(reasons(p.path(), &reg, "other").0, Action::UpToDate);
    let (action, why) = reasons(p.path(), &reg, "b");
    assert_eq!(action, Action::Run);
    assert_eq!(
        why,
        vec![r#"param `text` changed: "beta" -> "BETA""#.to_owned()]
    );
    let (action, why) = reasons(p.path(), &reg, "c");
    assert_eq!(action, Action::Blocked);
    assert_eq!(why, vec!["upstream `b` is stale".to_owned()]);
    journal.clear();
    let report = run_all(p.path(), &reg, 2);
    assert_eq!(journal.ran(), vec!["b", "c"]);
    assert_eq!(outcome_of(&report, "a"), Outcome::UpToDate);
    assert_eq!(p.read("outputs/c/out.txt"), "gamma|BETA|alpha");
}

#[test]
fn reverting_a_param_restores_from_the_cache_without_running() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    p.write(
        "pipeline.toml",
        CHAIN.replace("text = \"alpha\"", "text = \"ALPHA\""),
    );
    run_all(p.path(), &reg, 2);
    p.write("pipeline.toml", CHAIN);
    let (action, _) = reasons(p.path(), &reg, "a");
    assert_eq!(action, Action::Restore);
    journal.clear();
    let report = run_all(p.path(), &reg, 2);
    assert!(journal.ran().is_empty(), "ran {:?}", journal.ran());
    assert_eq!(outcome_of(&report, "a"), Outcome::Restored);
    assert_eq!(outcome_of(&report, "c"), Outcome::Restored);
    assert_eq!(p.read("outputs/c/out.txt"), "gamma|beta|alpha");
}

#[test]
fn identical_outputs_stop_the_rerun_early() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    // `noise` changes a's key but not what it writes.
    p.write(
        "pipeline.toml",
        CHAIN.replace("text = \"alpha\"", "text = \"alpha\"\nnoise = 1"),
    );
    let published = p.file("outputs/a/out.txt");
    let before = inode(&published);
    journal.clear();
    let report = run_all(p.path(), &reg, 2);
    assert_eq!(journal.ran(), vec!["a"]);
    assert_eq!(outcome_of(&report, "b"), Outcome::UpToDate);
    assert_eq!(outcome_of(&report, "c"), Outcome::UpToDate);
    // The rerun reproduced the published file, untouched since: it is not copied again.
    assert_eq!(inode(&published), before);
    assert_eq!(p.read("outputs/a/out.txt"), "alpha");
    // One edited meanwhile (its ctime moves on) is replaced by the rerun's bytes.
    p.write("outputs/a/out.txt", "vandalised");
    p.write(
        "pipeline.toml",
        CHAIN.replace("text = \"alpha\"", "text = \"alpha\"\nnoise = 2"),
    );
    run_all(p.path(), &reg, 2);
    assert_eq!(p.read("outputs/a/out.txt"), "alpha");
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

#[cfg(not(unix))]
fn inode(_: &Path) -> u64 {
    0
}

#[test]
fn a_new_code_version_reruns_the_kind() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    run_all(p.path(), &registry("v1", &journal), 2);
    let v2 = registry("v2", &journal);
    let (action, why) = reasons(p.path(), &v2, "a");
    assert_eq!(action, Action::Run);
    assert_eq!(why, vec!["code version changed: v1 -> v2".to_owned()]);
    journal.clear();
    run_all(p.path(), &v2, 1);
    // Every stage has the kind, so every stage reruns, in dependency order.
    let ran = journal.ran();
    assert_eq!(ran.len(), 4);
    let pos = |s: &str| ran.iter().position(|r| r == s).unwrap();
    assert!(pos("a") < pos("b") && pos("b") < pos("c"));
}

#[test]
fn independent_stages_run_in_parallel() {
    let config = r#"
[stages.left]
kind = "text"
sleep_ms = 400

[stages.right]
kind = "text"
sleep_ms = 400
"#;
    let p = Project::new(config);
    let journal = Arc::new(Journal::default());
    run_all(p.path(), &registry("v1", &journal), 2);
    let spans = journal.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    // The two runs overlap in time: each started before the other finished.
    assert!(
        spans[0].1 < spans[1].2 && spans[1].1 < spans[0].2,
        "ran one after the other"
    );
}

/// Runs `config` once, from scratch, with `jobs` slots; the run must succeed.
fn ran_once(config: &str, jobs: usize) -> (Project, Arc<Journal>) {
    let p = Project::new(config);
    let journal = Arc::new(Journal::default());
    assert!(run_all(p.path(), &registry("v1", &journal), jobs).ok);
    (p, journal)
}

fn threads_of(journal: &Journal) -> Vec<(String, usize)> {
    let mut threads = journal.threads.lock().unwrap().clone();
    threads.sort();
    threads
}

#[test]
fn stages_running_together_share_the_threads_and_one_alone_gets_them_all() {
    let config = r#"
[stages.left]
kind = "text"
probe_threads = true
linger_ms = 500

[stages.right]
kind = "text"
probe_threads = true
linger_ms = 500

[stages.last]
kind = "text"
inputs = ["left:out", "right:out"]
probe_threads = true
"#;
    let (_p, journal) = ran_once(config, 2);
    let all = rayon::current_num_threads();
    let threads = threads_of(&journal);
    assert_eq!(threads[0], ("last".to_owned(), all));
    // Each probes (for 100 to 200 ms) while the other is still running: both linger after.
    let mut pair = vec![threads[1].1, threads[2].1];
    pair.sort_unstable();
    assert_eq!(pair, vec![(all / 2).max(1), all.div_ceil(2)], "{threads:?}");
}

#[test]
fn a_stage_left_running_alone_is_granted_the_free_threads() {
    let config = r#"
[stages.brief]
kind = "text"

[stages.long]
kind = "text"
sleep_ms = 600
probe_threads = true
"#;
    let (_p, journal) = ran_once(config, 2);
    let all = rayon::current_num_threads();
    // `long` started on its share beside `brief`, which ends at once.
    assert_eq!(threads_of(&journal), [("long".to_owned(), all)]);
}

#[test]
fn ready_stages_start_longest_chain_first() {
    // `short` is declared first, but `head` has two stages below it: with one slot, the
    // first run (no timings yet) starts `head`, then `middle`, whose chain is still the longer.
    let config = r#"
[stages.short]
kind = "text"

[stages.head]
kind = "text"

[stages.middle]
kind = "text"
inputs = ["head:out"]

[stages.tail]
kind = "text"
inputs = ["middle:out"]
"#;
    let (_p, journal) = ran_once(config, 1);
    assert_eq!(journal.ran(), ["head", "middle", "short", "tail"]);
}

#[test]
fn the_last_run_s_timings_decide_which_ready_stage_starts_first() {
    let config = |noise: u32| {
        format!(
            r#"
[stages.quick]
kind = "text"
noise = {noise}

[stages.slow]
kind = "text"
sleep_ms = 300
noise = {noise}
"#
        )
    };
    let (p, journal) = ran_once(&config(0), 1);
    // Unknown lengths tie: declaration order.
    assert_eq!(journal.ran(), ["quick", "slow"]);
    journal.clear();
    p.write("pipeline.toml", config(1));
    assert!(run_all(p.path(), &registry("v1", &journal), 1).ok);
    assert_eq!(journal.ran(), ["slow", "quick"]);
}

#[test]
fn a_failing_stage_stops_its_dependents_and_publishes_nothing() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    p.write(
        "pipeline.toml",
        CHAIN
            .replace("text = \"beta\"", "text = \"changed\"\nfail = true")
            .replace("text = \"unrelated\"", "text = \"unrelated2\""),
    );
    let report = run_all(p.path(), &reg, 1);
    assert!(!report.ok);
    assert_eq!(outcome_of(&report, "b"), Outcome::Failed);
    assert_eq!(outcome_of(&report, "c"), Outcome::Skipped);
    assert_eq!(outcome_of(&report, "other"), Outcome::Ran);
    // The previous outputs are untouched and no staging folder is left.
    assert_eq!(p.read("outputs/b/out.txt"), "beta|alpha");
    let tmp = std::fs::read_dir(p.file("cache/tmp")).unwrap().count();
    assert_eq!(tmp, 0);
}

#[test]
fn an_edited_output_is_noticed_and_restored() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    p.write("outputs/b/out.txt", "vandalised");
    let (action, why) = reasons(p.path(), &reg, "b");
    assert_eq!(action, Action::Restore);
    assert_eq!(
        why,
        vec!["output `outputs/b/out.txt` was modified".to_owned()]
    );
    std::fs::remove_file(p.file("outputs/c/out.txt")).unwrap();
    assert_eq!(
        reasons(p.path(), &reg, "c").1,
        vec!["output `outputs/c/out.txt` is missing".to_owned()]
    );
    journal.clear();
    let report = run_all(p.path(), &reg, 2);
    assert!(journal.ran().is_empty());
    assert_eq!(outcome_of(&report, "b"), Outcome::Restored);
    assert_eq!(p.read("outputs/b/out.txt"), "beta|alpha");
    assert_eq!(p.read("outputs/c/out.txt"), "gamma|beta|alpha");
}

#[test]
fn external_inputs_are_hashed_by_content() {
    let config = r#"
[stages.read]
kind = "text"
inputs = ["data/in.txt"]
"#;
    let p = Project::new(config);
    p.write("data/in.txt", "one");
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    // Same bytes, new mtime: nothing to do.
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.write("data/in.txt", "one");
    assert_eq!(reasons(p.path(), &reg, "read").0, Action::UpToDate);
    p.write("data/in.txt", "two");
    let (action, why) = reasons(p.path(), &reg, "read");
    assert_eq!(action, Action::Run);
    assert!(
        why[0].starts_with("input `data/in.txt` changed: "),
        "{why:?}"
    );
    run_all(p.path(), &reg, 2);
    assert_eq!(p.read("outputs/read/out.txt"), "|two");
}

#[test]
fn a_cleared_cache_is_reported_and_recomputed() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    std::fs::remove_dir_all(p.file("cache")).unwrap();
    let (action, why) = reasons(p.path(), &reg, "a");
    assert_eq!(action, Action::Run);
    assert_eq!(
        why,
        vec!["result not in the cache (cache cleared?)".to_owned()]
    );
}

#[test]
fn a_changed_input_list_and_an_unreadable_cache_entry_are_named() {
    let p = Project::new(CHAIN);
    let journal = Arc::new(Journal::default());
    let reg = registry("v1", &journal);
    run_all(p.path(), &reg, 2);
    p.write(
        "pipeline.toml",
        CHAIN.replace("inputs = [\"a:out\"]", "inputs = [\"other:out\"]"),
    );
    assert_eq!(
        reasons(p.path(), &reg, "b").1,
        vec!["inputs changed: [a:out] -> [other:out]".to_owned()]
    );
    p.write("pipeline.toml", CHAIN);
    let lock: serde_json::Value = serde_json::from_str(&p.read("pipeline.lock")).unwrap();
    let key = lock["stages"]["a"]["key"].as_str().unwrap();
    let manifest = format!("cache/manifests/{key}.json");
    std::fs::write(p.file(&manifest), "{ not json").unwrap();
    let (action, why) = reasons(p.path(), &reg, "a");
    assert_eq!(action, Action::Run);
    assert_eq!(why, vec![format!("cache entry `{manifest}` is unreadable")]);
    // The run recomputes and replaces the broken entry.
    let report = run_all(p.path(), &reg, 2);
    assert_eq!(outcome_of(&report, "a"), Outcome::Ran);
    assert_eq!(reasons(p.path(), &reg, "a").0, Action::UpToDate);
}
