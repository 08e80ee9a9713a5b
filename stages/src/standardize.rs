//! `standardize`: z-score (population std) and min-max to [0, 1], per column.
//!
//! Fitted over all tracks by default, as the original did (sklearn-style `StandardScaler` /
//! `MinMaxScaler` on the full matrix), or on the training split only (`fit = "training"`,
//! which avoids leaking test statistics into the features). A constant column would divide
//! by zero: it is reported and left at 0 instead of NaN.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float32Array, Float64Array, StringArray};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kind::{InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::parquet_io::{
    column_index, read_batches, read_column_major, write_id_columns, write_table, Landing,
};

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

/// Per-column statistics of the fit.
#[derive(Debug, Clone)]
pub struct Scaling {
    /// Means.
    pub mean: Vec<f64>,
    /// Population standard deviations.
    pub std: Vec<f64>,
    /// Minima.
    pub min: Vec<f64>,
    /// Maxima.
    pub max: Vec<f64>,
}

/// The statistics of one column over the rows where `use_row` is true:
/// (mean, population std, min, max).
pub fn fit_column(column: &[f64], use_row: &[bool]) -> (f64, f64, f64, f64) {
    let used = || {
        column
            .iter()
            .zip(use_row)
            .filter(|(_, u)| **u)
            .map(|(v, _)| *v)
    };
    let (mut n, mut sum, mut min, mut max) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
    for v in used() {
        n += 1.0;
        sum += v;
        min = min.min(v);
        max = max.max(v);
    }
    let mean = sum / f64::max(n, 1.0);
    let var = used().map(|v| (v - mean) * (v - mean)).sum::<f64>() / f64::max(n, 1.0);
    (mean, var.sqrt(), min, max)
}

/// Fits the statistics of every column of a column-major matrix (`rows` per column).
pub fn fit(values: &[f64], rows: usize, use_row: &[bool]) -> Scaling {
    let cols: Vec<(f64, f64, f64, f64)> = values
        .par_chunks(rows.max(1))
        .map(|column| fit_column(column, use_row))
        .collect();
    Scaling {
        mean: cols.iter().map(|c| c.0).collect(),
        std: cols.iter().map(|c| c.1).collect(),
        min: cols.iter().map(|c| c.2).collect(),
        max: cols.iter().map(|c| c.3).collect(),
    }
}

impl Scaling {
    /// Column `j` z-scored; 0 for a constant column.
    pub fn zscore<'a>(&self, j: usize, column: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
        let (mean, std) = (self.mean[j], self.std[j]);
        column
            .iter()
            .map(move |v| if std > 0.0 { (v - mean) / std } else { 0.0 })
    }

    /// Column `j` scaled to [0, 1]; 0 for a constant column.
    pub fn minmax<'a>(&self, j: usize, column: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
        let (min, range) = (self.min[j], self.max[j] - self.min[j]);
        column
            .iter()
            .map(move |v| if range > 0.0 { (v - min) / range } else { 0.0 })
    }
}

/// One scaled column as an Arrow array of the stored precision.
fn scaled_array(values: impl Iterator<Item = f64>, float32: bool) -> ArrayRef {
    if float32 {
        Arc::new(Float32Array::from_iter_values(values.map(|v| v as f32)))
    } else {
        Arc::new(Float64Array::from_iter_values(values))
    }
}

impl Stage for Standardize {
    type Params = StandardizeParams;
    const KIND: &'static str = "standardize";
    const SOURCES: &'static [&'static str] = &["standardize.rs", "parquet_io.rs"];

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
        let columns = || features.values.par_chunks(rows.max(1)).enumerate();
        let z: Vec<ArrayRef> = columns()
            .map(|(j, c)| scaled_array(scaling.zscore(j, c), params.float32))
            .collect();
        write_id_columns(
            &io.output("zscore.parquet"),
            &features.track_ids,
            &features.columns,
            z,
            io.provenance,
        )?;
        let m: Vec<ArrayRef> = columns()
            .map(|(j, c)| scaled_array(scaling.minmax(j, c), params.float32))
            .collect();
        write_id_columns(
            &io.output("minmax.parquet"),
            &features.track_ids,
            &features.columns,
            m,
            io.provenance,
        )?;
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

/// `track_id -> set.split` from `tracks.parquet`.
pub fn read_splits(path: &std::path::Path) -> Result<std::collections::HashMap<i64, String>> {
    let (schema, batches) = read_batches(path)?;
    let (id_col, split_col) = (
        column_index(&schema, "track_id", path)?,
        column_index(&schema, "set.split", path)?,
    );
    let mut out = std::collections::HashMap::new();
    for batch in batches {
        let ids = batch
            .column(id_col)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>();
        let splits = batch
            .column(split_col)
            .as_any()
            .downcast_ref::<StringArray>();
        let (Some(ids), Some(splits)) = (ids, splits) else {
            return Err(Error::BadFile {
                path: path.to_owned(),
                message: "`track_id` must be int64 and `set.split` text".into(),
            });
        };
        for (id, split) in ids.iter().zip(splits.iter()) {
            if let (Some(id), Some(split)) = (id, split) {
                out.insert(id, split.to_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_uses_population_std_and_constant_columns_stay_zero() {
        // Two columns of four rows, column-major.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0];
        let s = fit(&x, 4, &[true; 4]);
        assert!((s.std[0] - 1.25f64.sqrt()).abs() < 1e-12);
        let z0: Vec<f64> = s.zscore(0, &x[..4]).collect();
        assert!((z0[0] + 1.5 / 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.zscore(1, &x[4..]).collect::<Vec<_>>(), vec![0.0; 4]);
        assert_eq!(s.minmax(1, &x[4..]).collect::<Vec<_>>(), vec![0.0; 4]);
        assert_eq!(
            s.minmax(0, &x[..4]).collect::<Vec<_>>(),
            vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
        );
        assert!(z0.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn fitting_on_a_subset_ignores_other_rows() {
        let s = fit(&[0.0, 2.0, 100.0], 3, &[true, true, false]);
        assert_eq!((s.mean[0], s.std[0], s.max[0]), (1.0, 1.0, 2.0));
    }
}
