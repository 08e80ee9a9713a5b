//! `standardize`: z-score (population std) and min-max to [0, 1], per column.
//!
//! Fitted over all tracks by default, as the original did (sklearn-style `StandardScaler` /
//! `MinMaxScaler` on the full matrix), or on the training split only (`fit = "training"`,
//! which avoids leaking test statistics into the features). A constant column would divide
//! by zero: it is reported and left at 0 instead of NaN.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float32Array, Float64Array, StringArray};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::fma::splits::read_splits;
use crate::io::parquet::{read_column_major, write_id_columns, write_table, Landing};
use crate::kind::{InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::math::scaling::fit;

/// Which tracks the statistics are computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FitOn {
    /// Every track (the original analysis).
    All,
    /// Tracks whose `set.split` is `training`.
    Training,
}

/// Parameters of `standardize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardizeParams {
    /// `all` (default) or `training`.
    pub fit: FitOn,
    /// Store the scaled features as float32 (the input precision) rather than float64.
    pub float32: bool,
}

impl Default for StandardizeParams {
    fn default() -> Self {
        Self {
            fit: FitOn::All,
            float32: true,
        }
    }
}

impl Params for StandardizeParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        Ok(())
    }
}

/// The scaling stage.
pub struct Standardize;

/// One scaled column as an Arrow array of the stored precision.
fn scaled_array(values: impl ExactSizeIterator<Item = f64>, float32: bool) -> ArrayRef {
    // Collected into a vector (which the compiler vectorises for a mapped slice), then handed
    // to Arrow without a copy.
    if float32 {
        Arc::new(Float32Array::from(
            values.map(|v| v as f32).collect::<Vec<f32>>(),
        ))
    } else {
        Arc::new(Float64Array::from(values.collect::<Vec<f64>>()))
    }
}

impl Stage for Standardize {
    type Params = StandardizeParams;
    const KIND: &'static str = "standardize";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["features", "tracks"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("zscore", "zscore.parquet"),
            OutputSpec::new("minmax", "minmax.parquet"),
            OutputSpec::new("stats", "stats.parquet"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let clock = std::time::Instant::now();
        let elapsed = || clock.elapsed().as_secs_f64();
        // Column by column: statistics and scaling run over contiguous memory, and Parquet
        // takes the columns as they are.
        let features = read_column_major(io.input(0, "features")?, Landing::AsRead)?;
        let rows = features.rows();
        let use_row = match params.fit {
            FitOn::All => vec![true; rows],
            FitOn::Training => {
                let splits = read_splits(io.input(1, "tracks")?)?;
                let rows: Vec<bool> = features
                    .track_ids
                    .iter()
                    .map(|id| splits.get(id).is_some_and(|s| s == "training"))
                    .collect();
                if !rows.iter().any(|r| *r) {
                    return Err(Error::TooFew {
                        what: "tracks in the training split".into(),
                        needed: 1,
                        got: 0,
                    });
                }
                rows
            }
        };
        io.check_cancelled()?;
        let scaling = fit(&features.values, rows, &use_row);
        let constant: Vec<bool> = scaling.std.iter().map(|s| *s == 0.0).collect();
        for (name, c) in features.columns.iter().zip(&constant) {
            if *c {
                tracing::warn!("standardize: column `{name}` is constant; its scaled values are 0");
            }
        }
        tracing::debug!("standardize: read and fitted at {:.3} s", elapsed());
        // The two scalings are built and written side by side: while one file's bytes go
        // to the kernel, the other's columns are still being encoded. Each scaled column is
        // built when the writer reaches it and dropped once encoded.
        let column = |j: usize| &features.values[j * rows..(j + 1) * rows];
        let data_type = if params.float32 {
            DataType::Float32
        } else {
            DataType::Float64
        };
        let (z_written, m_written) = rayon::join(
            || {
                write_id_columns(
                    &io.output("zscore.parquet"),
                    &features.track_ids,
                    &features.columns,
                    &data_type,
                    &|j| scaled_array(scaling.zscore(j, column(j)), params.float32),
                    io.provenance,
                )
            },
            || {
                write_id_columns(
                    &io.output("minmax.parquet"),
                    &features.track_ids,
                    &features.columns,
                    &data_type,
                    &|j| scaled_array(scaling.minmax(j, column(j)), params.float32),
                    io.provenance,
                )
            },
        );
        z_written?;
        m_written?;
        tracing::debug!("standardize: both scalings written at {:.3} s", elapsed());
        let f64s = |v: &Vec<f64>| Arc::new(Float64Array::from(v.clone())) as ArrayRef;
        write_table(
            &io.output("stats.parquet"),
            vec![
                (
                    "column",
                    Arc::new(StringArray::from(features.columns.clone())) as ArrayRef,
                ),
                ("mean", f64s(&scaling.mean)),
                ("std", f64s(&scaling.std)),
                ("min", f64s(&scaling.min)),
                ("max", f64s(&scaling.max)),
                ("constant", Arc::new(BooleanArray::from(constant))),
            ],
            io.provenance,
        )
    }
}
