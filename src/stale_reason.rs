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
        }
    }
}

#[cfg(test)]
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
        ];
        for (reason, human, json) in cases {
            assert_eq!(reason.to_string(), human);
            assert_eq!(serde_json::to_string(&reason).unwrap_or_default(), json);
        }
    }
}
