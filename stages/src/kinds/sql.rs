//! `sql`: a SQL query over Parquet artifacts, run by polars (a SQL context over lazy scans),
//! written as one Parquet table `table` with the `pipeline.*` provenance of every artifact.
//!
//! Each input is a table named after its output (`ingest:tracks` -> `tracks`); when two
//! inputs share an output name, both are named `STAGE_OUTPUT`; a file input is named by its
//! file stem. The result is re-encoded by the arrow-rs writer every artifact goes through, so
//! the same inputs and query give the same bytes; its row order is the query's (`ORDER BY`),
//! or polars' own without one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::{
    DataFrame, IntoLazy, LazyFrame, ParquetWriter, PlRefPath, PolarsError, ScanArgsParquet,
};
use polars::sql::SQLContext;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::parquet::{read_batches, write_columns};
use crate::kind::{InputInfo, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};

/// Parameters of `sql`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlParams {
    /// The query; its tables are the inputs (see the module docs).
    pub query: String,
}

impl Params for SqlParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        if self.query.trim().is_empty() {
            return Err(ParamError::Missing {
                key: "query".into(),
            });
        }
        Ok(())
    }
}

/// The sql stage.
pub struct Sql;

/// The table name of each input, in input order (see the module docs).
pub fn table_names(inputs: &[String]) -> Vec<String> {
    let output_of = |name: &str| -> String {
        match name.split_once(':') {
            Some((_, output)) if !name.contains('/') => output.to_owned(),
            _ => Path::new(name)
                .file_stem()
                .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned()),
        }
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in inputs {
        *counts.entry(output_of(name)).or_default() += 1;
    }
    inputs
        .iter()
        .map(|name| {
            let short = output_of(name);
            match name.split_once(':') {
                Some((stage, output)) if counts[&short] > 1 && !name.contains('/') => {
                    format!("{stage}_{output}")
                }
                _ => short,
            }
        })
        .collect()
}

fn polars_message(err: &PolarsError) -> String {
    // polars' messages carry a hint block after the first line; the first line says it.
    let text = err.to_string();
    text.lines().next().unwrap_or(&text).trim().to_owned()
}

/// A SQL context with each existing input registered under its table name.
fn context(tables: &[(String, PathBuf)]) -> std::result::Result<SQLContext, (String, String)> {
    let ctx = SQLContext::new();
    for (name, path) in tables {
        let lf = LazyFrame::scan_parquet(
            PlRefPath::new(path.to_string_lossy().as_ref()),
            ScanArgsParquet::default(),
        )
        .map_err(|e| (name.clone(), polars_message(&e)))?;
        ctx.register(name, lf);
    }
    Ok(ctx)
}

impl Stage for Sql {
    type Params = SqlParams;
    const KIND: &'static str = "sql";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::variadic("tables")
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![OutputSpec::new("table", "table.parquet")]
    }

    /// Parses the query and, when every input exists already, plans it against their
    /// schemas, so an unknown table or column is reported before any work.
    fn check(params: &Self::Params, inputs: &[InputInfo]) -> std::result::Result<(), ParamError> {
        let invalid = |message: String| ParamError::Invalid {
            key: "query".into(),
            message,
        };
        let names = table_names(&inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>());
        if inputs.iter().all(|i| i.path.is_some()) {
            let tables: Vec<(String, PathBuf)> = names
                .iter()
                .cloned()
                .zip(inputs.iter().filter_map(|i| i.path.clone()))
                .collect();
            let mut ctx =
                context(&tables).map_err(|(t, m)| invalid(format!("table `{t}`: {m}")))?;
            let mut lf = ctx
                .execute(&params.query)
                .map_err(|e| invalid(with_tables(&polars_message(&e), &names)))?;
            lf.collect_schema()
                .map_err(|e| invalid(with_tables(&polars_message(&e), &names)))?;
        } else {
            // Inputs not computed yet: the query must at least parse, over empty tables.
            let ctx = SQLContext::new();
            for name in &names {
                ctx.register(name, DataFrame::empty().lazy());
            }
            let mut ctx = ctx;
            if let Err(e) = ctx.execute(&params.query) {
                let message = polars_message(&e);
                // Columns are unknown until the inputs exist; anything else is an error now.
                if !message.contains("column") {
                    return Err(invalid(with_tables(&message, &names)));
                }
            }
        }
        Ok(())
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let names = table_names(io.input_names);
        let tables: Vec<(String, PathBuf)> = names
            .iter()
            .cloned()
            .zip(io.inputs.iter().cloned())
            .collect();
        let query_error = |message: String| Error::BadParam {
            param: "query",
            message: with_tables(&message, &names),
        };
        let mut ctx =
            context(&tables).map_err(|(t, m)| query_error(format!("table `{t}`: {m}")))?;
        let mut frame = ctx
            .execute(&params.query)
            .and_then(LazyFrame::collect)
            .map_err(|e| query_error(polars_message(&e)))?;
        io.check_cancelled()?;
        // polars writes a scratch file; the artifact is re-encoded by the arrow-rs writer.
        let scratch = io.out_dir.join(".pipeline-sql-result.parquet");
        let file = std::fs::File::create(&scratch).map_err(Error::io("create", &scratch))?;
        ParquetWriter::new(file)
            .finish(&mut frame)
            .map_err(|e| query_error(polars_message(&e)))?;
        let (schema, batches) = read_batches(&scratch)?;
        let columns = if batches.is_empty() {
            schema
                .fields()
                .iter()
                .map(|f| arrow_array::new_empty_array(f.data_type()))
                .collect()
        } else {
            (0..schema.fields().len())
                .map(|c| {
                    let parts: Vec<&dyn arrow_array::Array> =
                        batches.iter().map(|b| b.column(c).as_ref()).collect();
                    arrow_select_concat(&parts)
                })
                .collect::<Result<Vec<_>>>()?
        };
        // Every column nullable: the schema must not depend on whether this run has a null.
        let fields: Vec<arrow_schema::Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        write_columns(
            &io.output("table.parquet"),
            std::sync::Arc::new(arrow_schema::Schema::new(fields)),
            columns,
            io.provenance,
            true,
        )?;
        let _ = std::fs::remove_file(&scratch);
        Ok(())
    }
}

/// One array from several, in order.
fn arrow_select_concat(parts: &[&dyn arrow_array::Array]) -> Result<arrow_array::ArrayRef> {
    arrow_select::concat::concat(parts).map_err(|e| Error::Numerical {
        what: "joining the query's result batches",
        message: e.to_string(),
    })
}

fn with_tables(message: &str, names: &[String]) -> String {
    format!("{message} (tables: {})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::table_names;

    #[test]
    fn tables_are_named_after_outputs_then_stages_then_file_stems() {
        let names = |inputs: &[&str]| {
            table_names(&inputs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(names(&["ingest:tracks"]), ["tracks"]);
        assert_eq!(
            names(&["ingest:tracks", "other:tracks", "ingest:genres"]),
            ["ingest_tracks", "other_tracks", "genres"]
        );
        assert_eq!(names(&["data/extra.parquet"]), ["extra"]);
    }
}
