//! Reading an FMA CSV file as text, and the error constructors every FMA parser shares, so
//! that a bad byte anywhere is reported as `file:line: column: message`.

use std::path::Path;

use crate::error::{Error, Result};

pub(crate) fn read_text(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "the file is empty".into(),
        });
    }
    Ok(bytes)
}

pub(crate) fn bad(path: &Path, line: u64, column: Option<&str>, message: String) -> Error {
    Error::BadInput {
        path: path.to_owned(),
        line,
        column: column.map(str::to_owned),
        message,
    }
}

pub(crate) fn csv_error(path: &Path, err: csv::Error) -> Error {
    let line = err.position().map_or(0, csv::Position::line);
    bad(path, line, None, format!("malformed CSV: {err}"))
}

/// The file name of `path`, for messages that name two files.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
