//! `popularity`: how well a track's listens can be predicted, the question the original
//! analysis named ("classify music genre and popularity") and left open.
//!
//! The target is `ln(1 + track.listens)`. Three feature sets, each scored on its own:
//! - `audio`: the audio features (the first input, typically z-scored): does the music
//!   itself predict popularity?
//! - `audio+metadata`: audio plus every column of the second input (a `sql` result, one row
//!   per track) except the engagement columns: what is known when a track is uploaded.
//! - `audio+engagement`: audio, metadata and the `engagement` columns (the track's own
//!   favorites, comments and interest). These follow from being listened to, so this set
//!   measures how much of popularity they explain; it is not a predictor for a new upload.
//!
//! Models: the training mean (baseline), ridge regression (closed form, its penalty chosen by
//! validation R²) and histogram gradient-boosted trees (`math::trees`, stopped early on
//! validation). They are fitted on the FMA
//! `training` set, tuned on `validation` and scored on `test`; no artist is on two sides, so
//! no artist's popularity leaks into the score. Metrics on the test set: R², mean absolute
//! error, Spearman's correlation, and ROC-AUC of telling the top 10% by listens.
//!
//! Leaks are refused, not trusted away: a metadata column whose name contains `listens`
//! (`album.listens`, an artist's total) is an error, and the target is read from the
//! third input only. Numeric columns are used as they are, with a column's missing values
//! replaced by its training mean and marked in an indicator column; text columns become one
//! indicator per frequent value (counted on the training set).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::io::chart::{bar_chart, scatter_on, Axes};
use crate::io::fma::splits::{fma_rows, read_splits, RowSets};
use crate::io::metrics::write_metrics;
use crate::io::parquet::{read_matrix, write_table};
use crate::io::table_columns::{read_columns, Columns, Values};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::math::ranking::{roc_auc, spearman};
use crate::math::ridge::RidgePath;
use crate::math::trees::{self, TreeParams};

/// Parameters of `popularity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopularityParams {
    /// Metadata columns that follow from being listened to; used only in `audio+engagement`.
    pub engagement: Vec<String>,
    /// Ridge penalties tried (on standardised columns); the best on validation is kept.
    pub alphas: Vec<f64>,
    /// The trees' shrinkage per round.
    pub learning_rate: f64,
    /// Most boosting rounds (fewer when validation loss stops improving for 10).
    pub max_iter: usize,
    /// Most leaves per tree.
    pub max_leaf_nodes: usize,
    /// Fewest training tracks per leaf.
    pub min_samples_leaf: usize,
    /// Most indicator columns per text column (its most frequent values).
    pub categories: usize,
    /// Fewest training tracks a text value needs to get an indicator column.
    pub min_category_tracks: usize,
    /// Share of test tracks, by listens, that counts as "top" for the ROC-AUC.
    pub top_share: f64,
}

impl Default for PopularityParams {
    fn default() -> Self {
        Self {
            engagement: vec![
                "track.favorites".into(),
                "track.comments".into(),
                "track.interest".into(),
            ],
            alphas: vec![0.1, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0],
            learning_rate: 0.1,
            max_iter: 200,
            max_leaf_nodes: 31,
            min_samples_leaf: 20,
            categories: 20,
            min_category_tracks: 10,
            top_share: 0.1,
        }
    }
}

impl Params for PopularityParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("learning_rate", self.learning_rate, 1e-4, 1.0)?;
        check_range("max_iter", self.max_iter, 1, 100_000)?;
        check_range("max_leaf_nodes", self.max_leaf_nodes, 2, 4096)?;
        check_range("min_samples_leaf", self.min_samples_leaf, 1, 1_000_000)?;
        check_range("top_share", self.top_share, 0.001, 0.5)?;
        check_range("categories", self.categories, 0, 1000)?;
        if self.alphas.is_empty() || self.alphas.iter().any(|a| !(*a > 0.0 && a.is_finite())) {
            return Err(ParamError::Invalid {
                key: "alphas".into(),
                message: "expected at least one positive, finite penalty".into(),
            });
        }
        if let Some(bad) = self.engagement.iter().find(|c| leaks(c)) {
            return Err(ParamError::Invalid {
                key: "engagement".into(),
                message: format!("`{bad}` contains the listens being predicted"),
            });
        }
        Ok(())
    }
}

/// A column name that carries listens: the target itself or an aggregate containing it.
fn leaks(column: &str) -> bool {
    column.to_ascii_lowercase().contains("listens")
}

/// The three feature sets, in report order.
pub const FEATURE_SETS: [&str; 3] = ["audio", "audio+metadata", "audio+engagement"];
/// The models, in report order.
pub const MODELS: [&str; 3] = ["mean", "ridge", "trees"];

/// The popularity stage.
pub struct Popularity;

impl Stage for Popularity {
    type Params = PopularityParams;
    const KIND: &'static str = "popularity";
    const MODULE: &'static str = module_path!();

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["audio", "metadata", "tracks"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("predictions", "predictions.parquet"),
            OutputSpec::new("importances", "importances.parquet"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("scatter_figure", "predicted_vs_actual.svg"),
            OutputSpec::new("r2_figure", "r2.svg"),
            OutputSpec::new("importance_figure", "importances.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let audio = read_matrix(io.input(0, "audio")?)?;
        let metadata_path = io.input(1, "metadata")?;
        let metadata = read_columns(metadata_path, None)?;
        if let Some((name, _)) = metadata.columns.iter().find(|(n, _)| leaks(n)) {
            return Err(Error::BadFile {
                path: metadata_path.to_owned(),
                message: format!(
                    "column `{name}` contains listens, the target being predicted; leave it out of the query"
                ),
            });
        }
        for wanted in &params.engagement {
            if !metadata.columns.iter().any(|(n, _)| n == wanted) {
                return Err(Error::ColumnNotFound {
                    path: metadata_path.to_owned(),
                    column: wanted.clone(),
                });
            }
        }
        let tracks_path = io.input(2, "tracks")?;
        let listens_of = listens(tracks_path)?;
        let split_of = read_splits(tracks_path)?;

        // Tracks with audio features, listens and a set.
        let rows: Vec<usize> = (0..audio.track_ids.len())
            .filter(|&i| listens_of.contains_key(&audio.track_ids[i]))
            .collect();
        let ids: Vec<i64> = rows.iter().map(|&i| audio.track_ids[i]).collect();
        let sets = fma_rows(&ids, &split_of);
        sets.require(2, "tracks with audio features and listens")?;
        let listens: Vec<f64> = ids.iter().map(|id| listens_of[id]).collect();
        let target: Vec<f64> = listens.iter().map(|l| l.ln_1p()).collect();

        let audio_columns: Vec<Feature> = audio
            .columns
            .iter()
            .enumerate()
            .map(|(j, name)| Feature {
                name: name.clone(),
                values: rows.iter().map(|&i| audio.values[(i, j)]).collect(),
            })
            .collect();
        let (metadata_columns, engagement_columns) =
            encode_metadata(params, &metadata, &ids, &sets.train);
        // The three sets share their columns: each lists references, not copies (a copy of
        // the audio columns is 440 MB at full scale).
        let audio_only: Vec<&Feature> = audio_columns.iter().collect();
        let with_metadata: Vec<&Feature> = audio_only
            .iter()
            .copied()
            .chain(&metadata_columns)
            .collect();
        let with_engagement: Vec<&Feature> = with_metadata
            .iter()
            .copied()
            .chain(&engagement_columns)
            .collect();
        let designs = [audio_only, with_metadata, with_engagement];

        let mut fits = Vec::new();
        for (set, design) in FEATURE_SETS.iter().zip(&designs) {
            io.check_cancelled()?;
            io.report(&format!("fitting {set}"), fits.len() as f64 / 3.0);
            fits.push(fit_set(params, set, design, &target, &sets)?);
        }
        write_outputs(params, io, &ids, &listens, &target, &sets, &designs, &fits)
    }
}

/// `track_id -> listens` for tracks whose listens are known.
fn listens(path: &std::path::Path) -> Result<HashMap<i64, f64>> {
    let table = read_columns(path, Some(&["track.listens"]))?;
    let values = match table.columns.first() {
        Some((_, Values::Number(values))) => values,
        Some((_, Values::Text(_))) => {
            return Err(Error::BadFile {
                path: path.to_owned(),
                message: "column `track.listens` is text, expected play counts".into(),
            })
        }
        None => {
            return Err(Error::ColumnNotFound {
                path: path.to_owned(),
                column: "track.listens".into(),
            })
        }
    };
    // A track without listens has nothing to predict and is left out; a negative count is
    // not a count.
    if let Some((id, v)) = table.track_ids.iter().zip(values).find(|(_, v)| **v < 0.0) {
        return Err(Error::BadFile {
            path: path.to_owned(),
            message: format!("track {id} has {v} listens; expected a count of 0 or more"),
        });
    }
    Ok(table
        .track_ids
        .iter()
        .zip(values)
        .filter(|(_, v)| v.is_finite())
        .map(|(id, v)| (*id, *v))
        .collect())
}

/// One column of a design matrix.
#[derive(Debug, Clone, PartialEq)]
struct Feature {
    name: String,
    values: Vec<f64>,
}

/// The metadata table's columns as numbers for the rows of `ids`: (metadata, engagement).
/// Statistics that shape the encoding (means, frequent values) come from the training rows.
fn encode_metadata(
    p: &PopularityParams,
    table: &Columns,
    ids: &[i64],
    train: &[usize],
) -> (Vec<Feature>, Vec<Feature>) {
    let row_of = table.row_of();
    let source: Vec<Option<usize>> = ids.iter().map(|id| row_of.get(id).copied()).collect();
    let (mut metadata, mut engagement) = (Vec::new(), Vec::new());
    for (name, values) in &table.columns {
        let encoded = match values {
            Values::Number(v) => {
                let column: Vec<f64> = source
                    .iter()
                    .map(|r| r.map_or(f64::NAN, |r| v[r]))
                    .collect();
                impute(name, column, train)
            }
            Values::Text(v) => {
                let column: Vec<Option<&str>> = source
                    .iter()
                    .map(|r| r.and_then(|r| v[r].as_deref()))
                    .collect();
                one_hot(p, name, &column, train)
            }
        };
        if p.engagement.contains(name) {
            engagement.extend(encoded);
        } else {
            metadata.extend(encoded);
        }
    }
    (metadata, engagement)
}

/// Missing values become the training mean, with an indicator column when any training
/// value is missing.
fn impute(name: &str, mut column: Vec<f64>, train: &[usize]) -> Vec<Feature> {
    let known: Vec<f64> = train
        .iter()
        .map(|&r| column[r])
        .filter(|v| v.is_finite())
        .collect();
    let missing_in_training = known.len() < train.len();
    let mean = if known.is_empty() {
        0.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let indicator: Vec<f64> = column
        .iter()
        .map(|v| f64::from(u8::from(!v.is_finite())))
        .collect();
    for v in &mut column {
        if !v.is_finite() {
            *v = mean;
        }
    }
    let mut out = vec![Feature {
        name: name.to_owned(),
        values: column,
    }];
    if missing_in_training {
        out.push(Feature {
            name: format!("{name} is missing"),
            values: indicator,
        });
    }
    out
}

/// One indicator per value with at least `min_category_tracks` training tracks, the most
/// frequent `categories` of them (ties by value), so the columns are the same on any run.
fn one_hot(
    p: &PopularityParams,
    name: &str,
    column: &[Option<&str>],
    train: &[usize],
) -> Vec<Feature> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &r in train {
        if let Some(v) = column[r] {
            *counts.entry(v).or_default() += 1;
        }
    }
    let mut frequent: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= p.min_category_tracks)
        .collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    frequent.truncate(p.categories);
    frequent
        .into_iter()
        .map(|(value, _)| Feature {
            name: format!("{name} = {value}"),
            values: column
                .iter()
                .map(|v| f64::from(u8::from(*v == Some(value))))
                .collect(),
        })
        .collect()
}

/// One feature set's three models: predictions for every row, and what each learned.
struct SetFit {
    predictions: [Vec<f64>; 3],
    alpha: f64,
    ridge_weights: Vec<f64>,
    tree_importances: Vec<f64>,
    tree_count: usize,
}

fn fit_set(
    p: &PopularityParams,
    set: &str,
    design: &[&Feature],
    target: &[f64],
    sets: &RowSets,
) -> Result<SetFit> {
    let n = target.len();
    let train_y: Vec<f64> = sets.train.iter().map(|&r| target[r]).collect();
    let mean = train_y.iter().sum::<f64>() / train_y.len() as f64;

    // Column views of the design: the ridge and the trees read it in place.
    let columns: Vec<&[f64]> = design.iter().map(|f| f.values.as_slice()).collect();
    let started = std::time::Instant::now();
    let path = RidgePath::new(&columns, &sets.train, &train_y)?;
    let validation_y: Vec<f64> = sets.validation.iter().map(|&r| target[r]).collect();
    let mut best: Option<(f64, crate::math::ridge::Ridge)> = None;
    for &alpha in &p.alphas {
        let fit = path.at(alpha);
        let r2 = r_squared(&fit.predict_rows(&columns, &sets.validation), &validation_y);
        tracing::debug!("popularity {set}: ridge alpha {alpha}: validation R² {r2:.4}");
        if best.as_ref().is_none_or(|(b, _)| r2 > *b) {
            best = Some((r2, fit));
        }
    }
    let Some((_, ridge)) = best else {
        return Err(Error::Numerical {
            what: "ridge regression",
            message: "no penalty to try".into(),
        });
    };
    let ridge_predictions = ridge.predict_columns(&columns);
    let ridge_seconds = started.elapsed().as_secs_f64();

    let tree_params = TreeParams {
        learning_rate: p.learning_rate,
        max_iter: p.max_iter,
        max_leaf_nodes: p.max_leaf_nodes,
        min_samples_leaf: p.min_samples_leaf,
        ..TreeParams::default()
    };
    let booster = trees::fit(
        &columns,
        target,
        &sets.train,
        &sets.validation,
        &tree_params,
    )?;
    let tree_predictions = booster.predict(&columns);
    tracing::debug!(
        "popularity {set}: ridge path and predictions in {ridge_seconds:.2}s, {} trees in {:.2}s",
        booster.tree_count(),
        started.elapsed().as_secs_f64() - ridge_seconds
    );
    Ok(SetFit {
        predictions: [vec![mean; n], ridge_predictions, tree_predictions],
        alpha: ridge.alpha,
        ridge_weights: ridge.coef,
        tree_importances: booster.importances(),
        tree_count: booster.tree_count(),
    })
}

/// `1 - SS_res / SS_tot` around the mean of `truth` (NaN when it is constant).
fn r_squared(predicted: &[f64], truth: &[f64]) -> f64 {
    let mean = truth.iter().sum::<f64>() / truth.len().max(1) as f64;
    let ss_res: f64 = predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum();
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        f64::NAN
    }
}

/// Test-set scores of one model.
fn scores(
    p: &PopularityParams,
    predicted: &[f64],
    target: &[f64],
    listens: &[f64],
    sets: &RowSets,
) -> Value {
    let pick = |v: &[f64], rows: &[usize]| rows.iter().map(|&r| v[r]).collect::<Vec<f64>>();
    let (test_pred, test_true) = (pick(predicted, &sets.test), pick(target, &sets.test));
    let test_listens = pick(listens, &sets.test);
    let mae = test_pred
        .iter()
        .zip(&test_true)
        .map(|(p, t)| (p - t).abs())
        .sum::<f64>()
        / test_true.len() as f64;
    // The top share by listens: every test track at or above the listens of the one ranked
    // at that share (ties at the cut all count as top).
    let mut sorted = test_listens.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let cut_index =
        ((sorted.len() as f64 * p.top_share).ceil() as usize).clamp(1, sorted.len()) - 1;
    let cut = sorted[cut_index];
    let top: Vec<bool> = test_listens.iter().map(|l| *l >= cut).collect();
    let validation_r2 = r_squared(
        &pick(predicted, &sets.validation),
        &pick(target, &sets.validation),
    );
    json!({
        "r2": r_squared(&test_pred, &test_true),
        "mae": mae,
        "spearman": spearman(&test_pred, &test_true),
        "top10_auc": roc_auc(&test_pred, &top),
        "validation_r2": validation_r2,
    })
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    p: &PopularityParams,
    io: &StageIo<'_>,
    ids: &[i64],
    listens: &[f64],
    target: &[f64],
    sets: &RowSets,
    designs: &[Vec<&Feature>],
    fits: &[SetFit],
) -> Result<()> {
    let mut set_of = vec![""; ids.len()];
    for (name, rows) in [
        ("training", &sets.train),
        ("validation", &sets.validation),
        ("test", &sets.test),
    ] {
        for &r in rows {
            set_of[r] = name;
        }
    }
    let mut columns: Vec<(String, ArrayRef)> = vec![
        (
            "track_id".into(),
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
        ),
        (
            "set.split".into(),
            Arc::new(StringArray::from(set_of.clone())),
        ),
        (
            "listens".into(),
            Arc::new(Float64Array::from(listens.to_vec())),
        ),
        (
            "target".into(),
            Arc::new(Float64Array::from(target.to_vec())),
        ),
    ];
    for (set, fit) in FEATURE_SETS.iter().zip(fits) {
        for (model, predicted) in MODELS.iter().zip(&fit.predictions) {
            columns.push((
                format!("{set}/{model}"),
                Arc::new(Float64Array::from(predicted.clone())),
            ));
        }
    }
    write_table(
        &io.output("predictions.parquet"),
        columns
            .iter()
            .map(|(n, a)| (n.as_str(), a.clone()))
            .collect(),
        io.provenance,
    )?;

    let (mut set_col, mut feature_col, mut importance_col, mut weight_col) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((set, design), fit) in FEATURE_SETS.iter().zip(designs).zip(fits) {
        for (j, feature) in design.iter().enumerate() {
            set_col.push(*set);
            feature_col.push(feature.name.clone());
            importance_col.push(fit.tree_importances[j]);
            weight_col.push(fit.ridge_weights[j]);
        }
    }
    write_table(
        &io.output("importances.parquet"),
        vec![
            ("features", Arc::new(StringArray::from(set_col)) as ArrayRef),
            ("feature", Arc::new(StringArray::from(feature_col))),
            (
                "tree_gain_share",
                Arc::new(Float64Array::from(importance_col)),
            ),
            ("ridge_weight", Arc::new(Float64Array::from(weight_col))),
        ],
        io.provenance,
    )?;

    let mut models = Map::new();
    let mut r2_bars = (Vec::new(), Vec::new());
    for ((set, fit), design) in FEATURE_SETS.iter().zip(fits).zip(designs) {
        for (model, predicted) in MODELS.iter().zip(&fit.predictions) {
            let mut entry = json!({"features": set, "model": model});
            if let (Value::Object(e), Value::Object(s)) =
                (&mut entry, scores(p, predicted, target, listens, sets))
            {
                e.extend(s);
            }
            match *model {
                "ridge" => entry["alpha"] = json!(fit.alpha),
                "trees" => entry["trees"] = json!(fit.tree_count),
                _ => {}
            }
            entry["feature_count"] = json!(design.len());
            r2_bars.0.push(format!("{set} / {model}"));
            r2_bars.1.push(entry["r2"].as_f64().unwrap_or(f64::NAN));
            models.insert(format!("{set}/{model}"), entry);
        }
    }
    bar_chart(
        &io.output("r2.svg"),
        &format!(
            "{}: test R² of log(1 + listens) by feature set and model",
            io.stage
        ),
        &r2_bars.0,
        &r2_bars.1,
        "R² on the test set",
    )?;

    // Test tracks, every k-th so the page stays small, for the trees of each feature set.
    let step = sets.test.len().div_ceil(1500).max(1);
    let shown: Vec<usize> = sets.test.iter().step_by(step).copied().collect();
    let series: Vec<(&str, Vec<(f64, f64)>)> = FEATURE_SETS
        .iter()
        .zip(fits)
        .map(|(set, fit)| {
            (
                *set,
                shown
                    .iter()
                    .map(|&r| (target[r], fit.predictions[2][r]))
                    .collect(),
            )
        })
        .collect();
    let axes = Axes::square_around(&series);
    scatter_on(
        &io.output("predicted_vs_actual.svg"),
        &format!(
            "{}: trees' predicted against actual log(1 + listens), test tracks",
            io.stage
        ),
        &series,
        ("actual log(1 + listens)", "predicted"),
        axes,
    )?;

    let metadata_set = 1;
    let mut ranked: Vec<(usize, f64)> = fits[metadata_set]
        .tree_importances
        .iter()
        .copied()
        .enumerate()
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(15);
    bar_chart(
        &io.output("importances.svg"),
        &format!(
            "{}: the trees' most used features (audio+metadata)",
            io.stage
        ),
        &ranked
            .iter()
            .map(|(j, _)| designs[metadata_set][*j].name.clone())
            .collect::<Vec<_>>(),
        &ranked.iter().map(|r| r.1).collect::<Vec<_>>(),
        "share of the total split gain",
    )?;

    let metrics = json!({
        "kind": Popularity::KIND,
        "split": "fma",
        "target": "log1p(track.listens)",
        "models": models,
        "feature_sets": {
            "audio": "the audio features",
            "audio+metadata": "audio and what is known at upload (the metadata input, without the engagement columns)",
            "audio+engagement": "audio, metadata and the track's own engagement counts: explained, not predicted",
        },
        "engagement_columns": p.engagement,
        "training_tracks": sets.train.len(),
        "validation_tracks": sets.validation.len(),
        "test_tracks": sets.test.len(),
    });
    write_metrics(&io.output("metrics.json"), &metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Inputs for `n` tracks: audio features x0..x3, where listens follow x0 and x1 (and
    /// `favorites` follow listens), and every tenth track is a test track.
    fn write_inputs(dir: &Path, n: usize, listens_of: &dyn Fn(i64, &[f64]) -> i64) -> Vec<PathBuf> {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let ids: Vec<i64> = (1..=n as i64).collect();
        let x: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect())
            .collect();
        let listens: Vec<i64> = (0..n)
            .map(|i| listens_of(ids[i], &[x[0][i], x[1][i], x[2][i], x[3][i]]))
            .collect();
        let split: Vec<&str> = (0..n)
            .map(|i| match i % 10 {
                0 => "test",
                1 => "validation",
                _ => "training",
            })
            .collect();
        let f64s = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
        let paths: Vec<PathBuf> = ["audio", "metadata", "tracks"]
            .iter()
            .map(|f| dir.join(format!("{f}.parquet")))
            .collect();
        let id_column = || {
            (
                "track_id",
                Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
            )
        };
        let mut audio = vec![id_column()];
        for (j, column) in x.iter().enumerate() {
            audio.push((["x0", "x1", "x2", "x3"][j], f64s(column.clone())));
        }
        let ok = |r: Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(write_table(&paths[0], audio, &[]));
        ok(write_table(
            &paths[1],
            vec![
                id_column(),
                (
                    "track.duration",
                    Arc::new(Int64Array::from_iter(
                        (0..n).map(|i| (i % 7 != 0).then_some(100 + i as i64 % 300)),
                    )),
                ),
                (
                    "album.type",
                    Arc::new(StringArray::from_iter(
                        (0..n).map(|i| Some(["Album", "Single Tracks"][i % 2])),
                    )),
                ),
                (
                    "track.favorites",
                    f64s(listens.iter().map(|l| (*l as f64).sqrt()).collect()),
                ),
                ("track.comments", f64s(vec![0.0; n])),
                (
                    "track.interest",
                    f64s((0..n).map(|i| i as f64 % 5.0).collect()),
                ),
            ],
            &[],
        ));
        ok(write_table(
            &paths[2],
            vec![
                id_column(),
                ("set.split", Arc::new(StringArray::from(split))),
                ("track.listens", Arc::new(Int64Array::from(listens))),
            ],
            &[],
        ));
        paths
    }

    fn run(inputs: &[PathBuf], out: &Path) -> Result<()> {
        let names: Vec<String> = ["audio", "metadata", "tracks"].map(String::from).to_vec();
        let cancel = AtomicBool::new(false);
        let io = StageIo {
            stage: "popularity",
            inputs,
            input_names: &names,
            out_dir: out,
            provenance: &[],
            project_dir: out,
            cancel: &cancel,
            progress: &|_, _| {},
        };
        Popularity::run(&PopularityParams::default(), &io)
    }

    fn metrics(out: &Path) -> Value {
        let text =
            std::fs::read_to_string(out.join("metrics.json")).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn planted(_: i64, x: &[f64]) -> i64 {
        ((2.0 * x[0] + x[1] + 4.0).exp() - 1.0).round() as i64
    }

    #[test]
    fn a_planted_signal_in_the_audio_is_recovered_and_the_baseline_explains_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let inputs = write_inputs(dir.path(), 1500, &planted);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap_or_else(|e| panic!("{e}"));
        run(&inputs, &out).unwrap_or_else(|e| panic!("{e}"));
        let m = metrics(&out);
        let r2 = |name: &str| m["models"][name]["r2"].as_f64().unwrap_or(f64::NAN);
        assert!(r2("audio/ridge") > 0.95, "{}", r2("audio/ridge"));
        assert!(r2("audio/trees") > 0.8, "{}", r2("audio/trees"));
        assert!(r2("audio/mean") <= 0.0);
        assert!(
            m["models"]["audio/trees"]["top10_auc"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.9
        );
        // x0 carries twice the signal of x1; x2 and x3 none.
        let (_, batches) = crate::io::parquet::read_batches(&out.join("importances.parquet"))
            .unwrap_or_else(|e| panic!("{e}"));
        let gain = batches[0]
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| a.values().to_vec())
            .unwrap_or_else(|| panic!("tree_gain_share is not float64"));
        assert!(gain[0] > gain[2] && gain[1] > gain[3], "{gain:?}");
        // Metadata columns: duration (with gaps), album type as indicators.
        assert_eq!(
            m["models"]["audio+metadata/ridge"]["feature_count"],
            4 + 2 + 2
        );
        assert_eq!(
            m["models"]["audio+engagement/ridge"]["feature_count"],
            4 + 4 + 3
        );
    }

    #[test]
    fn a_test_tracks_own_listens_change_no_prediction() {
        // Track 1 is a test track (row 0). Its listens go from planted to 10^6: only its
        // target may change, never a feature or any model's prediction of any track. The
        // engagement columns are written from listens here, so keep them equal: they are
        // features by design, and this test is about the target.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("out")).unwrap_or_else(|e| panic!("{e}"));
        }
        let inputs_a = write_inputs(&a, 600, &planted);
        let inputs_b = write_inputs(&b, 600, &|id, x| {
            if id == 1 {
                1_000_000
            } else {
                planted(id, x)
            }
        });
        std::fs::copy(&inputs_a[1], &inputs_b[1]).unwrap_or_else(|e| panic!("{e}"));
        run(&inputs_a, &a.join("out")).unwrap_or_else(|e| panic!("{e}"));
        run(&inputs_b, &b.join("out")).unwrap_or_else(|e| panic!("{e}"));
        let read = |d: &Path| {
            read_columns(&d.join("out/predictions.parquet"), None).unwrap_or_else(|e| panic!("{e}"))
        };
        let (pa, pb) = (read(&a), read(&b));
        for ((name, va), (_, vb)) in pa.columns.iter().zip(&pb.columns) {
            if name == "listens" || name == "target" {
                assert_ne!(va, vb, "{name}");
            } else {
                let bits = |v: &Values| match v {
                    Values::Number(v) => v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    Values::Text(t) => t
                        .iter()
                        .map(|s| s.as_ref().map_or(0, |s| s.len() as u64))
                        .collect(),
                };
                assert_eq!(
                    bits(va),
                    bits(vb),
                    "{name} changed with a test track's listens"
                );
            }
        }
    }

    #[test]
    fn a_missing_engagement_column_and_a_negative_count_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let inputs = write_inputs(dir.path(), 100, &planted);
        let names: Vec<String> = ["audio", "metadata", "tracks"].map(String::from).to_vec();
        let cancel = AtomicBool::new(false);
        let io = StageIo {
            stage: "popularity",
            inputs: &inputs,
            input_names: &names,
            out_dir: dir.path(),
            provenance: &[],
            project_dir: dir.path(),
            cancel: &cancel,
            progress: &|_, _| {},
        };
        let params = PopularityParams {
            engagement: vec!["track.shares".into()],
            ..PopularityParams::default()
        };
        let message = Popularity::run(&params, &io).err().map(|e| e.to_string());
        assert_eq!(
            message,
            Some(format!("{}: no column `track.shares`", inputs[1].display()))
        );
        let negative = write_inputs(dir.path(), 100, &|id, x| {
            if id == 7 {
                -3
            } else {
                planted(id, x)
            }
        });
        let message = run(&negative, dir.path()).err().map(|e| e.to_string());
        assert_eq!(
            message,
            Some(format!(
                "{}: track 7 has -3 listens; expected a count of 0 or more",
                negative[2].display()
            ))
        );
    }

    #[test]
    fn a_column_holding_listens_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let inputs = write_inputs(dir.path(), 100, &planted);
        write_table(
            &inputs[1],
            vec![
                ("track_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ("album.listens", Arc::new(Int64Array::from(vec![5]))),
            ],
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let message = run(&inputs, dir.path()).err().map(|e| e.to_string());
        assert_eq!(
            message,
            Some(format!(
                "{}: column `album.listens` contains listens, the target being predicted; leave it out of the query",
                inputs[1].display()
            ))
        );
    }
}
