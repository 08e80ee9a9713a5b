//! `pipeline inspect FILE.parquet`: schema, row count, row groups and provenance, read with
//! the arrow-rs `parquet` crate (independent of whatever wrote the file).

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;

use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;

use crate::error::UsageError;

/// What `inspect` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Inspection {
    /// The file.
    pub file: String,
    /// Total rows.
    pub rows: i64,
    /// `(name, type)` per column.
    pub columns: Vec<(String, String)>,
    /// `(rows, compressed bytes)` per row group.
    pub row_groups: Vec<(i64, i64)>,
    /// The `pipeline.*` metadata.
    pub provenance: Vec<(String, String)>,
    /// Who wrote the file.
    pub created_by: Option<String>,
}

/// Reads the footer of `path`.
pub(crate) fn inspect(path: &Path) -> Result<Inspection, UsageError> {
    let not_parquet = |message: String| UsageError::NotParquet {
        path: path.display().to_string(),
        message,
    };
    let file = File::open(path).map_err(|e| not_parquet(e.to_string()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| not_parquet(e.to_string()))?;
    let metadata = reader.metadata();
    let file_meta = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file_meta.schema_descr(), file_meta.key_value_metadata())
        .map_err(|e| not_parquet(e.to_string()))?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    let row_groups = metadata
        .row_groups()
        .iter()
        .map(|rg| (rg.num_rows(), rg.compressed_size()))
        .collect();
    let provenance = file_meta
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|e| e.key.starts_with(stages::provenance::PREFIX))
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Inspection {
        file: path.display().to_string(),
        rows: file_meta.num_rows(),
        columns,
        row_groups,
        provenance,
        created_by: file_meta.created_by().map(str::to_owned),
    })
}

impl Inspection {
    /// The human-readable report.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "file:       {}", self.file);
        let _ = writeln!(out, "rows:       {}", self.rows);
        let _ = writeln!(out, "row groups: {}", self.row_groups.len());
        for (i, (rows, bytes)) in self.row_groups.iter().enumerate() {
            let _ = writeln!(out, "  #{i}: {rows} rows, {bytes} bytes compressed");
        }
        if let Some(by) = &self.created_by {
            let _ = writeln!(out, "created by: {by}");
        }
        let _ = writeln!(out, "columns:    {}", self.columns.len());
        let width = self.columns.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, ty) in &self.columns {
            let _ = writeln!(out, "  {name:width$}  {ty}");
        }
        if self.provenance.is_empty() {
            let _ = writeln!(out, "provenance: none (not written by pipeline)");
        } else {
            let _ = writeln!(out, "provenance:");
            for (key, value) in &self.provenance {
                let _ = writeln!(out, "  {key} = {value}");
            }
        }
        out
    }
}
