//! Why a stage is not up to date: one variant per cause, rendered once for people
//! ([`fmt::Display`]) and serialised once for machines (`status --json`).
//!
//! No reason text is built anywhere else.

use std::fmt;

use serde::Serialize;

/// One reason a stage must run or be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum StaleReason {
    /// No result of this stage was ever recorded.
    NeverRun,
    /// `--force` was given.
    Forced,
    /// The cache entry for the current key could not be read.
    ManifestUnreadable {
        /// The manifest file.
        path: String,
    },
    /// The stage's kind changed.
    KindChanged {
        /// The recorded kind.
        old: String,
        /// The configured kind.
        new: String,
    },
    /// The code of the stage's kind changed.
    CodeVersionChanged {
        /// The recorded version.
        old: String,
        /// The current version.
        new: String,
    },
    /// The cache format of the engine changed.
    CacheFormatChanged {
        /// The recorded format.
        old: u32,
        /// The current format.
        new: u32,
    },
    /// A parameter changed (or was added or removed: `null` on the missing side).
    ParamChanged {
        /// The parameter.
        param: String,
        /// The recorded value, as JSON.
        old: String,
        /// The configured value, as JSON.
        new: String,
    },
    /// The list of inputs changed.
    InputsChanged {
        /// The recorded inputs.
        old: Vec<String>,
        /// The configured inputs.
        new: Vec<String>,
    },
    /// The content of one input changed.
    InputChanged {
        /// The input (`stage:output` or a path).
        input: String,
        /// Short hash of the recorded content.
        old: String,
        /// Short hash of the current content.
        new: String,
    },
    /// An input file is missing.
    InputMissing {
        /// The path, relative to the project.
        path: String,
    },
    /// An upstream stage must run first.
    UpstreamStale {
        /// The stage this one reads from.
        stage: String,
        /// The stage where the chain of stale stages starts.
        root: String,
    },
    /// Nothing changed since the last run, but its result is no longer in the cache.
    ResultNotCached,
    /// A published output file is missing.
    OutputMissing {
        /// The path, relative to the project.
        path: String,
    },
    /// A published output file was modified.
    OutputModified {
        /// The path, relative to the project.
        path: String,
    },
    /// A code file of the stage (a command's script) changed.
    CodeFileChanged {
        /// The path, as written.
        path: String,
    },
    /// The list of code files changed.
    CodeFilesChanged {
        /// The recorded files.
        old: Vec<String>,
        /// The configured files.
        new: Vec<String>,
    },
    /// An environment variable the stage declares changed (its value is never shown).
    EnvChanged {
        /// The variable.
        name: String,
    },
    /// An object of the cached result is missing or does not match its hash.
    CachedObjectDamaged {
        /// The output it holds.
        output: String,
        /// Short hash of the object.
        object: String,
        /// `missing` or `corrupt`.
        problem: String,
    },
    /// The cached result for the key does not have the outputs the stage declares.
    CachedOutputsDiffer {
        /// The manifest file.
        path: String,
    },
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StaleReason as R;
        match self {
            R::NeverRun => write!(f, "never run"),
            R::Forced => write!(f, "forced (--force)"),
            R::ManifestUnreadable { path } => write!(f, "cache entry `{path}` is unreadable"),
            R::KindChanged { old, new } => write!(f, "kind changed: {old} -> {new}"),
            R::CodeVersionChanged { old, new } => {
                write!(f, "code version changed: {old} -> {new}")
            }
            R::CacheFormatChanged { old, new } => {
                write!(f, "cache format changed: {old} -> {new}")
            }
            R::ParamChanged { param, old, new } => {
                write!(f, "param `{param}` changed: {old} -> {new}")
            }
            R::InputsChanged { old, new } => write!(
                f,
                "inputs changed: [{}] -> [{}]",
                old.join(", "),
                new.join(", ")
            ),
            R::InputChanged { input, old, new } => {
                write!(f, "input `{input}` changed: {old} -> {new}")
            }
            R::InputMissing { path } => write!(f, "input `{path}` is missing"),
            R::UpstreamStale { stage, root } if stage == root => {
                write!(f, "upstream `{stage}` is stale")
            }
            R::UpstreamStale { stage, root } => {
                write!(f, "upstream `{stage}` is stale (because `{root}` is stale)")
            }
            R::ResultNotCached => write!(f, "result not in the cache (cache cleared?)"),
            R::OutputMissing { path } => write!(f, "output `{path}` is missing"),
            R::OutputModified { path } => write!(f, "output `{path}` was modified"),
            R::CodeFileChanged { path } => write!(f, "code file {path} changed"),
            R::CodeFilesChanged { old, new } => write!(
                f,
                "code files changed: [{}] -> [{}]",
                old.join(", "),
                new.join(", ")
            ),
            R::EnvChanged { name } => write!(f, "env `{name}` changed"),
            R::CachedObjectDamaged {
                output,
                object,
                problem,
            } => write!(
                f,
                "cached object {object} of output `{output}` is {problem}"
            ),
            R::CachedOutputsDiffer { path } => {
                write!(f, "cache entry `{path}` does not list the declared outputs")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_a_pinned_human_and_json_form() {
        let cases = [
            (
                StaleReason::NeverRun,
                "never run",
                r#"{"reason":"never-run"}"#,
            ),
            (
                StaleReason::ParamChanged {
                    param: "n_components".into(),
                    old: "2".into(),
                    new: "3".into(),
                },
                "param `n_components` changed: 2 -> 3",
                r#"{"reason":"param-changed","param":"n_components","old":"2","new":"3"}"#,
            ),
            (
                StaleReason::UpstreamStale {
                    stage: "pca".into(),
                    root: "ingest".into(),
                },
                "upstream `pca` is stale (because `ingest` is stale)",
                r#"{"reason":"upstream-stale","stage":"pca","root":"ingest"}"#,
            ),
            (
                StaleReason::OutputModified {
                    path: "outputs/pca/scores.parquet".into(),
                },
                "output `outputs/pca/scores.parquet` was modified",
                r#"{"reason":"output-modified","path":"outputs/pca/scores.parquet"}"#,
            ),
            (
                StaleReason::CodeVersionChanged {
                    old: "aaaa".into(),
                    new: "bbbb".into(),
                },
                "code version changed: aaaa -> bbbb",
                r#"{"reason":"code-version-changed","old":"aaaa","new":"bbbb"}"#,
            ),
            (
                StaleReason::ResultNotCached,
                "result not in the cache (cache cleared?)",
                r#"{"reason":"result-not-cached"}"#,
            ),
            (
                StaleReason::Forced,
                "forced (--force)",
                r#"{"reason":"forced"}"#,
            ),
            (
                StaleReason::ManifestUnreadable {
                    path: "cache/manifests/ab.json".into(),
                },
                "cache entry `cache/manifests/ab.json` is unreadable",
                r#"{"reason":"manifest-unreadable","path":"cache/manifests/ab.json"}"#,
            ),
            (
                StaleReason::KindChanged {
                    old: "pca".into(),
                    new: "lsi".into(),
                },
                "kind changed: pca -> lsi",
                r#"{"reason":"kind-changed","old":"pca","new":"lsi"}"#,
            ),
            (
                StaleReason::CacheFormatChanged { old: 1, new: 2 },
                "cache format changed: 1 -> 2",
                r#"{"reason":"cache-format-changed","old":1,"new":2}"#,
            ),
            (
                StaleReason::InputsChanged {
                    old: vec!["a:x".into()],
                    new: vec!["a:x".into(), "b:y".into()],
                },
                "inputs changed: [a:x] -> [a:x, b:y]",
                r#"{"reason":"inputs-changed","old":["a:x"],"new":["a:x","b:y"]}"#,
            ),
            (
                StaleReason::InputChanged {
                    input: "ingest:features".into(),
                    old: "aaaa".into(),
                    new: "bbbb".into(),
                },
                "input `ingest:features` changed: aaaa -> bbbb",
                r#"{"reason":"input-changed","input":"ingest:features","old":"aaaa","new":"bbbb"}"#,
            ),
            (
                StaleReason::InputMissing {
                    path: "data/x.csv".into(),
                },
                "input `data/x.csv` is missing",
                r#"{"reason":"input-missing","path":"data/x.csv"}"#,
            ),
            (
                StaleReason::UpstreamStale {
                    stage: "pca".into(),
                    root: "pca".into(),
                },
                "upstream `pca` is stale",
                r#"{"reason":"upstream-stale","stage":"pca","root":"pca"}"#,
            ),
            (
                StaleReason::OutputMissing {
                    path: "outputs/pca/scores.parquet".into(),
                },
                "output `outputs/pca/scores.parquet` is missing",
                r#"{"reason":"output-missing","path":"outputs/pca/scores.parquet"}"#,
            ),
            (
                StaleReason::CachedObjectDamaged {
                    output: "scores".into(),
                    object: "e2ab01cd9f00".into(),
                    problem: "corrupt".into(),
                },
                "cached object e2ab01cd9f00 of output `scores` is corrupt",
                r#"{"reason":"cached-object-damaged","output":"scores","object":"e2ab01cd9f00","problem":"corrupt"}"#,
            ),
            (
                StaleReason::CodeFileChanged {
                    path: "scripts/count.py".into(),
                },
                "code file scripts/count.py changed",
                r#"{"reason":"code-file-changed","path":"scripts/count.py"}"#,
            ),
            (
                StaleReason::CodeFilesChanged {
                    old: vec![],
                    new: vec!["a.py".into()],
                },
                "code files changed: [] -> [a.py]",
                r#"{"reason":"code-files-changed","old":[],"new":["a.py"]}"#,
            ),
            (
                StaleReason::EnvChanged {
                    name: "MY_SETTING".into(),
                },
                "env `MY_SETTING` changed",
                r#"{"reason":"env-changed","name":"MY_SETTING"}"#,
            ),
            (
                StaleReason::CachedOutputsDiffer {
                    path: "cache/manifests/ab.json".into(),
                },
                "cache entry `cache/manifests/ab.json` does not list the declared outputs",
                r#"{"reason":"cached-outputs-differ","path":"cache/manifests/ab.json"}"#,
            ),
        ];
        // Every variant has a row: a new variant fails to compile here until it gets one.
        let covered: std::collections::BTreeSet<usize> =
            cases.iter().map(|(reason, _, _)| variant(reason)).collect();
        assert_eq!(covered.len(), VARIANTS, "a variant has no pinned row");
        for (reason, human, json) in cases {
            assert_eq!(reason.to_string(), human);
            assert_eq!(serde_json::to_string(&reason).unwrap(), json);
        }
    }

    const VARIANTS: usize = 19;

    fn variant(reason: &StaleReason) -> usize {
        use StaleReason as R;
        match reason {
            R::NeverRun => 0,
            R::Forced => 1,
            R::ManifestUnreadable { .. } => 2,
            R::KindChanged { .. } => 3,
            R::CodeVersionChanged { .. } => 4,
            R::CacheFormatChanged { .. } => 5,
            R::ParamChanged { .. } => 6,
            R::InputsChanged { .. } => 7,
            R::InputChanged { .. } => 8,
            R::InputMissing { .. } => 9,
            R::UpstreamStale { .. } => 10,
            R::ResultNotCached => 11,
            R::OutputMissing { .. } => 12,
            R::OutputModified { .. } => 13,
            R::CachedObjectDamaged { .. } => 14,
            R::CachedOutputsDiffer { .. } => 15,
            R::CodeFileChanged { .. } => 16,
            R::CodeFilesChanged { .. } => 17,
            R::EnvChanged { .. } => 18,
        }
    }
}
