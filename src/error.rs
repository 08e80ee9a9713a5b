//! Exit codes and the errors the CLI reports itself (not configuration or stage errors).
//!
//! 0 success, 1 a stage failed, 2 usage or configuration error, 130 interrupted.

use std::process::ExitCode;

/// The process exit codes, defined in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded.
    Success,
    /// A stage (or the engine while running it) failed.
    StageFailed,
    /// Bad command line, configuration or input.
    Usage,
    /// The user pressed Ctrl-C.
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::StageFailed => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        })
    }
}

/// A mistake on the command line that clap cannot catch.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A stage named on the command line is not declared.
    #[error("no stage named `{name}` in {config}{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownStage {
        /// The name as given.
        name: String,
        /// The configuration file.
        config: String,
        /// The closest declared stage.
        suggestion: Option<String>,
    },
    /// A command needs a remote cache and none is configured.
    #[error("no remote cache: pass --remote URL, set PIPELINE_REMOTE, or set `remote` in [cache]")]
    NoRemote,
    /// `show` was asked for a column the table does not have.
    #[error("`{path}` has no column `{column}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownColumn {
        /// The column as given.
        column: String,
        /// The file.
        path: String,
        /// The closest column name.
        suggestion: Option<String>,
    },
    /// `show` was given something that is not `STAGE:OUTPUT` of a Parquet output.
    #[error("{message}")]
    NotATable {
        /// What is wrong.
        message: String,
    },
    /// `inspect` was given a file it cannot read as Parquet.
    #[error("cannot read `{path}` as Parquet: {message}")]
    NotParquet {
        /// The file.
        path: String,
        /// The reader's message.
        message: String,
    },
}

/// The exit code for an error that reached `main`.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    let usage = err
        .chain()
        .any(|cause| cause.is::<crate::config_error::ConfigErrors>() || cause.is::<UsageError>());
    if usage {
        Exit::Usage
    } else {
        Exit::StageFailed
    }
}
