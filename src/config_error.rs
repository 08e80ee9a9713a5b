//! Configuration errors: what is wrong ([`ConfigErrorKind`]) and where ([`ConfigError`]).
//!
//! Every mistake in `pipeline.toml` is reported before any work starts, with the stage, the
//! key and the position of the offending value. Validation collects all independent errors;
//! [`ConfigErrors`] prints them sorted by line.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::span::Span;

/// What is wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Unreadable {
        /// The operating system's message.
        message: String,
    },
    /// The file is not valid TOML or has an unknown top-level key.
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// The file declares no stages.
    NoStages,
    /// A stage name has characters other than letters, digits, `_` and `-`.
    InvalidStageName {
        /// The name as written.
        stage: String,
    },
    /// A stage table has no `kind` key.
    MissingKind {
        /// The stage.
        stage: String,
    },
    /// `kind` names no built-in stage kind.
    UnknownKind {
        /// The stage.
        stage: String,
        /// The kind as written.
        kind: String,
        /// The closest known kind, if any is close.
        suggestion: Option<String>,
    },
    /// A key of the stage table is no parameter of its kind.
    UnknownParam {
        /// The stage.
        stage: String,
        /// The key as written.
        key: String,
        /// The closest known key, if any is close.
        suggestion: Option<String>,
    },
    /// A parameter has the wrong type or is out of range.
    InvalidParam {
        /// The stage.
        stage: String,
        /// The key.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A required parameter is absent.
    MissingParam {
        /// The stage.
        stage: String,
        /// The key that must be given.
        key: String,
    },
    /// `inputs` is not a list of strings.
    InputsNotList {
        /// The stage.
        stage: String,
    },
    /// The number of inputs does not fit the kind.
    InputCount {
        /// The stage.
        stage: String,
        /// The kind.
        kind: String,
        /// The slots the kind expects, for the message.
        expected: String,
        /// How many were given.
        got: usize,
    },
    /// An input names a stage that is not declared.
    UnknownStage {
        /// The stage whose input is wrong.
        stage: String,
        /// The upstream name as written.
        upstream: String,
        /// The closest declared stage, if any is close.
        suggestion: Option<String>,
    },
    /// An input names an output the upstream stage does not write.
    UnknownOutput {
        /// The stage whose input is wrong.
        stage: String,
        /// The upstream stage.
        upstream: String,
        /// The output as written.
        output: String,
        /// The outputs the upstream stage writes.
        available: Vec<String>,
    },
    /// A stage lists itself as an input.
    SelfDependency {
        /// The stage.
        stage: String,
    },
    /// The stages form a cycle; the path starts and ends with the same stage.
    Cycle {
        /// The stages in the cycle, in dependency order.
        path: Vec<String>,
    },
    /// An external input file does not exist.
    MissingFile {
        /// The stage.
        stage: String,
        /// The path as written (relative to `pipeline.toml`).
        path: String,
    },
    /// An input path names a folder or something else that is not a regular file.
    NotAFile {
        /// The stage.
        stage: String,
        /// The path as written (relative to `pipeline.toml`).
        path: String,
        /// What it is (`a folder`).
        what: String,
    },
    /// A `--set` argument cannot be applied.
    InvalidOverride {
        /// The argument.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument names no stage of the file.
    UnknownOverrideStage {
        /// The stage as written.
        stage: String,
        /// The closest stage name, if any is close.
        suggestion: Option<String>,
    },
    /// A key in `[cache]` is not understood.
    InvalidCache {
        /// What is wrong.
        message: String,
    },
    /// A key in `[executor]` is not understood.
    InvalidExecutor {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A key in `[stages.NAME.resources]` is not understood.
    InvalidResources {
        /// The stage.
        stage: String,
        /// The key (empty when `resources` itself is not a table).
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind as K;
        match self {
            K::Unreadable { message } => write!(f, "cannot read the configuration: {message}"),
            K::Syntax { message } => write!(f, "{message}"),
            K::NoStages => write!(f, "no stages declared: add a `[stages.NAME]` table"),
            K::InvalidStageName { stage } => write!(
                f,
                "stage name `{stage}` may only hold letters, digits, `_` and `-`"
            ),
            K::MissingKind { stage } => write!(f, "stage `{stage}` has no `kind` key"),
            K::UnknownKind {
                stage,
                kind,
                suggestion,
            } => {
                write!(f, "stage `{stage}` has unknown kind `{kind}`")?;
                did_you_mean(f, suggestion.as_deref())
            }
            K::UnknownParam {
                stage,
                key,
                suggestion,
            } => {
                write!(f, "stage `{stage}`: unknown key `{key}`")?;
                did_you_mean(f, suggestion.as_deref())
            }
            K::InvalidParam {
                stage,
                key,
                message,
            } => write!(f, "stage `{stage}`: key `{key}`: {message}"),
            K::MissingParam { stage, key } => {
                write!(f, "stage `{stage}`: required key `{key}` is missing")
            }
            K::InputsNotList { stage } => write!(
                f,
                "stage `{stage}`: `inputs` must be a list of strings such as [\"pca:scores\"]"
            ),
            K::InputCount {
                stage,
                kind,
                expected,
                got,
            } => write!(
                f,
                "stage `{stage}`: kind `{kind}` takes inputs [{expected}], got {got} {}",
                if *got == 1 { "input" } else { "inputs" }
            ),
            K::UnknownStage {
                stage,
                upstream,
                suggestion,
            } => {
                write!(f, "stage `{stage}` depends on unknown stage `{upstream}`")?;
                did_you_mean(f, suggestion.as_deref())
            }
            K::UnknownOutput {
                stage,
                upstream,
                output,
                available,
            } => write!(
                f,
                "stage `{stage}`: stage `{upstream}` has no output `{output}` (it writes: {})",
                available.join(", ")
            ),
            K::SelfDependency { stage } => write!(f, "stage `{stage}` depends on itself"),
            K::Cycle { path } => write!(f, "dependency cycle: {}", path.join(" -> ")),
            K::MissingFile { stage, path } => {
                write!(f, "stage `{stage}`: input file `{path}` does not exist")
            }
            K::NotAFile { stage, path, what } => {
                write!(f, "stage `{stage}`: input `{path}` is {what}, not a file")
            }
            K::InvalidOverride { text, message } => write!(f, "--set {text}: {message}"),
            K::UnknownOverrideStage { stage, suggestion } => {
                write!(f, "--set: no stage named `{stage}`")?;
                did_you_mean(f, suggestion.as_deref())
            }
            K::InvalidCache { message } => write!(f, "[cache]: {message}"),
            K::InvalidExecutor { key, message } => write!(f, "[executor] {key}: {message}"),
            K::InvalidResources {
                stage,
                key,
                message,
            } if key.is_empty() => write!(f, "stage `{stage}`: resources: {message}"),
            K::InvalidResources {
                stage,
                key,
                message,
            } => write!(f, "stage `{stage}`: resources.{key}: {message}"),
        }
    }
}

fn did_you_mean(f: &mut fmt::Formatter<'_>, suggestion: Option<&str>) -> fmt::Result {
    match suggestion {
        Some(s) => write!(f, "; did you mean `{s}`?"),
        None => Ok(()),
    }
}

/// A configuration error with the position it refers to.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The configuration file, as given by the user.
    pub file: PathBuf,
    /// The text of the configuration file, for rendering the offending line.
    pub source: Arc<str>,
    /// The offending value, if the error points at one.
    pub span: Option<Span>,
    /// Where the `--set` lines appended to `source` start (`source.len()` when none).
    pub overrides_start: usize,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// The 1-based line the error points at (0 when it points at none).
    pub fn line(&self) -> usize {
        self.span.as_ref().map_or(0, |s| s.start(&self.source).line)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match &self.span {
            Some(span) if span.range.start >= self.overrides_start => {
                write!(f, "\n{}", span.render_override(&self.source))?;
            }
            Some(span) => write!(
                f,
                "\n{}",
                span.render(&self.source, &self.file.display().to_string())
            )?,
            None => {}
        }
        Ok(())
    }
}

/// All the configuration errors found, sorted by line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
                write!(f, "error: ")?;
            }
            write!(f, "{error}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} configuration errors", self.0.len())?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `name`, if it is close enough to be a typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 4) && *distance < c.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.to_owned())
}
