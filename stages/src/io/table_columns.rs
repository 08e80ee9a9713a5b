//! The columns of a small tabular artifact (an ingested table, a `sql` result) as numbers or
//! text keyed by track id, whatever integer, float, boolean, date or string type the writer
//! chose. Models that take "whatever columns the query selected" read their inputs here.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};

use crate::error::{Error, Result};
use crate::io::parquet::{column_index, read_batches};

/// One column's values, in row order.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers (NaN where missing). Booleans are 0 and 1; dates and times are days since
    /// 1970-01-01, durations (the difference of two dates) days.
    Number(Vec<f64>),
    /// Text (`None` where missing).
    Text(Vec<Option<String>>),
}

/// A table's `track_id` column and every other column by name, in file order.
#[derive(Debug, Clone)]
pub struct Columns {
    /// Track ids, one per row.
    pub track_ids: Vec<i64>,
    /// Every other column.
    pub columns: Vec<(String, Values)>,
}

impl Columns {
    /// Row of each track id.
    pub fn row_of(&self) -> HashMap<i64, usize> {
        self.track_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect()
    }
}

/// Reads every column of `path` (or those named in `only`), which must have an integer
/// `track_id` without gaps.
pub fn read_columns(path: &Path, only: Option<&[&str]>) -> Result<Columns> {
    let (schema, batches) = read_batches(path)?;
    let id_index = column_index(&schema, "track_id", path)?;
    let bad = |message: String| Error::BadFile {
        path: path.to_owned(),
        message,
    };
    let mut track_ids = Vec::new();
    let mut columns: Vec<(String, Values)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| *i != id_index && only.is_none_or(|o| o.contains(&f.name().as_str())))
        .map(|(_, f)| {
            let values = if is_text(f.data_type()) {
                Values::Text(Vec::new())
            } else {
                Values::Number(Vec::new())
            };
            (f.name().clone(), values)
        })
        .collect();
    for batch in &batches {
        let ids = numbers(batch.column(id_index)).ok_or_else(|| {
            bad(format!(
                "`track_id` is {}, expected integers",
                batch.column(id_index).data_type()
            ))
        })?;
        for (row, id) in ids.iter().enumerate() {
            if !id.is_finite() || id.fract() != 0.0 {
                return Err(bad(format!(
                    "`track_id` is missing or not an integer in row {}",
                    track_ids.len() + row + 1
                )));
            }
        }
        track_ids.extend(ids.iter().map(|v| *v as i64));
        let others = batch
            .columns()
            .iter()
            .zip(schema.fields().iter())
            .enumerate()
            .filter(|(i, (_, f))| {
                *i != id_index && only.is_none_or(|o| o.contains(&f.name().as_str()))
            })
            .map(|(_, (a, _))| a);
        for ((name, values), array) in columns.iter_mut().zip(others) {
            match values {
                Values::Text(out) => out.extend(texts(array).ok_or_else(|| {
                    bad(format!(
                        "column `{name}` is {}, expected text",
                        array.data_type()
                    ))
                })?),
                Values::Number(out) => out.extend(numbers(array).ok_or_else(|| {
                    bad(format!(
                        "column `{name}` is {}, expected numbers, booleans, dates or text",
                        array.data_type()
                    ))
                })?),
            }
        }
    }
    Ok(Columns { track_ids, columns })
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn texts(array: &ArrayRef) -> Option<Vec<Option<String>>> {
    let collect =
        |it: &mut dyn Iterator<Item = Option<&str>>| it.map(|v| v.map(str::to_owned)).collect();
    match array.data_type() {
        DataType::Utf8 => Some(collect(&mut array.as_string::<i32>().iter())),
        DataType::LargeUtf8 => Some(collect(&mut array.as_string::<i64>().iter())),
        DataType::Utf8View => Some(collect(&mut array.as_string_view().iter())),
        _ => None,
    }
}

const MS_PER_DAY: f64 = 86_400_000.0;

/// Numbers of any numeric, boolean, date or timestamp array; NaN where null.
fn numbers(array: &ArrayRef) -> Option<Vec<f64>> {
    fn of<T: arrow_array::ArrowPrimitiveType>(
        array: &ArrayRef,
        to: impl Fn(T::Native) -> f64,
    ) -> Vec<f64> {
        array
            .as_primitive::<T>()
            .iter()
            .map(|v| v.map_or(f64::NAN, &to))
            .collect()
    }
    Some(match array.data_type() {
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or(f64::NAN, |b| f64::from(u8::from(b))))
            .collect(),
        DataType::Int8 => of::<Int8Type>(array, f64::from),
        DataType::Int16 => of::<Int16Type>(array, f64::from),
        DataType::Int32 => of::<Int32Type>(array, f64::from),
        DataType::Int64 => of::<Int64Type>(array, |v| v as f64),
        DataType::UInt8 => of::<UInt8Type>(array, f64::from),
        DataType::UInt16 => of::<UInt16Type>(array, f64::from),
        DataType::UInt32 => of::<UInt32Type>(array, f64::from),
        DataType::UInt64 => of::<UInt64Type>(array, |v| v as f64),
        DataType::Float32 => of::<Float32Type>(array, f64::from),
        DataType::Float64 => of::<Float64Type>(array, |v| v),
        DataType::Date32 => of::<Date32Type>(array, f64::from),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => of::<TimestampSecondType>(array, |v| v as f64 * 1e3 / MS_PER_DAY),
            TimeUnit::Millisecond => {
                of::<TimestampMillisecondType>(array, |v| v as f64 / MS_PER_DAY)
            }
            TimeUnit::Microsecond => {
                of::<TimestampMicrosecondType>(array, |v| v as f64 / 1e3 / MS_PER_DAY)
            }
            TimeUnit::Nanosecond => {
                of::<TimestampNanosecondType>(array, |v| v as f64 / 1e6 / MS_PER_DAY)
            }
        },
        DataType::Duration(unit) => match unit {
            TimeUnit::Second => of::<DurationSecondType>(array, |v| v as f64 * 1e3 / MS_PER_DAY),
            TimeUnit::Millisecond => {
                of::<DurationMillisecondType>(array, |v| v as f64 / MS_PER_DAY)
            }
            TimeUnit::Microsecond => {
                of::<DurationMicrosecondType>(array, |v| v as f64 / 1e3 / MS_PER_DAY)
            }
            TimeUnit::Nanosecond => {
                of::<DurationNanosecondType>(array, |v| v as f64 / 1e6 / MS_PER_DAY)
            }
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Int64Array, StringArray, TimestampMillisecondArray};

    #[test]
    fn every_type_becomes_numbers_or_text() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("t.parquet");
        crate::io::parquet::write_table(
            &path,
            vec![
                (
                    "track_id",
                    Arc::new(Int64Array::from(vec![5, 7])) as ArrayRef,
                ),
                ("n", Arc::new(Int64Array::from(vec![Some(3), None]))),
                ("b", Arc::new(BooleanArray::from(vec![true, false]))),
                (
                    "t",
                    Arc::new(TimestampMillisecondArray::from(vec![86_400_000, 0])),
                ),
                ("s", Arc::new(StringArray::from(vec![Some("x"), None]))),
            ],
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = read_columns(&path, None).unwrap_or_else(|e| panic!("{e}"));
        let only = read_columns(&path, Some(&["s"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(only.columns.len(), 1);
        assert_eq!(only.columns[0].0, "s");
        assert_eq!(c.track_ids, vec![5, 7]);
        let names: Vec<&str> = c.columns.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["n", "b", "t", "s"]);
        match &c.columns[0].1 {
            Values::Number(v) => assert!(v[0] == 3.0 && v[1].is_nan()),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.columns[1].1, Values::Number(vec![1.0, 0.0]));
        assert_eq!(c.columns[2].1, Values::Number(vec![1.0, 0.0]));
        assert_eq!(c.columns[3].1, Values::Text(vec![Some("x".into()), None]));
    }
}
