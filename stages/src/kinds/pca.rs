//! `pca`: exact principal component analysis of the z-scored features.
//!
//! Covariance (a GEMM over the centred data, divided by n - 1 as sklearn does) and its
//! symmetric eigendecomposition, both by faer. Reports the explained variance ratio of every
//! component and how many reach a threshold (90% by default), and keeps `n_components`
//! (155, as the original) or as many as `variance` asks for. Sign convention: each
//! component's largest-magnitude loading is positive (sklearn's `svd_flip`), so reruns are
//! byte-identical.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, UInt32Array};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::io::chart::{line_chart, Series};
use crate::io::metrics::write_metrics;
use crate::io::parquet::{read_column_major, write_column_major, write_table, Landing};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::math::pca::Pca;

/// Parameters of `pca`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcaParams {
    /// Components to keep (155 as in the original), unless `variance` is set.
    pub n_components: usize,
    /// Keep the fewest components whose cumulative explained variance reaches this share.
    pub variance: Option<f64>,
    /// The share of variance reported (and marked in the figure).
    pub threshold: f64,
}

impl Default for PcaParams {
    fn default() -> Self {
        Self {
            n_components: 155,
            variance: None,
            threshold: 0.9,
        }
    }
}

impl Params for PcaParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("n_components", self.n_components, 1, 100_000)?;
        check_range("threshold", self.threshold, 0.0, 1.0)?;
        if let Some(v) = self.variance {
            check_range("variance", v, 0.0, 1.0)?;
        }
        Ok(())
    }
}

/// The PCA stage.
pub struct PcaStage;

impl Stage for PcaStage {
    type Params = PcaParams;
    const KIND: &'static str = "pca";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["features"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("scores", "scores.parquet"),
            OutputSpec::new("components", "components.parquet"),
            OutputSpec::new("explained_variance", "explained_variance.parquet"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("figure", "cumulative_variance.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let clock = std::time::Instant::now();
        let elapsed = || clock.elapsed().as_secs_f64();
        // Column-major throughout: Parquet stores columns, faer's GEMMs prefer them, and the
        // scores go back out column by column. Centred as read: both the fit and the scores
        // need it so.
        let data = read_column_major(io.input(0, "features")?, Landing::Centred)?;
        let (n, p) = (data.rows(), data.columns.len());
        tracing::debug!("pca: read and centred {n} x {p} in {:.3} s", elapsed());
        if n < 2 {
            return Err(Error::TooFew {
                what: "rows for PCA".into(),
                needed: 2,
                got: n,
            });
        }
        let pca = Pca::fit_column_major(&data.values, n, data.means.clone())?;
        tracing::debug!("pca: fitted at {:.3} s", elapsed());
        io.check_cancelled()?;
        let ratios = pca.ratios();
        let k = match params.variance {
            Some(v) => pca.components_for(v),
            None => params.n_components,
        };
        if k > p {
            return Err(Error::BadParam {
                param: "n_components",
                message: format!("{k} components asked for, but the data has only {p} columns"),
            });
        }
        let for_threshold = pca.components_for(params.threshold);
        let cumulative: Vec<f64> = ratios
            .iter()
            .scan(0.0, |c, r| {
                *c += r;
                Some(*c)
            })
            .collect();

        let scores = pca.scores_column_major(&data.values, n, k);
        tracing::debug!("pca: projected at {:.3} s", elapsed());
        let names: Vec<String> = (1..=k).map(|i| format!("pc{i:03}")).collect();
        // The small outputs (components, spectrum, metrics, figure) are written while the
        // scores' columns are encoded and appended, one core's serial work beside the other's.
        let summaries = || -> Result<()> {
            let mut columns: Vec<(&str, ArrayRef)> = vec![(
                "component",
                Arc::new(UInt32Array::from_iter_values(1..=k as u32)) as ArrayRef,
            )];
            for (j, name) in data.columns.iter().enumerate() {
                columns.push((
                    name.as_str(),
                    Arc::new(Float64Array::from_iter_values(
                        (0..k).map(|c| pca.components[[j, c]]),
                    )),
                ));
            }
            write_table(&io.output("components.parquet"), columns, io.provenance)?;
            write_table(
                &io.output("explained_variance.parquet"),
                vec![
                    (
                        "component",
                        Arc::new(UInt32Array::from_iter_values(1..=p as u32)) as ArrayRef,
                    ),
                    (
                        "explained_variance",
                        Arc::new(Float64Array::from(pca.explained_variance.to_vec())),
                    ),
                    ("ratio", Arc::new(Float64Array::from(ratios.clone()))),
                    (
                        "cumulative",
                        Arc::new(Float64Array::from(cumulative.clone())),
                    ),
                ],
                io.provenance,
            )?;
            write_metrics(
                &io.output("metrics.json"),
                &json!({
                    "n_components": k,
                    "threshold": params.threshold,
                    "components_for_threshold": for_threshold,
                    "explained_by_kept": cumulative.get(k - 1).copied().unwrap_or(0.0),
                    "features": p,
                    "tracks": data.track_ids.len(),
                }),
            )?;
            line_chart(
                &io.output("cumulative_variance.svg"),
                &format!(
                    "PCA: {for_threshold} components explain {:.0}% of the variance",
                    params.threshold * 100.0
                ),
                &[Series {
                    name: "cumulative explained variance".into(),
                    points: cumulative
                        .iter()
                        .enumerate()
                        .map(|(i, c)| ((i + 1) as f64, *c))
                        .collect(),
                    band: None,
                }],
                "components",
                "cumulative explained variance ratio",
                Some((
                    params.threshold,
                    format!("{:.0}%", params.threshold * 100.0),
                )),
            )
        };
        let (scores_written, summaries_written) = rayon::join(
            || {
                write_column_major(
                    &io.output("scores.parquet"),
                    &data.track_ids,
                    &names,
                    scores,
                    io.provenance,
                )
            },
            summaries,
        );
        scores_written?;
        summaries_written?;
        tracing::debug!("pca: every output written at {:.3} s", elapsed());
        Ok(())
    }
}
