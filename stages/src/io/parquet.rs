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
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::column_sums;

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
    let column = |i: usize| Ok(batch.column(i).clone());
    write_produced_columns(
        path,
        schema,
        batch.num_rows(),
        &column,
        provenance,
        dictionary,
    )
}

/// Writes the columns of `schema`, `rows` values each, asking `column(i)` for column `i` only
/// when its turn to be encoded comes: a column built on demand is encoded and dropped before
/// the next is built, so a table that exists only to be written is never whole in memory
/// (nor its pages faulted in fresh; the allocator hands the same blocks round).
pub fn write_produced_columns(
    path: &Path,
    schema: Arc<Schema>,
    rows: usize,
    column: &(dyn Fn(usize) -> Result<ArrayRef> + Sync),
    provenance: &[(String, String)],
    dictionary: bool,
) -> Result<()> {
    let kv = provenance
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let compression = if dictionary {
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default())
    } else {
        Compression::SNAPPY
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(dictionary)
        .set_key_value_metadata(Some(kv));
    if !dictionary {
        // The columns of a dense float matrix are stored as they are: their mantissas are
        // noise to snappy (a z-scored column came out 0.01% larger), so compressing them
        // only spent time on the write and again on every read.
        for field in schema.fields() {
            if matches!(field.data_type(), DataType::Float32 | DataType::Float64) {
                props = props.set_column_compression(
                    ColumnPath::new(vec![field.name().clone()]),
                    Compression::UNCOMPRESSED,
                );
            }
        }
    }
    let props = props.build();
    let file = File::create(path).map_err(Error::io("create", path))?;
    let writer =
        ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(Error::parquet(path))?;
    // One row group whose columns are encoded (and compressed) in parallel, then appended in
    // schema order: the same bytes as a sequential writer would produce, in a fraction of
    // the time for wide tables.
    let (mut file_writer, factory) = writer
        .into_serialized_writer()
        .map_err(Error::parquet(path))?;
    let column_writers = factory
        .create_column_writers(0)
        .map_err(Error::parquet(path))?;
    // Every field here is one Parquet leaf (primitive or list of primitive). The leaves are
    // computed inside the parallel loop, one column at a time: arrow-rs gives each leaf a
    // row-index vector eight bytes per value, so computing them all up front allocated (and
    // page-faulted) twice the table's size before encoding began.
    if schema.fields().len() != column_writers.len() {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: format!(
                "{} Parquet leaf columns for {} fields (nested columns are not written here)",
                column_writers.len(),
                schema.fields().len()
            ),
        });
    }
    let chunks = column_writers
        .into_par_iter()
        .zip(schema.fields().par_iter())
        .enumerate()
        .map(|(i, (mut writer, field))| {
            let array = column(i)?;
            if array.len() != rows || array.data_type() != field.data_type() {
                return Err(Error::Numerical {
                    what: "assembling a table",
                    message: format!(
                        "column `{}` is {} values of {}, expected {rows} of {}",
                        field.name(),
                        array.len(),
                        array.data_type(),
                        field.data_type()
                    ),
                });
            }
            let encode = || {
                for leaf in compute_leaves(field, &array)? {
                    writer.write(&leaf)?;
                }
                writer.close()
            };
            encode().map_err(Error::parquet(path))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut row_group = file_writer.next_row_group().map_err(Error::parquet(path))?;
    for chunk in chunks {
        chunk
            .append_to_row_group(&mut row_group)
            .map_err(Error::parquet(path))?;
    }
    row_group.close().map_err(Error::parquet(path))?;
    file_writer.close().map_err(Error::parquet(path))?;
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
    let id_index = column_index(&schema, "track_id", path)?;
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
        track_ids.extend_from_slice(track_id_values(batch.column(id_index), path)?);
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
    let all_finite = values.as_slice().is_some_and(column_sums::all_finite);
    let first_bad = || values.indexed_iter().find(|(_, v)| !v.is_finite());
    if let Some(((row, column), value)) = (!all_finite).then(first_bad).flatten() {
        return Err(non_finite(
            path,
            &columns[column],
            row,
            track_ids[row],
            *value,
        ));
    }
    Ok(Matrix {
        track_ids,
        columns,
        values,
    })
}

/// A NaN or infinity in a numeric table: nothing downstream can use it, so it is named where
/// it is rather than surfacing later as a failed decomposition.
fn non_finite(path: &Path, column: &str, row: usize, track_id: i64, value: f64) -> Error {
    Error::BadFile {
        path: path.to_owned(),
        message: format!(
            "column `{column}` holds {value} at row {} (track {track_id}); every value must be a finite number",
            row + 1
        ),
    }
}

/// A numeric table held column by column: column `j` is
/// `values[j * rows..(j + 1) * rows]` (column-major, the layout Parquet stores and faer
/// computes on best).
#[derive(Debug, Clone)]
pub struct ColumnMajor {
    /// The row ids.
    pub track_ids: Vec<i64>,
    /// Column names (without `track_id`).
    pub columns: Vec<String>,
    /// Values, column-major.
    pub values: Vec<f64>,
    /// The mean of every column as read.
    pub means: Vec<f64>,
}

/// What [`read_column_major`] does to each column once its group is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Keep the values as read.
    AsRead,
    /// Subtract the column's mean.
    Centred,
}

impl ColumnMajor {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.track_ids.len()
    }
}

/// Reads a table of `track_id` plus numeric columns (float32/float64/uint8) column by column,
/// decoding groups of columns in parallel, each straight into its place.
pub fn read_column_major(path: &Path, landing: Landing) -> Result<ColumnMajor> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    let metadata =
        ArrowReaderMetadata::load(&file, Default::default()).map_err(Error::parquet(path))?;
    let schema = metadata.schema().clone();
    let id_index = column_index(&schema, "track_id", path)?;
    let fields: Vec<usize> = (0..schema.fields().len())
        .filter(|i| *i != id_index)
        .collect();
    let columns: Vec<String> = fields
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    // Whole columns in one batch where they are of a reasonable size (FMA's are 426 KB of
    // float32), so a group's decoded arrays stay small next to the matrix itself.
    let batch_rows = usize::try_from(metadata.metadata().file_metadata().num_rows())
        .unwrap_or(0)
        .clamp(1, 1 << 20);
    // Every group decodes its columns with a reader of its own (a cloned `File` would share
    // one seek position between threads).
    let decode = |indices: &[usize],
                  sink: &mut dyn FnMut(usize, usize, &ArrayRef) -> Result<()>| {
        let file = File::open(path).map_err(Error::io("open", path))?;
        let mask = ProjectionMask::roots(metadata.parquet_schema(), indices.iter().copied());
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
            .with_projection(mask)
            .with_batch_size(batch_rows)
            .build()
            .map_err(Error::parquet(path))?;
        let mut offset = 0;
        for batch in reader {
            let batch = batch.map_err(|e| Error::Parquet {
                path: path.to_owned(),
                source: e.into(),
            })?;
            for (c, array) in batch.columns().iter().enumerate() {
                sink(c, offset, array)?;
            }
            offset += batch.num_rows();
        }
        Ok(offset)
    };
    let mut track_ids = Vec::new();
    decode(&[id_index], &mut |_, _, array| {
        track_ids.extend_from_slice(track_id_values(array, path)?);
        Ok(())
    })?;
    let rows = track_ids.len();
    let mut values = vec![0.0f64; rows * fields.len()];
    let mut means = vec![0.0f64; fields.len()];
    if rows == 0 {
        return Ok(ColumnMajor {
            track_ids,
            columns,
            values,
            means,
        });
    }
    let per_group = fields
        .len()
        .div_ceil(4 * rayon::current_num_threads())
        .max(1);
    values
        .par_chunks_mut(rows * per_group)
        .zip(means.par_chunks_mut(per_group))
        .zip(fields.par_chunks(per_group))
        .enumerate()
        .try_for_each(|(g, ((dest, group_means), indices))| {
            let decoded = decode(indices, &mut |c, offset, array| {
                let name = &columns[g * per_group + c];
                let end = offset + array.len();
                let out = dest
                    .get_mut(c * rows + offset..c * rows + end)
                    .filter(|_| end <= rows)
                    .ok_or_else(|| Error::BadFile {
                        path: path.to_owned(),
                        message: format!("column `{name}` has more values than track ids"),
                    })?;
                copy_numeric(array, out).map_err(|message| Error::BadFile {
                    path: path.to_owned(),
                    message: format!("column `{name}` {message}"),
                })?;
                if !column_sums::all_finite(out) {
                    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
                        return Err(non_finite(
                            path,
                            name,
                            offset + i,
                            track_ids[offset + i],
                            out[i],
                        ));
                    }
                }
                // A whole column in, it is likely still in cache: its mean (and centring)
                // now costs a pass over the cache rather than over memory.
                if end == rows {
                    let column = &mut dest[c * rows..(c + 1) * rows];
                    let mean = column_sums::sum(column) / rows as f64;
                    group_means[c] = mean;
                    if landing == Landing::Centred {
                        column.iter_mut().for_each(|v| *v -= mean);
                    }
                }
                Ok(())
            })?;
            if decoded != rows {
                return Err(Error::BadFile {
                    path: path.to_owned(),
                    message: format!("{decoded} values in a column, {rows} track ids"),
                });
            }
            Ok(())
        })?;
    Ok(ColumnMajor {
        track_ids,
        columns,
        values,
        means,
    })
}

/// The position of column `name` in a file's schema, or an error naming both.
pub fn column_index(schema: &Schema, name: &str, path: &Path) -> Result<usize> {
    schema.index_of(name).map_err(|_| Error::ColumnNotFound {
        path: path.to_owned(),
        column: name.into(),
    })
}

/// The values of a `track_id` column, which must be int64.
fn track_id_values<'a>(array: &'a ArrayRef, path: &Path) -> Result<&'a [i64]> {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .map(|ids| &ids.values()[..])
        .ok_or_else(|| Error::BadFile {
            path: path.to_owned(),
            message: "column `track_id` is not int64".into(),
        })
}

/// Copies a numeric array into `out` as f64, or says what is wrong with it.
fn copy_numeric(array: &ArrayRef, out: &mut [f64]) -> std::result::Result<(), String> {
    if array.null_count() > 0 {
        return Err("has missing values".into());
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<Float32Array>() {
        out.iter_mut()
            .zip(a.values().iter())
            .for_each(|(o, v)| *o = f64::from(*v));
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        out.copy_from_slice(a.values());
    } else if let Some(a) = any.downcast_ref::<UInt8Array>() {
        out.iter_mut()
            .zip(a.values().iter())
            .for_each(|(o, v)| *o = f64::from(*v));
    } else {
        return Err(format!(
            "is {}, expected a numeric column",
            array.data_type()
        ));
    }
    Ok(())
}

/// Writes `track_id` plus one float64 column per column of `values` (column-major, as many
/// rows as `track_ids`). The columns are views of `values`, not copies.
pub fn write_column_major(
    path: &Path,
    track_ids: &[i64],
    names: &[String],
    values: Vec<f64>,
    provenance: &[(String, String)],
) -> Result<()> {
    let rows = track_ids.len();
    if values.len() != rows * names.len() {
        return Err(Error::Numerical {
            what: "writing a matrix",
            message: format!(
                "{} values for {rows} rows x {} columns",
                values.len(),
                names.len()
            ),
        });
    }
    let buffer = arrow_buffer::Buffer::from_vec(values);
    let column = |j: usize| {
        let column = arrow_buffer::ScalarBuffer::<f64>::new(buffer.clone(), j * rows, rows);
        Arc::new(Float64Array::new(column, None)) as ArrayRef
    };
    write_id_columns(
        path,
        track_ids,
        names,
        &DataType::Float64,
        &column,
        provenance,
    )
}

/// Writes `track_id` plus the named columns, all of type `data_type` and without nulls,
/// compressed as a dense matrix; column `j` is built by `column(j)` when it is encoded.
pub fn write_id_columns(
    path: &Path,
    track_ids: &[i64],
    names: &[String],
    data_type: &DataType,
    column: &(dyn Fn(usize) -> ArrayRef + Sync),
    provenance: &[(String, String)],
) -> Result<()> {
    let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
    fields.extend(
        names
            .iter()
            .map(|name| Field::new(name, data_type.clone(), false)),
    );
    let ids: ArrayRef = Arc::new(Int64Array::from(track_ids.to_vec()));
    let produce = |i: usize| {
        Ok(match i {
            0 => ids.clone(),
            j => column(j - 1),
        })
    };
    write_produced_columns(
        path,
        Arc::new(Schema::new(fields)),
        track_ids.len(),
        &produce,
        provenance,
        false,
    )
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
        // Nullable whatever this run's values: the schema of a kind's table must not depend
        // on whether a null happened to occur.
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize) -> (Vec<i64>, Vec<String>, Vec<f64>) {
        let ids = (0..rows as i64).map(|i| i * 7 + 3).collect();
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let values = (0..rows * 3)
            .map(|i| (i as f64 * 0.37).sin() * 4.0 + 1.5)
            .collect();
        (ids, names, values)
    }

    #[test]
    fn the_parallel_writer_gives_the_bytes_of_the_sequential_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (ids, names, values) = table(5000);
        let parallel = dir.path().join("parallel.parquet");
        let provenance = vec![("pipeline.key".to_string(), "abc".to_string())];
        write_column_major(&parallel, &ids, &names, values.clone(), &provenance)
            .unwrap_or_else(|e| panic!("{e}"));

        let mut fields = vec![Field::new("track_id", DataType::Int64, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids.clone()))];
        for (j, name) in names.iter().enumerate() {
            fields.push(Field::new(name, DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from(
                values[j * 5000..(j + 1) * 5000].to_vec(),
            )));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap_or_else(|e| panic!("{e}"));
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "pipeline.key".to_string(),
                "abc".to_string(),
            )]));
        for name in &names {
            props = props.set_column_compression(
                ColumnPath::new(vec![name.clone()]),
                Compression::UNCOMPRESSED,
            );
        }
        let props = props.build();
        let mut sequential = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut sequential, schema, Some(props))
            .unwrap_or_else(|e| panic!("{e}"));
        writer.write(&batch).unwrap_or_else(|e| panic!("{e}"));
        writer.close().unwrap_or_else(|e| panic!("{e}"));
        let written = std::fs::read(&parallel).unwrap_or_else(|e| panic!("{e}"));
        assert!(written == sequential, "the two writers disagree");

        // The float columns are stored as they are, the ids compressed.
        let reader = parquet::file::reader::SerializedFileReader::new(
            File::open(&parallel).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let row_group = parquet::file::reader::FileReader::metadata(&reader).row_group(0);
        let codecs: Vec<Compression> = row_group
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        assert_eq!(
            codecs,
            [
                Compression::SNAPPY,
                Compression::UNCOMPRESSED,
                Compression::UNCOMPRESSED,
                Compression::UNCOMPRESSED
            ]
        );
    }

    #[test]
    fn produced_columns_of_the_wrong_length_or_type_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("m.parquet");
        let names = vec!["a".to_string(), "b".to_string()];
        let short = |j: usize| -> ArrayRef { Arc::new(Float64Array::from(vec![1.0; 2 + j])) };
        let err = write_id_columns(&path, &[1, 2, 3], &names, &DataType::Float64, &short, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("a short column was written"));
        assert!(
            err.contains("column `a` is 2 values of Float64, expected 3 of Float64"),
            "{err}"
        );
        let wrong_type = |_: usize| -> ArrayRef { Arc::new(Float32Array::from(vec![1.0; 3])) };
        let err = write_id_columns(
            &path,
            &[1, 2, 3],
            &names,
            &DataType::Float64,
            &wrong_type,
            &[],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("a column of the wrong type was written"));
        assert!(
            err.contains("3 values of Float32, expected 3 of Float64"),
            "{err}"
        );
    }

    #[test]
    fn columns_read_back_in_place_centred_or_as_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (ids, names, values) = table(777);
        let path = dir.path().join("m.parquet");
        write_column_major(&path, &ids, &names, values.clone(), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let read = read_column_major(&path, Landing::AsRead).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.track_ids, ids);
        assert_eq!(read.columns, names);
        assert_eq!(read.values, values);
        let centred = read_column_major(&path, Landing::Centred).unwrap_or_else(|e| panic!("{e}"));
        for (j, mean) in centred.means.iter().enumerate() {
            let column = &values[j * 777..(j + 1) * 777];
            let expected = column.iter().sum::<f64>() / 777.0;
            assert!((mean - expected).abs() < 1e-12);
            for (c, v) in centred.values[j * 777..(j + 1) * 777].iter().zip(column) {
                assert_eq!(*c, v - mean);
            }
        }
    }

    #[test]
    fn tall_tables_are_read_over_several_batches() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rows = (1 << 20) + 5;
        let ids: Vec<i64> = (0..rows as i64).collect();
        let values: Vec<f64> = (0..rows).map(|i| (i % 1000) as f64).collect();
        let path = dir.path().join("tall.parquet");
        write_column_major(&path, &ids, &["x".to_string()], values.clone(), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let read = read_column_major(&path, Landing::AsRead).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.track_ids, ids);
        assert!(read.values == values, "values moved between batches");
    }

    #[test]
    fn a_column_that_is_not_numeric_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("t.parquet");
        write_table(
            &path,
            vec![
                (
                    "track_id",
                    Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
                ),
                ("x", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
                (
                    "title",
                    Arc::new(arrow_array::StringArray::from(vec!["a", "b"])),
                ),
            ],
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = read_column_major(&path, Landing::AsRead)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("t.parquet") && err.contains("`title`") && err.contains("numeric"),
            "{err}"
        );
    }
}
