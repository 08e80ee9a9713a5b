//! Reading an FMA CSV file as text, and the error constructors every FMA parser shares, so
//! that a bad byte anywhere is reported as `file:line: column: message`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::file_bytes::FileBytes;

/// The bytes of a text file, after any UTF-8 byte order mark.
pub(crate) struct Text {
    bytes: FileBytes,
    start: usize,
}

impl std::ops::Deref for Text {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

pub(crate) fn read_text(path: &Path) -> Result<Text> {
    let file = std::fs::File::open(path).map_err(Error::io("read", path))?;
    let bytes = FileBytes::load(&file).map_err(Error::io("read", path))?;
    let mut text = Text { bytes, start: 0 };
    if text.starts_with(b"\xEF\xBB\xBF") {
        text.start = 3;
    }
    if text.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "the file is empty".into(),
        });
    }
    Ok(text)
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

/// The error for a record with the wrong number of fields: a runaway quote when that is what
/// it is (a quote opened in the record and never closed swallows the rest of the file),
/// `expected` otherwise.
pub(crate) fn field_count_error(
    path: &Path,
    bytes: &[u8],
    record: &csv::StringRecord,
    line: u64,
    expected: String,
) -> Error {
    match unclosed_quote(bytes, record) {
        Some(opened) => bad(
            path,
            opened,
            None,
            format!("a quote opened on line {opened} is never closed"),
        ),
        None => bad(path, line, None, expected),
    }
}

/// The line of a quote that opens in `record` (or after it) and is never closed before the end
/// of the file: what a field-count mismatch really is when a quote runs away with the rest of
/// the file.
pub(crate) fn unclosed_quote(bytes: &[u8], record: &csv::StringRecord) -> Option<u64> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        InField,
        Quoted,
        QuoteInQuoted,
    }
    let position = record.position()?;
    let start = usize::try_from(position.byte()).ok()?;
    let mut line = position.line();
    let mut opened_on = line;
    let mut state = State::FieldStart;
    for &b in bytes.get(start..)? {
        state = match (state, b) {
            (State::FieldStart, b'"') => {
                opened_on = line;
                State::Quoted
            }
            (State::FieldStart | State::InField, b',' | b'\n') => State::FieldStart,
            (State::FieldStart | State::InField, _) => State::InField,
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            // `""` inside a quoted field is a quote character: still quoted.
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::QuoteInQuoted, b',' | b'\n') => State::FieldStart,
            (State::QuoteInQuoted, _) => State::InField,
        };
        if b == b'\n' {
            line += 1;
        }
    }
    (state == State::Quoted).then_some(opened_on)
}
