//! `pipeline show STAGE:OUTPUT [--head N] [--columns A,B] [--json]`: the first rows of a
//! published Parquet artifact as a table, so a user can look without leaving the shell.
//!
//! Reads only the rows and columns asked for. Cells are formatted here for the types the
//! pipeline writes (integers, floats, text, booleans, timestamps, lists); anything else shows
//! its arrow type name.

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMillisecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde_json::{Map, Value};

use crate::config_error::suggest;
use crate::error::UsageError;

/// Columns shown when none are chosen and the table is wide.
const DEFAULT_COLUMNS: usize = 8;

/// The first rows of a table.
#[derive(Debug)]
pub(crate) struct Preview {
    /// Column names shown.
    pub columns: Vec<String>,
    /// Cells as JSON values, row by row.
    pub rows: Vec<Vec<Value>>,
    /// Rows in the whole file.
    pub total_rows: i64,
    /// Columns left out (not chosen, or past the default width).
    pub hidden_columns: usize,
}

/// Reads the first `head` rows of `columns` (default: the first few) of `path`.
pub(crate) fn preview(path: &Path, head: usize, columns: &[String]) -> Result<Preview, UsageError> {
    let not_parquet = |message: String| UsageError::NotParquet {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| not_parquet(e.to_string()))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| not_parquet(e.to_string()))?;
    let total_rows = builder.metadata().file_metadata().num_rows();
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let chosen: Vec<usize> = if columns.is_empty() {
        (0..names.len().min(DEFAULT_COLUMNS)).collect()
    } else {
        columns
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| UsageError::UnknownColumn {
                        column: c.clone(),
                        path: path.display().to_string(),
                        suggestion: suggest(c, names.iter().map(String::as_str)),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    // Parquet projects root columns in schema order; the table keeps the order asked for.
    let mut in_file_order = chosen.clone();
    in_file_order.sort_unstable();
    in_file_order.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), in_file_order.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(head.clamp(1, 8192))
        .with_limit(head)
        .build()
        .map_err(|e| not_parquet(e.to_string()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| not_parquet(e.to_string()))?;
        let arrays: Vec<&ArrayRef> = chosen
            .iter()
            .map(|c| {
                let at = in_file_order.iter().position(|i| i == c).unwrap_or(0);
                batch.column(at)
            })
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(arrays.iter().map(|a| cell(a, r)).collect());
        }
    }
    rows.truncate(head);
    Ok(Preview {
        columns: chosen.iter().map(|&c| names[c].clone()).collect(),
        hidden_columns: names.len() - chosen.len().min(names.len()),
        rows,
        total_rows,
    })
}

/// One cell as JSON: numbers as numbers, text as text, timestamps as ISO dates.
fn cell(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    macro_rules! number {
        ($t:ty) => {
            Value::from(array.as_primitive::<$t>().value(row))
        };
    }
    match array.data_type() {
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            // Through its shortest decimal form, so 0.1f32 reads 0.1.
            serde_json::Number::from_f64(v.to_string().parse().unwrap_or(f64::from(v)))
                .map_or(Value::Null, Value::Number)
        }
        DataType::Float64 => {
            serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(row))
                .map_or(Value::Null, Value::Number)
        }
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, _) => {
            let ms = array.as_primitive::<TimestampMillisecondType>().value(row);
            Value::String(format_timestamp(ms))
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            Value::Array((0..list.len()).map(|i| cell(&list, i)).collect())
        }
        other => Value::String(format!("<{other}>")),
    }
}

/// `YYYY-MM-DD HH:MM:SS` of milliseconds since the epoch (proleptic Gregorian, UTC).
fn format_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.replace('\n', "\\n"),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let short = format!("{f:.6}");
                let trimmed = short.trim_end_matches('0').trim_end_matches('.');
                trimmed.to_owned()
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

impl Preview {
    /// The table, cells cut at 40 characters.
    pub(crate) fn render(&self) -> String {
        let cut = |s: String| {
            if s.chars().count() > 40 {
                format!("{}…", s.chars().take(39).collect::<String>())
            } else {
                s
            }
        };
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|v| cut(text(v))).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(c, name)| {
                cells
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain(std::iter::once(name.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |values: &[String], out: &mut String| {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v}{}", " ".repeat(w - v.chars().count())))
                .collect();
            let _ = writeln!(out, "{}", padded.join("  ").trim_end());
        };
        line(&self.columns, &mut out);
        for row in &cells {
            line(row, &mut out);
        }
        let _ = write!(out, "({} of {} rows", self.rows.len(), self.total_rows);
        if self.hidden_columns > 0 {
            let _ = write!(
                out,
                "; {} more columns, choose with --columns",
                self.hidden_columns
            );
        }
        out.push_str(")\n");
        out
    }

    /// The rows as a JSON array of objects.
    pub(crate) fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    Value::Object(
                        self.columns
                            .iter()
                            .cloned()
                            .zip(r.iter().cloned())
                            .collect::<Map<String, Value>>(),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::format_timestamp;

    #[test]
    fn timestamps_read_as_dates() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(format_timestamp(1_227_663_885_000), "2008-11-26 01:44:45");
        assert_eq!(format_timestamp(-86_400_000), "1969-12-31 00:00:00");
    }
}
