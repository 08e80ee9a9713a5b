//! `ingest`: the FMA CSV files to typed Parquet, with every input error pointing at its file,
//! line and column.
//!
//! Outputs: `features.parquet` (`track_id` + 518 float columns `family.statistic.number`),
//! `tracks.parquet` (`level.field` columns, genre lists as `list<int32>`, integers and
//! dates typed, text exact), `genres.parquet`, and the binary track x genre matrices
//! `labels_genres.parquet` / `labels_genres_all.parquet` (one column per genre in
//! genres.csv order, titled by name, plus `N/A` for an empty list).
//!
//! `features.csv` is parsed by a parallel splitter (it holds only numbers: no quoting);
//! `tracks.csv` and `genres.csv` by the `csv` crate, which handles quoted commas, doubled
//! quotes and embedded newlines. A UTF-8 BOM and CRLF line endings are accepted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, StringArray, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fma_format::{
    feature_columns, parse_genre_list, Genre, Taxonomy, TrackColumnType, FEATURE_COUNT,
    GENRES_HEADER, TRACK_COLUMNS,
};
use crate::kind::{InputSpec, OutputSpec, Params, Stage, StageIo};
use crate::parquet_io::write_columns;

/// Parameters of `ingest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestParams {
    /// Write features as float64 instead of float32 (they were computed in float32).
    pub float64: bool,
}

impl Params for IngestParams {}

/// The ingest stage.
pub struct Ingest;

impl Stage for Ingest {
    type Params = IngestParams;
    const KIND: &'static str = "ingest";
    const SOURCES: &'static [&'static str] = &["ingest.rs", "fma_format.rs", "parquet_io.rs"];

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["features", "tracks", "genres"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("features", "features.parquet"),
            OutputSpec::new("tracks", "tracks.parquet"),
            OutputSpec::new("genres", "genres.parquet"),
            OutputSpec::new("labels_genres", "labels_genres.parquet"),
            OutputSpec::new("labels_genres_all", "labels_genres_all.parquet"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let features_csv = io.input(0, "features")?;
        let tracks_csv = io.input(1, "tracks")?;
        let genres_csv = io.input(2, "genres")?;
        let started = std::time::Instant::now();
        let taxonomy = read_genres(genres_csv)?;
        io.check_cancelled()?;
        // tracks.csv goes through the sequential CSV parser beside the parallel features
        // parser; when both files are bad, the tracks error is reported.
        let (tracks, features) = rayon::join(
            || read_tracks(tracks_csv, &taxonomy),
            || read_features(features_csv, params.float64),
        );
        let (tracks, features) = (tracks?, features?);
        tracing::debug!(
            "ingest: features.csv parsed at {:.2}s",
            started.elapsed().as_secs_f64()
        );
        check_same_tracks(
            features_csv,
            &features.track_ids,
            tracks_csv,
            &tracks.track_ids,
        )?;
        io.check_cancelled()?;
        let Tracks {
            track_ids,
            genres,
            genres_all,
            columns,
        } = tracks;
        // The large features file on one thread, everything else on the other.
        let (written, rest) = rayon::join(
            || write_features(&io.output("features.parquet"), &features, io.provenance),
            || -> Result<()> {
                write_tracks(&io.output("tracks.parquet"), columns, io.provenance)?;
                write_genres(&io.output("genres.parquet"), &taxonomy, io.provenance)?;
                write_labels(
                    &io.output("labels_genres.parquet"),
                    &taxonomy,
                    &track_ids,
                    &genres,
                    io.provenance,
                )?;
                write_labels(
                    &io.output("labels_genres_all.parquet"),
                    &taxonomy,
                    &track_ids,
                    &genres_all,
                    io.provenance,
                )
            },
        );
        written?;
        rest?;
        tracing::debug!(
            "ingest: Parquet written at {:.2}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn read_text(path: &Path) -> Result<Vec<u8>> {
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

fn bad(path: &Path, line: u64, column: Option<&str>, message: String) -> Error {
    Error::BadInput {
        path: path.to_owned(),
        line,
        column: column.map(str::to_owned),
        message,
    }
}

fn csv_error(path: &Path, err: csv::Error) -> Error {
    let line = err.position().map_or(0, csv::Position::line);
    bad(path, line, None, format!("malformed CSV: {err}"))
}

/// Reads and checks `genres.csv`.
pub fn read_genres(path: &Path) -> Result<Taxonomy> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut genres = Vec::new();
    let mut seen = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record
            .position()
            .map_or(index as u64 + 1, csv::Position::line);
        if index == 0 {
            let found: Vec<&str> = record.iter().collect();
            if found != GENRES_HEADER {
                return Err(bad(
                    path,
                    line,
                    None,
                    format!(
                        "expected the header `{}`, found `{}`",
                        GENRES_HEADER.join(","),
                        found.join(",")
                    ),
                ));
            }
            continue;
        }
        if record.len() != GENRES_HEADER.len() {
            return Err(bad(
                path,
                line,
                None,
                format!(
                    "expected {} fields, found {}",
                    GENRES_HEADER.len(),
                    record.len()
                ),
            ));
        }
        let int = |i: usize| -> Result<i64> {
            record[i].trim().parse::<i64>().map_err(|_| {
                bad(
                    path,
                    line,
                    Some(GENRES_HEADER[i]),
                    format!("cannot parse {:?} as an integer", &record[i]),
                )
            })
        };
        let genre = Genre {
            id: int(0)? as i32,
            tracks: int(1)?,
            parent: int(2)? as i32,
            title: record[3].to_owned(),
            top_level: int(4)? as i32,
        };
        if !seen.insert(genre.id) {
            return Err(bad(
                path,
                line,
                Some("genre_id"),
                format!("duplicate genre id {}", genre.id),
            ));
        }
        genres.push(genre);
    }
    let ids: HashSet<i32> = genres.iter().map(|g| g.id).collect();
    for g in &genres {
        if g.parent != 0 && !ids.contains(&g.parent) {
            return Err(Error::BadFile {
                path: path.to_owned(),
                message: format!(
                    "genre {} has parent {}, which is not defined",
                    g.id, g.parent
                ),
            });
        }
    }
    if genres.is_empty() {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: "no genres after the header".into(),
        });
    }
    Ok(Taxonomy::new(genres))
}

/// `tracks.csv`, typed.
pub struct Tracks {
    /// Track ids in file order.
    pub track_ids: Vec<i64>,
    /// `track.genres` per track.
    pub genres: Vec<Vec<i32>>,
    /// `track.genres_all` per track.
    pub genres_all: Vec<Vec<i32>>,
    /// Every column, `track_id` first.
    pub columns: Vec<(String, ArrayRef)>,
}

enum ColumnBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Timestamp(TimestampMillisecondBuilder),
    List(ListBuilder<Int32Builder>),
    Text(StringBuilder),
}

/// Reads and checks `tracks.csv`.
pub fn read_tracks(path: &Path, taxonomy: &Taxonomy) -> Result<Tracks> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let expected_fields = TRACK_COLUMNS.len() + 1;
    let mut builders: Vec<ColumnBuilder> = TRACK_COLUMNS
        .iter()
        .map(|(_, _, ty)| match ty {
            TrackColumnType::Int => ColumnBuilder::Int(Int64Builder::new()),
            TrackColumnType::Float => ColumnBuilder::Float(Float64Builder::new()),
            TrackColumnType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMillisecondBuilder::new())
            }
            TrackColumnType::GenreList => {
                ColumnBuilder::List(ListBuilder::new(Int32Builder::new()))
            }
            TrackColumnType::Text => ColumnBuilder::Text(StringBuilder::new()),
        })
        .collect();
    let mut track_ids = Vec::new();
    let mut seen = HashMap::new();
    let mut genres = Vec::new();
    let mut genres_all = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut index = 0usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = record
            .position()
            .map_or(index as u64 + 1, csv::Position::line);
        index += 1;
        if index <= 3 {
            check_tracks_header(path, line, index, &record)?;
            continue;
        }
        if record.len() != expected_fields {
            return Err(bad(
                path,
                line,
                None,
                format!(
                    "expected {expected_fields} fields (track_id and {} columns), found {}",
                    TRACK_COLUMNS.len(),
                    record.len()
                ),
            ));
        }
        let id: i64 = record[0].trim().parse().map_err(|_| {
            bad(
                path,
                line,
                Some("track_id"),
                format!("cannot parse {:?} as an integer track id", &record[0]),
            )
        })?;
        if let Some(first) = seen.insert(id, line) {
            return Err(bad(
                path,
                line,
                Some("track_id"),
                format!("duplicate track id {id} (first on line {first})"),
            ));
        }
        track_ids.push(id);
        for (c, ((level, field, _), builder)) in
            TRACK_COLUMNS.iter().zip(builders.iter_mut()).enumerate()
        {
            let cell = &record[c + 1];
            let column = format!("{level}.{field}");
            match builder {
                ColumnBuilder::Int(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        // pandas writes integer columns with missing values as floats (`3.0`).
                        let value = cell.parse::<i64>().ok().or_else(|| {
                            cell.parse::<f64>()
                                .ok()
                                .filter(|v| v.fract() == 0.0 && v.is_finite())
                                .map(|v| v as i64)
                        });
                        b.append_value(value.ok_or_else(|| {
                            bad(
                                path,
                                line,
                                Some(&column),
                                format!("cannot parse {cell:?} as an integer"),
                            )
                        })?);
                    }
                }
                ColumnBuilder::Float(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        b.append_value(cell.parse::<f64>().map_err(|_| {
                            bad(
                                path,
                                line,
                                Some(&column),
                                format!("cannot parse {cell:?} as a number"),
                            )
                        })?);
                    }
                }
                ColumnBuilder::Timestamp(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        b.append_value(parse_timestamp(cell).ok_or_else(|| bad(path, line, Some(&column), format!("cannot parse {cell:?} as a date (expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)")))?);
                    }
                }
                ColumnBuilder::List(b) => {
                    let ids =
                        parse_genre_list(cell).map_err(|m| bad(path, line, Some(&column), m))?;
                    for g in &ids {
                        if taxonomy.position(*g).is_none() {
                            return Err(bad(
                                path,
                                line,
                                Some(&column),
                                format!("genre id {g} is not defined in genres.csv"),
                            ));
                        }
                    }
                    b.values().append_slice(&ids);
                    b.append(true);
                    if *field == "genres" {
                        genres.push(ids);
                    } else {
                        genres_all.push(ids);
                    }
                }
                ColumnBuilder::Text(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        b.append_value(cell);
                    }
                }
            }
        }
    }
    if index < 3 {
        return Err(bad(
            path,
            index as u64 + 1,
            None,
            "expected three header lines (top level, field names, track_id)".into(),
        ));
    }
    let mut columns: Vec<(String, ArrayRef)> = vec![(
        "track_id".into(),
        Arc::new(Int64Array::from(track_ids.clone())),
    )];
    for ((level, field, _), builder) in TRACK_COLUMNS.iter().zip(builders) {
        let array: ArrayRef = match builder {
            ColumnBuilder::Int(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish()),
            ColumnBuilder::List(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Text(mut b) => Arc::new(b.finish()),
        };
        columns.push((format!("{level}.{field}"), array));
    }
    Ok(Tracks {
        track_ids,
        genres,
        genres_all,
        columns,
    })
}

fn check_tracks_header(
    path: &Path,
    line: u64,
    index: usize,
    record: &csv::StringRecord,
) -> Result<()> {
    let expected: Vec<&str> = match index {
        1 => TRACK_COLUMNS.iter().map(|(level, _, _)| *level).collect(),
        2 => TRACK_COLUMNS.iter().map(|(_, field, _)| *field).collect(),
        _ => {
            if record.get(0) != Some("track_id") {
                return Err(bad(
                    path,
                    line,
                    None,
                    format!(
                        "expected the third header line to start with `track_id`, found {:?}",
                        record.get(0).unwrap_or("")
                    ),
                ));
            }
            return Ok(());
        }
    };
    if record.len() != expected.len() + 1 {
        return Err(bad(
            path,
            line,
            None,
            format!(
                "header line {index} has {} fields, expected {}",
                record.len(),
                expected.len() + 1
            ),
        ));
    }
    for (i, want) in expected.iter().enumerate() {
        let found = &record[i + 1];
        if found != *want {
            return Err(bad(
                path,
                line,
                None,
                format!(
                    "header line {index}, field {}: expected `{want}`, found `{found}`",
                    i + 2
                ),
            ));
        }
    }
    Ok(())
}

fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = text.split_once(' ').unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(0..24).contains(&hh) || !(0..60).contains(&mm) || !(0..61).contains(&ss) {
        return None;
    }
    Some((days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

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

fn check_same_tracks(
    features: &Path,
    feature_ids: &[i64],
    tracks: &Path,
    track_ids: &[i64],
) -> Result<()> {
    let in_tracks: HashSet<i64> = track_ids.iter().copied().collect();
    if let Some(missing) = feature_ids.iter().find(|id| !in_tracks.contains(id)) {
        return Err(Error::BadFile {
            path: features.to_owned(),
            message: format!(
                "track {missing} is in {} but not in {}",
                file_name(features),
                file_name(tracks)
            ),
        });
    }
    let in_features: HashSet<i64> = feature_ids.iter().copied().collect();
    if let Some(missing) = track_ids.iter().find(|id| !in_features.contains(id)) {
        return Err(Error::BadFile {
            path: tracks.to_owned(),
            message: format!(
                "track {missing} is in {} but not in {}",
                file_name(tracks),
                file_name(features)
            ),
        });
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn write_features(path: &Path, features: &Features, provenance: &[(String, String)]) -> Result<()> {
    let names = feature_columns();
    let rows = features.track_ids.len();
    let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(features.track_ids.clone()))];
    let float_type = match features.values {
        FeatureValues::F32(_) => DataType::Float32,
        FeatureValues::F64(_) => DataType::Float64,
    };
    fields.extend(
        names
            .iter()
            .map(|c| Field::new(c.name(), float_type.clone(), false)),
    );
    let gathered: Vec<ArrayRef> = (0..FEATURE_COUNT)
        .into_par_iter()
        .map(|j| -> ArrayRef {
            match &features.values {
                FeatureValues::F32(v) => Arc::new(Float32Array::from_iter_values(
                    (0..rows).map(|r| v[r * FEATURE_COUNT + j]),
                )),
                FeatureValues::F64(v) => Arc::new(Float64Array::from_iter_values(
                    (0..rows).map(|r| v[r * FEATURE_COUNT + j]),
                )),
            }
        })
        .collect();
    columns.extend(gathered);
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        columns,
        provenance,
        false,
    )
}

fn write_tracks(
    path: &Path,
    columns: Vec<(String, ArrayRef)>,
    provenance: &[(String, String)],
) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        // Every column but `track_id` is nullable, whatever this file holds, so the schema
        // is the same for every tracks.csv.
        .map(|(name, array)| Field::new(name, array.data_type().clone(), name != "track_id"))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        arrays,
        provenance,
        true,
    )
}

fn write_genres(path: &Path, taxonomy: &Taxonomy, provenance: &[(String, String)]) -> Result<()> {
    let g = &taxonomy.genres;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "genre_id",
            Arc::new(Int32Array::from_iter_values(g.iter().map(|x| x.id))),
        ),
        (
            "#tracks",
            Arc::new(Int64Array::from_iter_values(g.iter().map(|x| x.tracks))),
        ),
        (
            "parent",
            Arc::new(Int32Array::from_iter_values(g.iter().map(|x| x.parent))),
        ),
        (
            "title",
            Arc::new(StringArray::from_iter_values(
                g.iter().map(|x| x.title.as_str()),
            )),
        ),
        (
            "top_level",
            Arc::new(Int32Array::from_iter_values(g.iter().map(|x| x.top_level))),
        ),
    ];
    crate::parquet_io::write_table(path, columns, provenance)
}

/// The label column titles: genre titles in genres.csv order, then `N/A`.
pub fn label_titles(taxonomy: &Taxonomy) -> Vec<String> {
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    let mut titles: Vec<String> = taxonomy
        .genres
        .iter()
        .map(|g| {
            // Titles are unique in the real taxonomy; disambiguate if a file repeats one.
            let n = used.entry(g.title.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                g.title.clone()
            } else {
                format!("{} ({})", g.title, g.id)
            }
        })
        .collect();
    titles.push("N/A".into());
    titles
}

fn write_labels(
    path: &Path,
    taxonomy: &Taxonomy,
    track_ids: &[i64],
    lists: &[Vec<i32>],
    provenance: &[(String, String)],
) -> Result<()> {
    let titles = label_titles(taxonomy);
    let genres = taxonomy.genres.len();
    let mut matrix = vec![vec![0u8; track_ids.len()]; genres + 1];
    for (row, list) in lists.iter().enumerate() {
        if list.is_empty() {
            matrix[genres][row] = 1;
        }
        for g in list {
            if let Some(p) = taxonomy.position(*g) {
                matrix[p][row] = 1;
            }
        }
    }
    let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(track_ids.to_vec()))];
    for (title, column) in titles.iter().zip(matrix) {
        fields.push(Field::new(title, DataType::UInt8, false));
        columns.push(Arc::new(UInt8Array::from(column)));
    }
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        columns,
        provenance,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_with_and_without_time() {
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000));
        assert_eq!(
            parse_timestamp("2008-11-26 01:44:45"),
            Some(1_227_663_885_000)
        );
        assert_eq!(parse_timestamp("2008-13-01"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}

#[cfg(test)]
mod input_errors {
    //! Every kind of bad input gets a message naming the file, line and column.

    use super::*;
    use crate::synthetic::{generate, SyntheticParams};
    use std::path::PathBuf;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            generate(
                &SyntheticParams {
                    tracks: 20,
                    seed: 3,
                },
                dir.path(),
                &|| Ok(()),
            )
            .expect("generate");
            Self { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn edit(&self, name: &str, f: impl FnOnce(String) -> String) {
            let text = std::fs::read_to_string(self.path(name)).expect("read");
            std::fs::write(self.path(name), f(text)).expect("write");
        }

        fn ingest(&self) -> std::result::Result<(), String> {
            let taxonomy = read_genres(&self.path("genres.csv")).map_err(|e| e.to_string())?;
            let tracks =
                read_tracks(&self.path("tracks.csv"), &taxonomy).map_err(|e| e.to_string())?;
            let features =
                read_features(&self.path("features.csv"), false).map_err(|e| e.to_string())?;
            check_same_tracks(
                &self.path("features.csv"),
                &features.track_ids,
                &self.path("tracks.csv"),
                &tracks.track_ids,
            )
            .map_err(|e| e.to_string())
        }
    }

    fn replace_line(text: &str, line: usize, f: impl FnOnce(&str) -> String) -> String {
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines[line - 1] = f(&lines[line - 1]);
        lines.join("\n")
    }

    fn expect_error(edit: impl FnOnce(&Files), needles: &[&str]) {
        let files = Files::new();
        edit(&files);
        let err = files.ingest().expect_err("bad input must be rejected");
        for needle in needles {
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn generated_files_ingest_cleanly() {
        Files::new().ingest().expect("valid input");
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let files = Files::new();
        for name in ["features.csv", "genres.csv"] {
            files.edit(name, |t| format!("\u{feff}{}", t.replace('\n', "\r\n")));
        }
        files.ingest().expect("BOM and CRLF are accepted");
    }

    #[test]
    fn a_wrong_features_header_names_line_and_column() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 2, |l| l.replacen("kurtosis", "kurtosys", 1))
                })
            },
            &[
                "features.csv:2: column `chroma_cens.kurtosis.01`",
                "expected `kurtosis`, found `kurtosys`",
            ],
        );
    }

    #[test]
    fn a_ragged_row_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 7, |l| {
                        l.rsplit_once(',')
                            .map(|(a, _)| a.to_owned())
                            .unwrap_or_default()
                    })
                })
            },
            &["features.csv:7:", "expected 519 fields", "found 518"],
        );
    }

    #[test]
    fn a_non_numeric_feature_value_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 9, |l| {
                        let mut cells: Vec<&str> = l.split(',').collect();
                        cells[3] = "n/a";
                        cells.join(",")
                    })
                })
            },
            &[
                "features.csv:9: column `chroma_cens.kurtosis.03`",
                "cannot parse \"n/a\" as a number",
            ],
        );
    }

    #[test]
    fn a_non_finite_feature_value_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    replace_line(&t, 5, |l| {
                        let mut cells: Vec<&str> = l.split(',').collect();
                        cells[518] = "inf";
                        cells.join(",")
                    })
                })
            },
            &["features.csv:5: column `zcr.std.01`", "not finite"],
        );
    }

    #[test]
    fn a_duplicate_track_id_is_rejected() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    let first_id = t
                        .lines()
                        .nth(4)
                        .and_then(|l| l.split(',').next())
                        .unwrap_or("")
                        .to_owned();
                    replace_line(&t, 6, |l| {
                        format!("{first_id}{}", &l[l.find(',').unwrap_or(0)..])
                    })
                })
            },
            &[
                "features.csv:6: column `track_id`",
                "duplicate track id",
                "first on line 5",
            ],
        );
    }

    #[test]
    fn a_track_in_one_file_only_is_named() {
        expect_error(
            |f| {
                f.edit("features.csv", |t| {
                    let mut lines: Vec<&str> = t.lines().collect();
                    lines.remove(10);
                    lines.join("\n") + "\n"
                })
            },
            &["tracks.csv", "is in tracks.csv but not in features.csv"],
        );
    }

    #[test]
    fn a_malformed_genre_list_is_rejected() {
        expect_error(
            |f| {
                f.edit("tracks.csv", |t| {
                    // The first genre list with an id: `,[21` (a list of one is not quoted).
                    let at = t
                        .match_indices(",[")
                        .find(|(i, _)| t[i + 2..].starts_with(|c: char| c.is_ascii_digit()))
                        .map_or(0, |(i, _)| i);
                    format!("{}[x{}", &t[..at + 1], &t[at + 2..])
                })
            },
            &[
                "tracks.csv:",
                "column `track.genre",
                "is not an integer genre id",
            ],
        );
    }

    #[test]
    fn an_undefined_genre_id_is_rejected() {
        expect_error(
            |f| {
                f.edit("genres.csv", |t| {
                    // Drop a genre that the tracks use: the most frequent top level, Experimental (38).
                    t.lines()
                        .filter(|l| !l.starts_with("38,") && !l.ends_with(",38"))
                        .collect::<Vec<_>>()
                        .join("\n")
                        + "\n"
                })
            },
            &[
                "tracks.csv:",
                "column `track.genres",
                "is not defined in genres.csv",
            ],
        );
    }

    #[test]
    fn an_empty_file_is_rejected() {
        expect_error(
            |f| f.edit("tracks.csv", |_| String::new()),
            &["tracks.csv: the file is empty"],
        );
    }

    #[test]
    fn a_wrong_tracks_header_is_rejected() {
        expect_error(
            |f| f.edit("tracks.csv", |t| t.replacen(",comments,", ",comment,", 1)),
            &["tracks.csv:2:", "expected `comments`, found `comment`"],
        );
    }
}
