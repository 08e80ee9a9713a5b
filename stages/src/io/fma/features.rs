//! The `features.csv` parser: four header lines, then 518 numbers per row, split into
//! chunks at line ends and parsed on every core (the file holds only numbers: no quoting).

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::io::fma::format::{feature_columns, FEATURE_COUNT};
use crate::io::fma::text::{bad, read_text};

/// `features.csv`, parsed.
pub struct Features {
    /// Track ids in file order.
    pub track_ids: Vec<i64>,
    /// The 518 feature columns, each `track_ids.len()` long, in `feature_columns()` order.
    pub values: FeatureValues,
}

/// Feature values in the requested precision.
pub enum FeatureValues {
    /// float32 (default).
    F32(Vec<Vec<f32>>),
    /// float64.
    F64(Vec<Vec<f64>>),
}

/// Reads and checks `features.csv`.
pub fn read_features(path: &Path, float64: bool) -> Result<Features> {
    let bytes = read_text(path)?;
    let columns = feature_columns();
    let mut pos = 0usize;
    let expected_headers: [(&str, Vec<String>); 4] = [
        (
            "feature",
            columns.iter().map(|c| c.family.to_owned()).collect(),
        ),
        (
            "statistics",
            columns.iter().map(|c| c.statistic.to_owned()).collect(),
        ),
        ("number", columns.iter().map(|c| c.number.clone()).collect()),
        ("track_id", vec![String::new(); FEATURE_COUNT]),
    ];
    for (i, (name, cells)) in expected_headers.iter().enumerate() {
        let line_no = i as u64 + 1;
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |e| pos + e);
        let line = std::str::from_utf8(&bytes[pos..end])
            .map_err(|_| bad(path, line_no, None, "not valid UTF-8".into()))?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let found: Vec<&str> = line.split(',').collect();
        if found.first() != Some(name) {
            return Err(bad(
                path,
                line_no,
                None,
                format!(
                    "expected header line {line_no} to start with `{name}`, found {:?}",
                    found.first().unwrap_or(&"")
                ),
            ));
        }
        if found.len() != FEATURE_COUNT + 1 {
            return Err(bad(
                path,
                line_no,
                None,
                format!(
                    "header line {line_no} has {} fields, expected {}",
                    found.len(),
                    FEATURE_COUNT + 1
                ),
            ));
        }
        for (j, want) in cells.iter().enumerate() {
            if found[j + 1] != want {
                return Err(bad(
                    path,
                    line_no,
                    Some(&columns[j].name()),
                    format!(
                        "header line {line_no}: expected `{want}`, found `{}`",
                        found[j + 1]
                    ),
                ));
            }
        }
        pos = (end + 1).min(bytes.len());
    }
    let data = &bytes[pos..];
    let chunks = split_lines(data, rayon::current_num_threads() * 8);
    // Rows are counted first so that every chunk parses straight into its own slice of each
    // column: no per-chunk buffers to concatenate, no row-major matrix to transpose.
    let counts: Vec<usize> = chunks
        .par_iter()
        .map(|&(start, end)| count_rows(&data[start..end]))
        .collect();
    let rows: usize = counts.iter().sum();
    if rows == 0 {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "no data rows after the four header lines".into(),
        });
    }
    let mut track_ids = vec![0i64; rows];
    let parsed = if float64 {
        parse_columns::<f64>(data, &chunks, &counts, &mut track_ids).map(FeatureValues::F64)
    } else {
        parse_columns::<f32>(data, &chunks, &counts, &mut track_ids).map(FeatureValues::F32)
    };
    let values = parsed.map_err(|(chunk, (local_line, column, message))| {
        // Line numbers: header lines, plus the lines of every earlier chunk (counted only on
        // this error path, it costs a pass over the file).
        let before = memchr::memchr_iter(b'\n', &data[..chunks[chunk].0]).count();
        let line = expected_headers.len() + 1 + before + local_line;
        let column = column.map(|j| {
            if j == 0 {
                "track_id".to_owned()
            } else {
                columns[j - 1].name()
            }
        });
        bad(path, line as u64, column.as_deref(), message)
    })?;
    let mut seen = HashMap::with_capacity(track_ids.len());
    for (row, id) in track_ids.iter().enumerate() {
        if let Some(first) = seen.insert(*id, row) {
            // Rows map to lines one to one in this file (no quoted newlines), unless blank
            // lines sit between them; the error then names the row's line among data rows.
            let line = expected_headers.len() + 1 + row;
            return Err(bad(
                path,
                line as u64,
                Some("track_id"),
                format!(
                    "duplicate track id {id} (first on line {})",
                    expected_headers.len() + 1 + first
                ),
            ));
        }
    }
    Ok(Features { track_ids, values })
}

/// A feature value type: float32 or float64.
trait FeatureFloat: fast_float2::FastFloat + Copy + Default + Send + Sync {
    /// Said after "not finite" when a value overflows this type.
    const OVERFLOW_NOTE: &'static str;
    fn finite(self) -> bool;
}

impl FeatureFloat for f32 {
    const OVERFLOW_NOTE: &'static str = " in float32";
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl FeatureFloat for f64 {
    const OVERFLOW_NOTE: &'static str = "";
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// Parses every chunk into its rows of `track_ids` and of 518 columns; on a bad row, the
/// first failing chunk's index and its error.
fn parse_columns<T: FeatureFloat>(
    data: &[u8],
    chunks: &[(usize, usize)],
    counts: &[usize],
    track_ids: &mut [i64],
) -> std::result::Result<Vec<Vec<T>>, (usize, RowError)> {
    let rows = track_ids.len();
    let mut columns: Vec<Vec<T>> = (0..FEATURE_COUNT)
        .map(|_| vec![T::default(); rows])
        .collect();
    let mut id_rest: &mut [i64] = track_ids;
    let mut column_rests: Vec<&mut [T]> = columns.iter_mut().map(Vec::as_mut_slice).collect();
    let mut shares = Vec::with_capacity(chunks.len());
    for &n in counts {
        let (ids, rest) = std::mem::take(&mut id_rest).split_at_mut(n);
        id_rest = rest;
        let share: Vec<&mut [T]> = column_rests
            .iter_mut()
            .map(|column| {
                let (head, rest) = std::mem::take(column).split_at_mut(n);
                *column = rest;
                head
            })
            .collect();
        shares.push((ids, share));
    }
    let results: Vec<std::result::Result<(), RowError>> = chunks
        .par_iter()
        .zip(shares)
        .map(|(&(start, end), (ids, mut share))| parse_chunk(&data[start..end], ids, &mut share))
        .collect();
    match results
        .into_iter()
        .enumerate()
        .find_map(|(i, r)| r.err().map(|e| (i, e)))
    {
        Some(failure) => Err(failure),
        None => Ok(columns),
    }
}

/// The data lines of `chunk`: lines that are not empty once a `\r` is stripped.
fn count_rows(chunk: &[u8]) -> usize {
    let mut rows = 0;
    let mut line_start = 0;
    for line_end in memchr::memchr_iter(b'\n', chunk).chain(std::iter::once(chunk.len())) {
        if line_end > line_start {
            let line = &chunk[line_start..line_end];
            if line != b"\r" {
                rows += 1;
            }
        }
        line_start = line_end + 1;
    }
    rows
}

/// Splits `data` into about `parts` ranges that end at line ends.
fn split_lines(data: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let step = (data.len() / parts.max(1)).max(1 << 16);
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let target = (start + step).min(data.len());
        let end = if target >= data.len() {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[target..]).map_or(data.len(), |e| target + e + 1)
        };
        ranges.push((start, end));
        start = end;
    }
    ranges
}

/// A bad row: (line within the chunk, field index, message).
type RowError = (usize, Option<usize>, String);

/// Parses the rows of `chunk` into `ids` and `columns` (one slice per feature column, as
/// long as `ids`, which is `count_rows(chunk)`).
fn parse_chunk<T: FeatureFloat>(
    chunk: &[u8],
    ids: &mut [i64],
    columns: &mut [&mut [T]],
) -> std::result::Result<(), RowError> {
    let mut line_start = 0usize;
    let mut line_index = 0usize;
    let mut row = 0usize;
    while line_start < chunk.len() {
        let line_end =
            memchr::memchr(b'\n', &chunk[line_start..]).map_or(chunk.len(), |e| line_start + e);
        let raw = &chunk[line_start..line_end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !line.is_empty() {
            parse_row(line, row, ids, columns)
                .map_err(|(column, message)| (line_index, column, message))?;
            row += 1;
        }
        line_start = line_end + 1;
        line_index += 1;
    }
    Ok(())
}

fn parse_row<T: FeatureFloat>(
    line: &[u8],
    row: usize,
    ids: &mut [i64],
    columns: &mut [&mut [T]],
) -> std::result::Result<(), (Option<usize>, String)> {
    let text = |cell: &[u8]| String::from_utf8_lossy(cell).into_owned();
    let mut start = 0usize;
    let mut field = 0usize;
    let mut commas = memchr::memchr_iter(b',', line);
    loop {
        let end = commas.next();
        let cell = &line[start..end.unwrap_or(line.len())];
        if field == 0 {
            ids[row] = std::str::from_utf8(cell)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    (
                        Some(0),
                        format!("cannot parse {:?} as an integer track id", text(cell)),
                    )
                })?;
        } else if let Some(column) = columns.get_mut(field - 1) {
            let v: T = fast_float2::parse(cell).map_err(|_| {
                (
                    Some(field),
                    format!("cannot parse {:?} as a number", text(cell)),
                )
            })?;
            if !v.finite() {
                return Err((
                    Some(field),
                    format!("value {:?} is not finite{}", text(cell), T::OVERFLOW_NOTE),
                ));
            }
            column[row] = v;
        }
        field += 1;
        match end {
            Some(e) => start = e + 1,
            None => break,
        }
    }
    if field != FEATURE_COUNT + 1 {
        return Err((
            None,
            format!(
                "expected {} fields (track_id and {FEATURE_COUNT} features), found {field}",
                FEATURE_COUNT + 1
            ),
        ));
    }
    Ok(())
}
