//! Training and evaluating the networks of `classifier.rs` and `autoencoder.rs`: seeded
//! hold-out split, epochs of shuffled mini-batches, training curves, threshold sweeps and
//! per-genre scores, and weights as safetensors.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, StringArray, UInt32Array};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::error::Result;
use crate::io::chart::{line_chart, Series};
use crate::io::parquet::write_table;
use crate::io::safetensors::{self, Tensor};
use crate::kind::StageIo;
use crate::nn::layers::{bce_with_logits, sigmoid, Adam, Mlp};

/// Training settings shared by the networks.
#[derive(Debug, Clone, Copy)]
pub struct Training {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per Adam step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Seed of shuffling and dropout.
    pub seed: u64,
}

impl Training {
    /// Settings from a stage's parameters; shuffling and dropout draw from a stream one
    /// after the stage seed, which initialises the weights.
    pub fn new(epochs: usize, batch: usize, lr: f32, seed: u64) -> Self {
        Self {
            epochs,
            batch,
            lr,
            seed: seed.wrapping_add(1),
        }
    }
}

/// Training and held-out loss per epoch.
pub type Curves = Vec<(f32, f32)>;

/// Rows `0..n` split into (train, held out) with `holdout` of them held out, seeded.
pub fn split(n: usize, holdout: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let held = ((n as f64 * holdout).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    let mut test = order[..held].to_vec();
    let mut train = order[held..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    (train, test)
}

fn gather(data: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&data[r * width..(r + 1) * width]);
    }
    out
}

/// A loss of a batch's outputs against its targets, and its gradient by output.
pub type Loss<'a> = &'a (dyn Fn(&[f32], &[f32]) -> (f32, Vec<f32>) + Sync);

/// Mean loss of `net` (no dropout) on `rows`.
#[allow(clippy::too_many_arguments)]
fn evaluate_loss(
    net: &mut Mlp,
    x: &[f32],
    xw: usize,
    y: &[f32],
    yw: usize,
    rows: &[usize],
    batch: usize,
    loss: Loss<'_>,
) -> f32 {
    let mut total = 0.0f64;
    for chunk in rows.chunks(batch.max(256)) {
        let out = net.forward(&gather(x, xw, chunk), chunk.len(), None);
        total += f64::from(loss(&out, &gather(y, yw, chunk)).0) * chunk.len() as f64;
    }
    (total / rows.len().max(1) as f64) as f32
}

/// Trains `net` to map `x` rows to `y` rows by binary cross-entropy; returns the loss curves.
pub fn train(
    net: &mut Mlp,
    io: &StageIo<'_>,
    data: (&[f32], usize, &[f32], usize),
    rows: (&[usize], &[usize]),
    t: Training,
) -> Result<Curves> {
    train_with_loss(net, io, data, rows, t, &bce_with_logits)
}

/// Trains `net` with `loss`; returns the training and held-out loss per epoch.
pub fn train_with_loss(
    net: &mut Mlp,
    io: &StageIo<'_>,
    data: (&[f32], usize, &[f32], usize),
    rows: (&[usize], &[usize]),
    t: Training,
    loss_of: Loss<'_>,
) -> Result<Curves> {
    in_pool(|| {
        let stage = io.stage;
        let (x, xw, y, yw) = data;
        let (train_rows, held_rows) = rows;
        let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
        let adam = Adam::new(t.lr);
        let mut curves = Vec::with_capacity(t.epochs);
        let started = std::time::Instant::now();
        let mut samples = 0usize;
        for epoch in 0..t.epochs {
            io.check_cancelled()?;
            let epoch_started = std::time::Instant::now();
            let mut order = train_rows.to_vec();
            order.shuffle(&mut rng);
            let mut total = 0.0f64;
            let mut done = 0usize;
            let mut reported = 0usize;
            for chunk in order.chunks(t.batch) {
                let out = net.forward(&gather(x, xw, chunk), chunk.len(), Some(&mut rng));
                let (loss, grad) = loss_of(&out, &gather(y, yw, chunk));
                net.backward(&grad, chunk.len());
                net.update(adam);
                total += f64::from(loss) * chunk.len() as f64;
                samples += chunk.len();
                done += chunk.len();
                // About a hundred reports an epoch, whatever the batch size.
                let percent = done * 100 / order.len().max(1);
                if percent != reported {
                    reported = percent;
                    io.report(
                        &format!(
                            "epoch {}/{} loss {:.5}",
                            epoch + 1,
                            t.epochs,
                            total / done as f64
                        ),
                        (epoch as f64 + done as f64 / order.len().max(1) as f64) / t.epochs as f64,
                    );
                }
            }
            let train_loss = (total / order.len().max(1) as f64) as f32;
            let held_loss = evaluate_loss(net, x, xw, y, yw, held_rows, t.batch, loss_of);
            tracing::info!(
                "{stage}: epoch {}/{}: loss {train_loss:.5}, held-out loss {held_loss:.5} ({:.2}s, {} rows)",
                epoch + 1,
                t.epochs,
                epoch_started.elapsed().as_secs_f64(),
                order.len()
            );
            curves.push((train_loss, held_loss));
        }
        // Logged, not stored: a timing would make otherwise identical results differ.
        let throughput = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
        tracing::info!("{stage}: trained at {throughput:.0} samples/s");
        Ok(curves)
    })
}

/// Runs `work` on a thread of rayon's pool. A network's joins then go straight to the pool's
/// other thread, where from outside the pool each is handed in and waited for: a tenth of an
/// autoencoder's training step.
fn in_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// Sigmoid outputs of `net` for `rows`.
pub fn predict(net: &mut Mlp, x: &[f32], xw: usize, rows: &[usize]) -> Vec<f32> {
    outputs(net, x, xw, rows).into_iter().map(sigmoid).collect()
}

/// Raw last-layer outputs of `net` (no dropout) for `rows`, in blocks.
pub fn outputs(net: &mut Mlp, x: &[f32], xw: usize, rows: &[usize]) -> Vec<f32> {
    in_pool(|| {
        let mut out = Vec::new();
        for chunk in rows.chunks(1024) {
            out.extend(net.forward(&gather(x, xw, chunk), chunk.len(), None));
        }
        out
    })
}

/// Writes the loss curves as a table and a figure.
pub fn write_curves(
    dir: &Path,
    stage: &str,
    curves: &Curves,
    provenance: &[(String, String)],
) -> Result<()> {
    write_table(
        &dir.join("curves.parquet"),
        vec![
            (
                "epoch",
                Arc::new(UInt32Array::from_iter_values(1..=curves.len() as u32)) as ArrayRef,
            ),
            (
                "train_loss",
                Arc::new(Float64Array::from_iter_values(
                    curves.iter().map(|c| f64::from(c.0)),
                )),
            ),
            (
                "held_out_loss",
                Arc::new(Float64Array::from_iter_values(
                    curves.iter().map(|c| f64::from(c.1)),
                )),
            ),
        ],
        provenance,
    )?;
    let points = |f: &dyn Fn(&(f32, f32)) -> f32| {
        curves
            .iter()
            .enumerate()
            .map(|(i, c)| ((i + 1) as f64, f64::from(f(c))))
            .collect()
    };
    line_chart(
        &dir.join("loss.svg"),
        &format!("{stage}: binary cross-entropy per epoch"),
        &[
            Series {
                name: "training".into(),
                points: points(&|c| c.0),
                band: None,
            },
            Series {
                name: "held out".into(),
                points: points(&|c| c.1),
                band: None,
            },
        ],
        "epoch",
        "loss",
        None,
    )
}

/// The weights of `net`'s layers as PyTorch `nn.Linear` tensors (`weight` is out x in).
pub fn tensors(net: &Mlp, prefix: &str) -> Vec<Tensor> {
    let mut out = Vec::new();
    for (i, layer) in net.layers.iter().enumerate() {
        let mut w = vec![0.0f32; layer.w.len()];
        for r in 0..layer.n_in {
            for c in 0..layer.n_out {
                w[c * layer.n_in + r] = layer.w[r * layer.n_out + c];
            }
        }
        out.push(Tensor {
            name: format!("{prefix}{i}.weight"),
            shape: vec![layer.n_out, layer.n_in],
            data: w,
        });
        out.push(Tensor {
            name: format!("{prefix}{i}.bias"),
            shape: vec![layer.n_out],
            data: layer.b.clone(),
        });
    }
    out
}

/// Writes `net` as safetensors with its architecture and provenance in the metadata.
pub fn save(
    path: &Path,
    net: &Mlp,
    prefix: &str,
    architecture: &Value,
    provenance: &[(String, String)],
) -> Result<()> {
    let mut metadata: BTreeMap<String, String> = provenance.iter().cloned().collect();
    metadata.insert("architecture".into(), architecture.to_string());
    safetensors::write(path, &tensors(net, prefix), &metadata)
}

/// The layer sizes and activations of `net`, for metadata.
pub fn architecture(net: &Mlp) -> Value {
    Value::Array(
        net.layers
            .iter()
            .map(|l| json!({"in": l.n_in, "out": l.n_out, "activation": if l.relu { "relu" } else { "linear" }, "dropout": shortest(l.dropout)}))
            .collect(),
    )
}

/// One genre's (accuracy, precision if defined, recall if defined, support).
pub type GenreScore = (f64, Option<f64>, Option<f64>, u64);

/// Scores of a multi-label classifier on held-out rows.
pub struct Evaluation {
    /// (threshold, mean Jaccard).
    pub sweep: Vec<(f64, f64)>,
    /// The best threshold.
    pub best: f64,
    /// Per label at the best threshold: (accuracy, precision or None, recall or None, support).
    pub per_label: Vec<GenreScore>,
    /// Micro and macro F1 at the best threshold.
    pub f1: (f64, f64),
}

/// Sweeps thresholds 0.00..0.49 (predict a label when its output is at least the threshold)
/// and scores each label at the best one, or at `chosen` when the threshold was tuned on
/// other rows (a validation set): then the sweep is only shown, never picked from.
pub fn evaluate(outputs: &[f32], truth: &[f32], labels: usize, chosen: Option<f64>) -> Evaluation {
    let rows = truth.len() / labels.max(1);
    let jaccard = |thr: f32| -> f64 {
        let mut sum = 0.0;
        for r in 0..rows {
            let (mut inter, mut union) = (0u32, 0u32);
            for l in 0..labels {
                let p = outputs[r * labels + l] >= thr;
                let t = truth[r * labels + l] > 0.5;
                inter += u32::from(p && t);
                union += u32::from(p || t);
            }
            sum += if union == 0 {
                1.0
            } else {
                f64::from(inter) / f64::from(union)
            };
        }
        sum / rows.max(1) as f64
    };
    let sweep: Vec<(f64, f64)> = (0..50)
        .map(|i| (f64::from(i) / 100.0, jaccard(i as f32 / 100.0)))
        .collect();
    let best = chosen.unwrap_or_else(|| {
        sweep
            .iter()
            .fold(sweep[0], |b, s| if s.1 > b.1 { *s } else { b })
            .0
    });
    let thr = best as f32;
    let mut per_label = Vec::with_capacity(labels);
    let (mut tp_all, mut fp_all, mut fn_all) = (0u64, 0u64, 0u64);
    let mut f1s = Vec::new();
    for l in 0..labels {
        let (mut tp, mut fp, mut fnn, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for r in 0..rows {
            let p = outputs[r * labels + l] >= thr;
            let t = truth[r * labels + l] > 0.5;
            match (p, t) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fnn += 1,
                (false, false) => tn += 1,
            }
        }
        tp_all += tp;
        fp_all += fp;
        fn_all += fnn;
        let precision = (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64);
        let recall = (tp + fnn > 0).then(|| tp as f64 / (tp + fnn) as f64);
        if tp + fp + fnn > 0 {
            f1s.push(2.0 * tp as f64 / (2 * tp + fp + fnn) as f64);
        }
        per_label.push((
            (tp + tn) as f64 / rows.max(1) as f64,
            precision,
            recall,
            tp + fnn,
        ));
    }
    let micro = if tp_all + fp_all + fn_all > 0 {
        2.0 * tp_all as f64 / (2 * tp_all + fp_all + fn_all) as f64
    } else {
        0.0
    };
    let macro_f1 = if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    };
    Evaluation {
        sweep,
        best,
        per_label,
        f1: (micro, macro_f1),
    }
}

/// Writes the evaluation tables, figures and metrics of a classifier.
pub fn write_evaluation(
    dir: &Path,
    stage: &str,
    names: &[String],
    e: &Evaluation,
    extra: Value,
    provenance: &[(String, String)],
) -> Result<()> {
    write_table(
        &dir.join("thresholds.parquet"),
        vec![
            (
                "threshold",
                Arc::new(Float64Array::from_iter_values(e.sweep.iter().map(|s| s.0))) as ArrayRef,
            ),
            (
                "jaccard",
                Arc::new(Float64Array::from_iter_values(e.sweep.iter().map(|s| s.1))),
            ),
        ],
        provenance,
    )?;
    write_table(
        &dir.join("per_genre.parquet"),
        vec![
            (
                "genre",
                Arc::new(StringArray::from(names.to_vec())) as ArrayRef,
            ),
            (
                "accuracy",
                Arc::new(Float64Array::from_iter_values(
                    e.per_label.iter().map(|p| p.0),
                )),
            ),
            (
                "precision",
                Arc::new(Float64Array::from(
                    e.per_label.iter().map(|p| p.1).collect::<Vec<_>>(),
                )),
            ),
            (
                "recall",
                Arc::new(Float64Array::from(
                    e.per_label.iter().map(|p| p.2).collect::<Vec<_>>(),
                )),
            ),
            (
                "support",
                Arc::new(arrow_array::UInt64Array::from_iter_values(
                    e.per_label.iter().map(|p| p.3),
                )),
            ),
        ],
        provenance,
    )?;
    let best_j = e.sweep.iter().find(|s| s.0 == e.best).map_or(0.0, |s| s.1);
    line_chart(
        &dir.join("thresholds.svg"),
        &format!(
            "{stage}: Jaccard index against the output threshold (best {:.2})",
            e.best
        ),
        &[Series {
            name: "mean Jaccard (held out)".into(),
            points: e.sweep.clone(),
            band: None,
        }],
        "threshold",
        "mean Jaccard index",
        None,
    )?;
    let defined = |f: &dyn Fn(&GenreScore) -> Option<f64>| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = e
            .per_label
            .iter()
            .filter_map(|p| f(p).map(|v| (v, p.0)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    crate::io::chart::scatter(
        &dir.join("per_genre.svg"),
        &format!(
            "{stage}: per-genre accuracy against precision and recall at threshold {:.2}",
            e.best
        ),
        &[
            ("precision", defined(&|p| p.1)),
            ("recall", defined(&|p| p.2)),
        ],
        "precision / recall",
        "accuracy",
    )?;
    let under: Vec<&String> = names
        .iter()
        .zip(&e.per_label)
        .filter(|(_, p)| p.0 < 0.9)
        .map(|(n, _)| n)
        .collect();
    let mean = |f: &dyn Fn(&GenreScore) -> Option<f64>| {
        let v: Vec<f64> = e.per_label.iter().filter_map(f).collect();
        if v.is_empty() {
            Value::Null
        } else {
            json!(v.iter().sum::<f64>() / v.len() as f64)
        }
    };
    let mut metrics = json!({
        "jaccard_best": best_j,
        "threshold_best": e.best,
        "jaccard_by_threshold": e.sweep.iter().map(|s| s.1).collect::<Vec<_>>(),
        "micro_f1": e.f1.0,
        "macro_f1": e.f1.1,
        "mean_accuracy": mean(&|p| Some(p.0)),
        "mean_precision_where_defined": mean(&|p| p.1),
        "mean_recall_where_defined": mean(&|p| p.2),
        "genres_precision_undefined": e.per_label.iter().filter(|p| p.1.is_none()).count(),
        "genres_under_90_percent_accuracy": under,
    });
    if let (Value::Object(m), Value::Object(x)) = (&mut metrics, extra) {
        m.extend(x);
    }
    crate::io::metrics::write_metrics(&dir.join("metrics.json"), &metrics)
}

/// An f32 as the f64 its shortest decimal form reads (`0.2`, not `0.20000000298023224`), for
/// metadata people read.
fn shortest(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}
