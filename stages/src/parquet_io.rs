//! Writing and reading the Parquet artifacts of every stage (arrow-rs `parquet`).
//!
//! Every file carries the provenance key-value pairs the engine hands the stage, so pandas,
//! polars or DuckDB can tell where it came from. Writer settings are fixed, so the same data
//! gives the same bytes.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use ndarray::Array2;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Writes `columns` (named by `schema`) to `path` with `provenance` in the footer.
pub fn write_columns(
    path: &Path,
    schema: Arc<Schema>,
    columns: Vec<ArrayRef>,
    provenance: &[(String, String)],
    dictionary: bool,
) -> Result<()> {
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Numerical {
        what: "assembling a table",
        message: e.to_string(),
    })?;
    let kv = provenance
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    // Dense float matrices barely compress; snappy costs a fraction of zstd's time on them.
    let compression = if dictionary {
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default())
    } else {
        Compression::SNAPPY
    };
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(dictionary)
        .set_key_value_metadata(Some(kv))
        .build();
    let file = File::create(path).map_err(Error::io("create", path))?;
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(Error::parquet(path))?;
    writer.write(&batch).map_err(Error::parquet(path))?;
    writer.close().map_err(Error::parquet(path))?;
    Ok(())
}

/// Reads every row of `path` as record batches.
pub fn read_batches(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::parquet(path))?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(65_536)
        .build()
        .map_err(Error::parquet(path))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Parquet {
            path: path.to_owned(),
            source: e.into(),
        })?;
    Ok((schema, batches))
}

enum Column<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    U8(&'a [u8]),
}

impl Column<'_> {
    #[inline]
    fn get(&self, i: usize) -> f64 {
        match self {
            Column::F32(v) => f64::from(v[i]),
            Column::F64(v) => v[i],
            Column::U8(v) => f64::from(v[i]),
        }
    }
}

/// A numeric table: `track_id` plus named float columns, as a dense row-major matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The row ids.
    pub track_ids: Vec<i64>,
    /// Column names (without `track_id`).
    pub columns: Vec<String>,
    /// Values, rows x columns.
    pub values: Array2<f64>,
}

/// Reads a table of `track_id` plus numeric columns (float32/float64/uint8) into a matrix.
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    let (schema, batches) = read_batches(path)?;
    let id_index = schema
        .index_of("track_id")
        .map_err(|_| Error::ColumnNotFound {
            path: path.to_owned(),
            column: "track_id".into(),
        })?;
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != id_index)
        .map(|(_, f)| f.name().clone())
        .collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let width = columns.len();
    let mut values = Array2::<f64>::zeros((rows, width));
    let mut track_ids = Vec::with_capacity(rows);
    let mut offset = 0;
    for batch in &batches {
        let ids = batch
            .column(id_index)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::BadFile {
                path: path.to_owned(),
                message: "column `track_id` is not int64".into(),
            })?;
        track_ids.extend(ids.values().iter().copied());
        let mut sources = Vec::with_capacity(width);
        for (i, array) in batch.columns().iter().enumerate() {
            if i == id_index {
                continue;
            }
            let c = sources.len();
            if array.null_count() > 0 {
                return Err(Error::BadFile {
                    path: path.to_owned(),
                    message: format!("column `{}` has missing values", columns[c]),
                });
            }
            let source = if let Some(a) = array.as_any().downcast_ref::<Float32Array>() {
                Column::F32(a.values())
            } else if let Some(a) = array.as_any().downcast_ref::<Float64Array>() {
                Column::F64(a.values())
            } else if let Some(a) = array.as_any().downcast_ref::<UInt8Array>() {
                Column::U8(a.values())
            } else {
                return Err(Error::BadFile {
                    path: path.to_owned(),
                    message: format!(
                        "column `{}` is {}, expected a numeric column",
                        columns[c],
                        array.data_type()
                    ),
                });
            };
            sources.push(source);
        }
        // Columns to rows in blocks of rows, so every written cache line is filled while it
        // is still in L1.
        let n = batch.num_rows();
        let mut block = values.slice_mut(ndarray::s![offset..offset + n, ..]);
        block
            .axis_chunks_iter_mut(ndarray::Axis(0), 64)
            .into_par_iter()
            .enumerate()
            .for_each(|(b, mut chunk)| {
                let first = b * 64;
                for (c, source) in sources.iter().enumerate() {
                    for r in 0..chunk.nrows() {
                        chunk[[r, c]] = source.get(first + r);
                    }
                }
            });
        offset += n;
    }
    Ok(Matrix {
        track_ids,
        columns,
        values,
    })
}

/// Writes `track_id` plus one float64 (or float32) column per matrix column.
pub fn write_matrix(
    path: &Path,
    track_ids: &[i64],
    names: &[String],
    values: &Array2<f64>,
    float32: bool,
    provenance: &[(String, String)],
) -> Result<()> {
    let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(track_ids.to_vec()))];
    for (j, name) in names.iter().enumerate() {
        let column = values.column(j);
        if float32 {
            fields.push(Field::new(name, DataType::Float32, false));
            columns.push(Arc::new(Float32Array::from_iter_values(
                column.iter().map(|v| *v as f32),
            )));
        } else {
            fields.push(Field::new(name, DataType::Float64, false));
            columns.push(Arc::new(Float64Array::from_iter_values(
                column.iter().copied(),
            )));
        }
    }
    write_columns(
        path,
        Arc::new(Schema::new(fields)),
        columns,
        provenance,
        false,
    )
}

/// Writes a small table of named columns (metrics, statistics) with provenance.
pub fn write_table(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    provenance: &[(String, String)],
) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), array.null_count() > 0))
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
