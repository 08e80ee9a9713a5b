//! The `tracks.csv` parser: three header lines, 52 typed columns, quoted text with commas,
//! quotes and newlines, genre lists checked against the taxonomy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, Int64Array};

use crate::error::Result;
use crate::io::fma::format::{parse_genre_list, Taxonomy, TrackColumnType, TRACK_COLUMNS};
use crate::io::fma::text::{bad, csv_error, field_count_error, read_text};

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

/// The largest integer a float64 holds exactly (2^53).
const EXACT_FLOAT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Reads and checks `tracks.csv`.
pub fn read_tracks(path: &Path, taxonomy: &Taxonomy) -> Result<Tracks> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[..]);
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
    let column_names: Vec<String> = TRACK_COLUMNS
        .iter()
        .map(|(level, field, _)| format!("{level}.{field}"))
        .collect();
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
            return Err(field_count_error(
                path,
                &bytes,
                &record,
                line,
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
        for (c, ((_, field, _), builder)) in
            TRACK_COLUMNS.iter().zip(builders.iter_mut()).enumerate()
        {
            let cell = &record[c + 1];
            let column = &column_names[c];
            match builder {
                ColumnBuilder::Int(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        // pandas writes integer columns with missing values as floats (`3.0`);
                        // such a float is an integer only while it is exact (below 2^53).
                        let value = cell.parse::<i64>().ok().or_else(|| {
                            cell.parse::<f64>()
                                .ok()
                                .filter(|v| v.fract() == 0.0 && v.abs() <= EXACT_FLOAT_INTEGER)
                                .map(|v| v as i64)
                        });
                        b.append_value(value.ok_or_else(|| {
                            let why = if cell.parse::<f64>().is_ok_and(|v| v.fract() == 0.0) {
                                "is out of range for an integer"
                            } else {
                                "is not an integer"
                            };
                            bad(path, line, Some(column), format!("{cell:?} {why}"))
                        })?);
                    }
                }
                ColumnBuilder::Float(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        // pandas writes a missing value as an empty cell, so `nan` or `inf`
                        // text is never data.
                        let value = cell.parse::<f64>().ok().filter(|v| v.is_finite());
                        b.append_value(value.ok_or_else(|| {
                            bad(
                                path,
                                line,
                                Some(column),
                                format!("cannot parse {cell:?} as a finite number"),
                            )
                        })?);
                    }
                }
                ColumnBuilder::Timestamp(b) => {
                    if cell.is_empty() {
                        b.append_null();
                    } else {
                        b.append_value(parse_timestamp(cell).ok_or_else(|| bad(path, line, Some(column), format!("cannot parse {cell:?} as a date (expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)")))?);
                    }
                }
                ColumnBuilder::List(b) => {
                    let ids =
                        parse_genre_list(cell).map_err(|m| bad(path, line, Some(column), m))?;
                    for g in &ids {
                        if taxonomy.position(*g).is_none() {
                            return Err(bad(
                                path,
                                line,
                                Some(column),
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
