//! `balanced_classifier`: one-vs-rest genre classifiers with class weighting and a decision
//! threshold per genre, the original analysis' proposed future work, measured against the
//! same model without balancing.
//!
//! Each genre of the label table (the 164 of `genres_all` on the real data) is one sigmoid
//! output: with `model = "linear"` nothing is shared, so each output is a logistic regression
//! of its own (one-vs-rest); with `model = "mlp"` the outputs share hidden layers. Balancing is
//! two things, both fitted without the test set: a genre's positives weigh
//! `negatives / positives` of the training set in the loss (at most `max_weight`), and its
//! threshold is the one of 0.01, 0.02, ..., 0.99 with the best F1 on the validation set. The
//! unbalanced model is the same network from the same initial weights, trained with every
//! weight 1 and cut at 0.5. Both are scored on the test set: per genre precision, recall, F1
//! and PR-AUC (average precision), their macro means over the genres with a test positive,
//! and micro F1 over every decision.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, StringArray, UInt32Array, UInt64Array};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Result;
use crate::io::chart::{scatter_on, Axes};
use crate::io::fma::splits::{fma_rows, random_rows, read_splits, RowSets, Split};
use crate::io::labelled::{load, Dataset};
use crate::io::metrics::write_metrics;
use crate::io::parquet::write_table;
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::math::ranking::average_precision;
use crate::nn::layers::{bce_with_logits, weighted_bce_with_logits, Mlp};
use crate::nn::training::{self, Training};

/// The network under the per-genre outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// No hidden layer: one logistic regression per genre.
    Linear,
    /// Hidden ReLU layers (`hidden`) shared by every genre's output.
    Mlp,
}

/// Parameters of `balanced_classifier`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancedParams {
    /// `linear` (default) or `mlp`.
    pub model: Model,
    /// Hidden layer sizes of the `mlp` model.
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer of the `mlp` model.
    pub dropout: f64,
    /// Passes over the training tracks.
    pub epochs: usize,
    /// Tracks per Adam step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// The largest weight a genre's positives get.
    pub max_weight: f64,
    /// `fma` (default: train on `training`, tune on `validation`, score on `test`; needs the
    /// ingested tracks as a third input) or `random`.
    pub split: Split,
    /// Share of tracks for test (random split).
    pub test_fraction: f64,
    /// Share of tracks for validation (random split).
    pub validation_fraction: f64,
    /// Seed of initialisation, random split, shuffling and dropout.
    pub seed: u64,
}

impl Default for BalancedParams {
    fn default() -> Self {
        Self {
            model: Model::Linear,
            hidden: vec![256],
            dropout: 0.2,
            epochs: 20,
            batch: 64,
            learning_rate: 1e-3,
            max_weight: 100.0,
            split: Split::Fma,
            test_fraction: 0.1,
            validation_fraction: 0.1,
            seed: 42,
        }
    }
}

impl Params for BalancedParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("dropout", self.dropout, 0.0, 0.95)?;
        check_range("epochs", self.epochs, 1, 100_000)?;
        check_range("batch", self.batch, 1, 1_000_000)?;
        check_range("learning_rate", self.learning_rate, 1e-9, 10.0)?;
        check_range("max_weight", self.max_weight, 1.0, 1e6)?;
        check_range("test_fraction", self.test_fraction, 0.01, 0.5)?;
        check_range("validation_fraction", self.validation_fraction, 0.01, 0.5)?;
        if self.model == Model::Mlp && (self.hidden.is_empty() || self.hidden.contains(&0)) {
            return Err(ParamError::Invalid {
                key: "hidden".into(),
                message: "the mlp model needs at least one layer, each of positive size".into(),
            });
        }
        Ok(())
    }
}

/// The balanced per-genre classifier stage.
pub struct BalancedClassifier;

impl Stage for BalancedClassifier {
    type Params = BalancedParams;
    const KIND: &'static str = "balanced_classifier";
    const MODULE: &'static str = module_path!();

    fn inputs(params: &Self::Params) -> InputSpec {
        match params.split {
            Split::Fma => InputSpec::fixed(&["features", "labels", "tracks"]),
            Split::Random => InputSpec::fixed(&["features", "labels"]),
        }
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("weights", "weights.safetensors"),
            OutputSpec::new("weights_unbalanced", "weights_unbalanced.safetensors"),
            OutputSpec::new("per_genre", "per_genre.parquet"),
            OutputSpec::new("curves", "curves.parquet"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("figure", "balanced_vs_unbalanced.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let data = load(io.input(0, "features")?, io.input(1, "labels")?)?;
        let sets = match params.split {
            Split::Fma => fma_rows(&data.ids, &read_splits(io.input(2, "tracks")?)?),
            Split::Random => random_rows(
                data.ids.len(),
                params.test_fraction,
                params.validation_fraction,
                params.seed ^ 0x5917,
            ),
        };
        sets.require(1, "tracks with features and labels")?;
        let train_positives = positives(&data, &sets.train);
        let weights: Vec<f32> = train_positives
            .iter()
            .map(|&p| {
                if p == 0 {
                    1.0
                } else {
                    let negatives = (sets.train.len() - p) as f64;
                    (negatives / p as f64).clamp(1.0, params.max_weight) as f32
                }
            })
            .collect();

        let (balanced, balanced_curves) = fit(params, io, &data, &sets, Some(&weights))?;
        let (unbalanced, unbalanced_curves) = fit(params, io, &data, &sets, None)?;
        let thresholds = tune_thresholds(&data, &sets.validation, &balanced);
        let even = vec![0.5; data.y_width];
        let balanced_scores = score(&data, &sets.test, &balanced.test, &thresholds);
        let unbalanced_scores = score(&data, &sets.test, &unbalanced.test, &even);

        write_outputs(
            params,
            io,
            &data,
            &sets,
            Outputs {
                weights: &weights,
                train_positives: &train_positives,
                thresholds: &thresholds,
                balanced: (&balanced, &balanced_scores, &balanced_curves),
                unbalanced: (&unbalanced, &unbalanced_scores, &unbalanced_curves),
            },
        )
    }
}

/// A trained network and its sigmoid outputs on the validation and test rows.
struct Fitted {
    net: Mlp,
    validation: Vec<f32>,
    test: Vec<f32>,
}

fn positives(data: &Dataset, rows: &[usize]) -> Vec<usize> {
    let mut counts = vec![0usize; data.y_width];
    for &r in rows {
        for (c, y) in counts
            .iter_mut()
            .zip(&data.y[r * data.y_width..(r + 1) * data.y_width])
        {
            *c += usize::from(*y > 0.5);
        }
    }
    counts
}

fn fit(
    p: &BalancedParams,
    io: &StageIo<'_>,
    data: &Dataset,
    sets: &RowSets,
    weights: Option<&[f32]>,
) -> Result<(Fitted, training::Curves)> {
    // The same seed for both models: they start from the same weights and see the same
    // batches, so the difference between them is the balancing alone.
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut sizes = vec![data.x_width];
    if p.model == Model::Mlp {
        sizes.extend(&p.hidden);
    }
    sizes.push(data.y_width);
    let dropout = if p.model == Model::Mlp {
        p.dropout
    } else {
        0.0
    };
    let mut net = Mlp::new(&sizes, dropout as f32, false, &mut rng);
    let t = Training::new(p.epochs, p.batch, p.learning_rate as f32, p.seed);
    let data_view = (&data.x[..], data.x_width, &data.y[..], data.y_width);
    let rows = (&sets.train[..], &sets.validation[..]);
    let curves = match weights {
        Some(w) => {
            let loss = |out: &[f32], y: &[f32]| weighted_bce_with_logits(out, y, w);
            training::train_with_loss(&mut net, io, data_view, rows, t, &loss)?
        }
        None => training::train_with_loss(&mut net, io, data_view, rows, t, &bce_with_logits)?,
    };
    let validation = training::predict(&mut net, &data.x, data.x_width, &sets.validation);
    let test = training::predict(&mut net, &data.x, data.x_width, &sets.test);
    Ok((
        Fitted {
            net,
            validation,
            test,
        },
        curves,
    ))
}

/// Per genre, the threshold of 0.01..0.99 with the best validation F1 (the lowest such on a
/// tie); 0.5 for a genre without a validation positive, where F1 cannot choose.
fn tune_thresholds(data: &Dataset, rows: &[usize], fitted: &Fitted) -> Vec<f32> {
    let width = data.y_width;
    (0..width)
        .map(|g| {
            let pairs: Vec<(f32, bool)> = rows
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    (
                        fitted.validation[i * width + g],
                        data.y[r * width + g] > 0.5,
                    )
                })
                .collect();
            if !pairs.iter().any(|p| p.1) {
                return 0.5;
            }
            let mut best = (0.5f32, -1.0f64);
            for step in 1..100 {
                let threshold = step as f32 / 100.0;
                let f1 = counts(pairs.iter().copied(), threshold).f1().unwrap_or(0.0);
                if f1 > best.1 {
                    best = (threshold, f1);
                }
            }
            best.0
        })
        .collect()
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    true_pos: u64,
    false_pos: u64,
    false_neg: u64,
}

impl Counts {
    fn precision(self) -> Option<f64> {
        let predicted = self.true_pos + self.false_pos;
        (predicted > 0).then(|| self.true_pos as f64 / predicted as f64)
    }

    fn recall(self) -> Option<f64> {
        let actual = self.true_pos + self.false_neg;
        (actual > 0).then(|| self.true_pos as f64 / actual as f64)
    }

    fn f1(self) -> Option<f64> {
        let denominator = 2 * self.true_pos + self.false_pos + self.false_neg;
        (denominator > 0).then(|| 2.0 * self.true_pos as f64 / denominator as f64)
    }
}

fn counts(pairs: impl Iterator<Item = (f32, bool)>, threshold: f32) -> Counts {
    let mut c = Counts::default();
    for (output, truth) in pairs {
        match (output >= threshold, truth) {
            (true, true) => c.true_pos += 1,
            (true, false) => c.false_pos += 1,
            (false, true) => c.false_neg += 1,
            (false, false) => {}
        }
    }
    c
}

/// A genre's decision counts and its PR-AUC (none without a test positive).
type GenreScores = (Counts, Option<f64>);

/// One model's test scores.
struct Scores {
    per_genre: Vec<GenreScores>,
    macro_f1: f64,
    micro_f1: f64,
    macro_recall: f64,
    macro_precision: f64,
    macro_pr_auc: f64,
}

fn score(data: &Dataset, rows: &[usize], outputs: &[f32], thresholds: &[f32]) -> Scores {
    let width = data.y_width;
    let per_genre: Vec<GenreScores> = (0..width)
        .map(|g| {
            let pairs: Vec<(f32, bool)> = rows
                .iter()
                .enumerate()
                .map(|(i, &r)| (outputs[i * width + g], data.y[r * width + g] > 0.5))
                .collect();
            let c = counts(pairs.iter().copied(), thresholds[g]);
            let scores: Vec<f64> = pairs.iter().map(|p| f64::from(p.0)).collect();
            let truth: Vec<bool> = pairs.iter().map(|p| p.1).collect();
            (c, average_precision(&scores, &truth))
        })
        .collect();
    // Macro means over the genres with a test positive: elsewhere recall, F1 and PR-AUC are
    // undefined or trivially 0, and counting them would measure the split, not the model.
    let present: Vec<&GenreScores> = per_genre
        .iter()
        .filter(|(c, _)| c.true_pos + c.false_neg > 0)
        .collect();
    let mean = |f: &dyn Fn(&GenreScores) -> f64| {
        if present.is_empty() {
            0.0
        } else {
            present.iter().map(|p| f(p)).sum::<f64>() / present.len() as f64
        }
    };
    let total = per_genre
        .iter()
        .fold(Counts::default(), |a, (c, _)| Counts {
            true_pos: a.true_pos + c.true_pos,
            false_pos: a.false_pos + c.false_pos,
            false_neg: a.false_neg + c.false_neg,
        });
    Scores {
        macro_f1: mean(&|p| p.0.f1().unwrap_or(0.0)),
        macro_recall: mean(&|p| p.0.recall().unwrap_or(0.0)),
        macro_precision: mean(&|p| p.0.precision().unwrap_or(0.0)),
        macro_pr_auc: mean(&|p| p.1.unwrap_or(0.0)),
        micro_f1: total.f1().unwrap_or(0.0),
        per_genre,
    }
}

struct Outputs<'a> {
    weights: &'a [f32],
    train_positives: &'a [usize],
    thresholds: &'a [f32],
    balanced: (&'a Fitted, &'a Scores, &'a training::Curves),
    unbalanced: (&'a Fitted, &'a Scores, &'a training::Curves),
}

fn write_outputs(
    p: &BalancedParams,
    io: &StageIo<'_>,
    data: &Dataset,
    sets: &RowSets,
    o: Outputs<'_>,
) -> Result<()> {
    let (balanced, b_scores, b_curves) = o.balanced;
    let (unbalanced, u_scores, u_curves) = o.unbalanced;
    for (fitted, file) in [
        (balanced, "weights.safetensors"),
        (unbalanced, "weights_unbalanced.safetensors"),
    ] {
        let architecture = training::architecture(&fitted.net);
        training::save(
            &io.output(file),
            &fitted.net,
            "dense_",
            &architecture,
            io.provenance,
        )?;
    }
    let f64s = |values: Vec<Option<f64>>| Arc::new(Float64Array::from(values)) as ArrayRef;
    let of =
        |s: &Scores, f: fn(&GenreScores) -> Option<f64>| f64s(s.per_genre.iter().map(f).collect());
    let test_support: Vec<u64> = b_scores
        .per_genre
        .iter()
        .map(|(c, _)| c.true_pos + c.false_neg)
        .collect();
    write_table(
        &io.output("per_genre.parquet"),
        vec![
            (
                "genre",
                Arc::new(StringArray::from(data.labels.clone())) as ArrayRef,
            ),
            (
                "train_support",
                Arc::new(UInt64Array::from_iter_values(
                    o.train_positives.iter().map(|&c| c as u64),
                )),
            ),
            ("test_support", Arc::new(UInt64Array::from(test_support))),
            (
                "positive_weight",
                f64s(o.weights.iter().map(|w| Some(f64::from(*w))).collect()),
            ),
            (
                "threshold",
                f64s(o.thresholds.iter().map(|t| Some(f64::from(*t))).collect()),
            ),
            ("precision", of(b_scores, |p| p.0.precision())),
            ("recall", of(b_scores, |p| p.0.recall())),
            ("f1", of(b_scores, |p| p.0.f1())),
            ("pr_auc", of(b_scores, |p| p.1)),
            ("precision_unbalanced", of(u_scores, |p| p.0.precision())),
            ("recall_unbalanced", of(u_scores, |p| p.0.recall())),
            ("f1_unbalanced", of(u_scores, |p| p.0.f1())),
            ("pr_auc_unbalanced", of(u_scores, |p| p.1)),
        ],
        io.provenance,
    )?;
    let epochs = (1..=b_curves.len() as u32).collect::<Vec<_>>();
    let column = |curves: &training::Curves, pick: fn(&(f32, f32)) -> f32| {
        Arc::new(Float64Array::from_iter_values(
            curves.iter().map(|c| f64::from(pick(c))),
        )) as ArrayRef
    };
    write_table(
        &io.output("curves.parquet"),
        vec![
            ("epoch", Arc::new(UInt32Array::from(epochs)) as ArrayRef),
            ("train_loss", column(b_curves, |c| c.0)),
            ("validation_loss", column(b_curves, |c| c.1)),
            ("train_loss_unbalanced", column(u_curves, |c| c.0)),
            ("validation_loss_unbalanced", column(u_curves, |c| c.1)),
        ],
        io.provenance,
    )?;
    // One dot per genre with a test positive: where it sits above the diagonal, balancing
    // helped that genre.
    let pairs = |f: fn(Counts) -> Option<f64>| -> Vec<(f64, f64)> {
        b_scores
            .per_genre
            .iter()
            .zip(&u_scores.per_genre)
            .filter(|((c, _), _)| c.true_pos + c.false_neg > 0)
            .map(|((b, _), (u, _))| (f(*u).unwrap_or(0.0), f(*b).unwrap_or(0.0)))
            .collect()
    };
    scatter_on(
        &io.output("balanced_vs_unbalanced.svg"),
        &format!(
            "{}: per-genre test recall and F1, balanced against unbalanced",
            io.stage
        ),
        &[("recall", pairs(Counts::recall)), ("F1", pairs(Counts::f1))],
        (
            "unbalanced (weight 1, threshold 0.5)",
            "balanced (weighted, tuned threshold)",
        ),
        Axes {
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            diagonal: true,
        },
    )?;
    let genres_scored = b_scores
        .per_genre
        .iter()
        .filter(|(c, _)| c.true_pos + c.false_neg > 0)
        .count();
    let recall_gains = b_scores
        .per_genre
        .iter()
        .zip(&u_scores.per_genre)
        .filter(|((b, _), (u, _))| b.recall() > u.recall())
        .count();
    let summary = |s: &Scores| {
        json!({
            "macro_f1": s.macro_f1,
            "micro_f1": s.micro_f1,
            "macro_precision": s.macro_precision,
            "macro_recall": s.macro_recall,
            "macro_pr_auc": s.macro_pr_auc,
        })
    };
    let metrics = json!({
        "kind": BalancedClassifier::KIND,
        "split": p.split,
        "model": p.model,
        "macro_f1": b_scores.macro_f1,
        "macro_f1_unbalanced": u_scores.macro_f1,
        "micro_f1": b_scores.micro_f1,
        "micro_f1_unbalanced": u_scores.micro_f1,
        "macro_recall": b_scores.macro_recall,
        "macro_recall_unbalanced": u_scores.macro_recall,
        "macro_pr_auc": b_scores.macro_pr_auc,
        "macro_pr_auc_unbalanced": u_scores.macro_pr_auc,
        "balanced": summary(b_scores),
        "unbalanced": summary(u_scores),
        "genres": data.y_width,
        "genres_scored": genres_scored,
        "genres_with_higher_recall_balanced": recall_gains,
        "training_tracks": sets.train.len(),
        "validation_tracks": sets.validation.len(),
        "test_tracks": sets.test.len(),
        "final_validation_loss": b_curves.last().map(|c| c.1),
        "final_validation_loss_unbalanced": u_curves.last().map(|c| c.1),
        "architecture": training::architecture(&balanced.net),
    });
    write_metrics(&io.output("metrics.json"), &metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(rows: Vec<(Vec<f32>, Vec<f32>)>) -> Dataset {
        let (x_width, y_width) = (rows[0].0.len(), rows[0].1.len());
        Dataset {
            ids: (0..rows.len() as i64).collect(),
            x: rows.iter().flat_map(|r| r.0.clone()).collect(),
            x_width,
            y: rows.iter().flat_map(|r| r.1.clone()).collect(),
            y_width,
            labels: (0..y_width).map(|g| format!("g{g}")).collect(),
        }
    }

    #[test]
    fn the_threshold_with_the_best_validation_f1_is_chosen() {
        // Genre 0: positives score 0.3 and 0.35, negatives 0.1 and 0.2: any threshold in
        // (0.2, 0.3] separates them; the lowest is 0.21. Genre 1 has no positive: 0.5.
        let data = dataset(vec![
            (vec![0.0], vec![1.0, 0.0]),
            (vec![0.0], vec![1.0, 0.0]),
            (vec![0.0], vec![0.0, 0.0]),
            (vec![0.0], vec![0.0, 0.0]),
        ]);
        let fitted = Fitted {
            net: Mlp::from_layers(Vec::new()),
            validation: vec![0.3, 0.9, 0.35, 0.9, 0.1, 0.9, 0.2, 0.9],
            test: Vec::new(),
        };
        assert_eq!(
            tune_thresholds(&data, &[0, 1, 2, 3], &fitted),
            vec![0.21, 0.5]
        );
    }

    #[test]
    fn macro_means_skip_genres_without_a_test_positive() {
        let data = dataset(vec![
            (vec![0.0], vec![1.0, 0.0]),
            (vec![0.0], vec![0.0, 0.0]),
        ]);
        // Genre 0: one true positive, one false positive: precision 0.5, recall 1, F1 2/3.
        let s = score(&data, &[0, 1], &[0.9, 0.9, 0.8, 0.1], &[0.5, 0.5]);
        assert!((s.macro_f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.macro_recall, 1.0);
        // Micro F1 counts genre 1's false positive: 2 tp / (2 tp + 2 fp + 0 fn).
        assert!((s.micro_f1 - 0.5).abs() < 1e-12);
    }
}
