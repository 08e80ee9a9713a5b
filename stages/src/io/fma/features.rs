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
    /// Row-major values, `track_ids.len()` x 518.
    pub values: FeatureValues,
}

/// Feature values in the requested precision.
pub enum FeatureValues {
    /// float32 (default).
    F32(Vec<f32>),
    /// float64.
    F64(Vec<f64>),
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
    let parsed: Vec<std::result::Result<ChunkRows, RowError>> = chunks
        .par_iter()
        .map(|&(start, end)| parse_chunk(&data[start..end], float64))
        .collect();
    let mut track_ids = Vec::new();
    let (mut v32, mut v64) = (Vec::new(), Vec::new());
    for (chunk, result) in chunks.iter().zip(parsed) {
        match result {
            Ok(rows) => {
                track_ids.extend(rows.ids);
                v32.extend(rows.v32);
                v64.extend(rows.v64);
            }
            Err((local_line, column, message)) => {
                // Line numbers: header lines, plus the lines of every earlier chunk (counted
                // only on this error path, it costs a pass over the file).
                let before = memchr::memchr_iter(b'\n', &data[..chunk.0]).count();
                let line = expected_headers.len() + 1 + before + local_line;
                let column = column.map(|j| {
                    if j == 0 {
                        "track_id".to_owned()
                    } else {
                        columns[j - 1].name()
                    }
                });
                return Err(bad(path, line as u64, column.as_deref(), message));
            }
        }
    }
    if track_ids.is_empty() {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "no data rows after the four header lines".into(),
        });
    }
    let mut seen = HashMap::with_capacity(track_ids.len());
    for (row, id) in track_ids.iter().enumerate() {
        if let Some(first) = seen.insert(*id, row) {
            // Rows map to lines one to one in this file (no quoted newlines).
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
    Ok(Features {
        track_ids,
        values: if float64 {
            FeatureValues::F64(v64)
        } else {
            FeatureValues::F32(v32)
        },
    })
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

struct ChunkRows {
    ids: Vec<i64>,
    v32: Vec<f32>,
    v64: Vec<f64>,
}

fn parse_chunk(
    chunk: &[u8],
    float64: bool,
) -> std::result::Result<ChunkRows, (usize, Option<usize>, String)> {
    let mut rows = ChunkRows {
        ids: Vec::new(),
        v32: Vec::new(),
        v64: Vec::new(),
    };
    let mut line_start = 0usize;
    let mut line_index = 0usize;
    while line_start < chunk.len() {
        let line_end =
            memchr::memchr(b'\n', &chunk[line_start..]).map_or(chunk.len(), |e| line_start + e);
        let raw = &chunk[line_start..line_end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !line.is_empty() {
            parse_row(line, float64, &mut rows)
                .map_err(|(column, message)| (line_index, column, message))?;
        }
        line_start = line_end + 1;
        line_index += 1;
    }
    Ok(rows)
}

fn parse_row(
    line: &[u8],
    float64: bool,
    rows: &mut ChunkRows,
) -> std::result::Result<(), (Option<usize>, String)> {
    let text = |cell: &[u8]| String::from_utf8_lossy(cell).into_owned();
    let mut start = 0usize;
    let mut field = 0usize;
    let mut commas = memchr::memchr_iter(b',', line);
    loop {
        let end = commas.next();
        let cell = &line[start..end.unwrap_or(line.len())];
        if field == 0 {
            let id = std::str::from_utf8(cell)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    (
                        Some(0),
                        format!("cannot parse {:?} as an integer track id", text(cell)),
                    )
                })?;
            rows.ids.push(id);
        } else if field <= FEATURE_COUNT {
            if float64 {
                let v: f64 = fast_float2::parse(cell).map_err(|_| {
                    (
                        Some(field),
                        format!("cannot parse {:?} as a number", text(cell)),
                    )
                })?;
                if !v.is_finite() {
                    return Err((Some(field), format!("value {:?} is not finite", text(cell))));
                }
                rows.v64.push(v);
            } else {
                let v: f32 = fast_float2::parse(cell).map_err(|_| {
                    (
                        Some(field),
                        format!("cannot parse {:?} as a number", text(cell)),
                    )
                })?;
                if !v.is_finite() {
                    return Err((
                        Some(field),
                        format!("value {:?} is not finite in float32", text(cell)),
                    ));
                }
                rows.v32.push(v);
            }
        }
        field += 1;
        match end {
            Some(e) => start = e + 1,
            None => break,
        }
    }
    if field != FEATURE_COUNT + 1 {
        // Undo the partial row so the error is the only thing reported.
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
