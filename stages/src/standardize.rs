//! `standardize`: z-score (population std) and min-max to [0, 1], per column.
//!
//! Fitted over all tracks by default, as the original did (sklearn-style `StandardScaler` /
//! `MinMaxScaler` on the full matrix), or on the training split only (`fit = "training"`,
//! which avoids leaking test statistics into the features). A constant column would divide
//! by zero: it is reported and left at 0 instead of NaN.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, StringArray};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kind::{InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::parquet_io::{read_batches, read_matrix, write_matrix, write_table};

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

/// Fits the statistics on the rows where `use_row` is true.
pub fn fit(values: &Array2<f64>, use_row: &[bool]) -> Scaling {
    let cols: Vec<(f64, f64, f64, f64)> = (0..values.ncols())
        .into_par_iter()
        .map(|j| {
            let column = values.column(j);
            let (mut n, mut sum, mut min, mut max) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
            for (v, _) in column.iter().zip(use_row).filter(|(_, u)| **u) {
                n += 1.0;
                sum += v;
                min = min.min(*v);
                max = max.max(*v);
            }
            let mean = sum / f64::max(n, 1.0);
            let var = column
                .iter()
                .zip(use_row)
                .filter(|(_, u)| **u)
                .map(|(v, _)| (v - mean) * (v - mean))
                .sum::<f64>()
                / f64::max(n, 1.0);
            (mean, var.sqrt(), min, max)
        })
        .collect();
    Scaling {
        mean: cols.iter().map(|c| c.0).collect(),
        std: cols.iter().map(|c| c.1).collect(),
        min: cols.iter().map(|c| c.2).collect(),
        max: cols.iter().map(|c| c.3).collect(),
    }
}

/// `(z-scored, min-max)` copies of `values`; constant columns become 0.
pub fn apply(values: &Array2<f64>, s: &Scaling) -> (Array2<f64>, Array2<f64>) {
    let mut z = values.clone();
    let mut m = values.clone();
    z.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .zip(m.axis_iter_mut(ndarray::Axis(0)).into_par_iter())
        .for_each(|(mut zr, mut mr)| {
            for j in 0..zr.len() {
                let v = zr[j];
                zr[j] = if s.std[j] > 0.0 {
                    (v - s.mean[j]) / s.std[j]
                } else {
                    0.0
                };
                let range = s.max[j] - s.min[j];
                mr[j] = if range > 0.0 {
                    (v - s.min[j]) / range
                } else {
                    0.0
                };
            }
        });
    (z, m)
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
        let features = read_matrix(io.input(0, "features")?)?;
        let use_row = match params.fit {
            FitOn::All => vec![true; features.track_ids.len()],
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
        let scaling = fit(&features.values, &use_row);
        let constant: Vec<bool> = scaling.std.iter().map(|s| *s == 0.0).collect();
        for (name, c) in features.columns.iter().zip(&constant) {
            if *c {
                tracing::warn!("standardize: column `{name}` is constant; its scaled values are 0");
            }
        }
        let (z, m) = apply(&features.values, &scaling);
        write_matrix(
            &io.output("zscore.parquet"),
            &features.track_ids,
            &features.columns,
            &z,
            params.float32,
            io.provenance,
        )?;
        write_matrix(
            &io.output("minmax.parquet"),
            &features.track_ids,
            &features.columns,
            &m,
            params.float32,
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
    let find = |name: &str| {
        schema.index_of(name).map_err(|_| Error::ColumnNotFound {
            path: path.to_owned(),
            column: name.into(),
        })
    };
    let (id_col, split_col) = (find("track_id")?, find("set.split")?);
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
        let x = Array2::from_shape_vec((4, 2), vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 4.0, 5.0])
            .unwrap_or_default();
        let s = fit(&x, &[true; 4]);
        assert!((s.std[0] - 1.25f64.sqrt()).abs() < 1e-12);
        let (z, m) = apply(&x, &s);
        assert!((z[[0, 0]] + 1.5 / 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(z.column(1).to_vec(), vec![0.0; 4]);
        assert_eq!(m.column(0).to_vec(), vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert!(z.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn fitting_on_a_subset_ignores_other_rows() {
        let x = Array2::from_shape_vec((3, 1), vec![0.0, 2.0, 100.0]).unwrap_or_default();
        let s = fit(&x, &[true, true, false]);
        assert_eq!((s.mean[0], s.std[0], s.max[0]), (1.0, 1.0, 2.0));
    }
}
