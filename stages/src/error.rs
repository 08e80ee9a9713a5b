//! The error type of every stage computation.
//!
//! One variant per cause, each carrying what a user needs to find the problem: the file,
//! line and column of bad input, the parameter and its value, the shapes that disagree.

use std::path::PathBuf;

/// Result alias for stage computations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad data in an input file, at a known position.
    #[error("{}:{line}{}: {message}", path.display(), column.as_ref().map(|c| format!(": column `{c}`")).unwrap_or_default())]
    BadInput {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The column's name, if the problem is in one column.
        column: Option<String>,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Bad input that is not tied to one line.
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A required input is missing (an engine bug if it happens).
    #[error("input `{slot}` was not provided")]
    MissingInput {
        /// The input slot.
        slot: &'static str,
    },
    /// A column that the stage needs is absent.
    #[error("{}: no column `{column}`", path.display())]
    ColumnNotFound {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
    },
    /// Too little data for the computation.
    #[error("{what}: needs at least {needed}, got {got}")]
    TooFew {
        /// What is counted.
        what: String,
        /// The minimum.
        needed: usize,
        /// What there is.
        got: usize,
    },
    /// A parameter that cannot work with this data.
    #[error("parameter `{param}`: {message}")]
    BadParam {
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A user's command failed.
    #[error("the command {how}{}", if tail.is_empty() { String::new() } else { format!("; the end of its stderr:\n{tail}") })]
    CommandFailed {
        /// `exited with status 3`, `was killed by signal 9`.
        how: String,
        /// The last lines of its stderr.
        tail: String,
    },
    /// A numerical computation failed.
    #[error("{what} failed: {message}")]
    Numerical {
        /// The computation.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// Parquet reading or writing failed.
    #[error("parquet `{}`: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Drawing a figure failed.
    #[error("figure `{}`: {message}", path.display())]
    Chart {
        /// The figure file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The user interrupted the run.
    #[error("interrupted")]
    Cancelled,
}

impl Error {
    /// An I/O error with the path it concerns.
    pub fn io<'a>(
        action: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    /// A Parquet error with the path it concerns.
    pub fn parquet(
        path: &std::path::Path,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Self + '_ {
        move |source| Error::Parquet {
            path: path.to_owned(),
            source,
        }
    }
}
