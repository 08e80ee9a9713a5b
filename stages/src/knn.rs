//! `knn`: multi-label genre prediction with exact k-nearest neighbours, scored with the
//! Jaccard index, as the original analysis did (and more: precision, recall, F1).
//!
//! One neighbour search of the largest k per repeat serves every k from 1 to `k_max`. The
//! search is a blocked kernel: a block of queries is held in cache while every training row
//! streams past it once; the distance loop runs over fixed 16-lane chunks so the compiler
//! vectorises it (no target-cpu flags). Ties are broken by track id, so results do not
//! depend on the number of threads. A label is predicted when at least half of the k
//! neighbours have it (the original's `round(mean + 0.01)`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, UInt32Array};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chart::{bins, histogram, line_chart, Series};
use crate::error::{Error, Result};
use crate::kind::{check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo};
use crate::metrics::write_metrics;
use crate::parquet_io::{read_matrix, write_table};
use crate::standardize::read_splits;

/// The distance between feature vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Manhattan distance (the original).
    L1,
    /// Squared Euclidean distance.
    Sqeuclidean,
}

/// How tracks are split into training and test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// `repeats` seeded random splits with `test_fraction` held out (the original).
    Random,
    /// The FMA split: train on `training`, score on `test`.
    Fma,
}

/// Parameters of `knn`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnnParams {
    /// Largest k scored (every k from 1 is scored).
    pub k_max: usize,
    /// `l1` (default) or `sqeuclidean`.
    pub metric: Metric,
    /// `random` (default) or `fma`.
    pub split: Split,
    /// Random splits.
    pub repeats: usize,
    /// Share of tracks held out per random split.
    pub test_fraction: f64,
    /// Seed of the random splits.
    pub seed: u64,
}

impl Default for KnnParams {
    fn default() -> Self {
        Self {
            k_max: 10,
            metric: Metric::L1,
            split: Split::Random,
            repeats: 5,
            test_fraction: 0.01,
            seed: 42,
        }
    }
}

impl Params for KnnParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("k_max", self.k_max, 1, 1000)?;
        check_range("repeats", self.repeats, 1, 1000)?;
        check_range("test_fraction", self.test_fraction, 1e-6, 0.99)
    }
}

const LANES: usize = 16;
const QUERY_BLOCK: usize = 32;

/// Rows of f32 padded to a multiple of [`LANES`], for the distance kernel.
#[derive(Debug, Clone)]
pub struct Rows {
    data: Vec<f32>,
    width: usize,
    /// Number of rows.
    pub len: usize,
}

impl Rows {
    /// Copies the rows `index` of `values` (padding with zeros, which add no distance).
    pub fn gather(values: &Array2<f64>, index: &[usize]) -> Self {
        let width = values.ncols().div_ceil(LANES) * LANES;
        let mut data = vec![0.0f32; width * index.len()];
        for (r, &i) in index.iter().enumerate() {
            for (j, v) in values.row(i).iter().enumerate() {
                data[r * width + j] = *v as f32;
            }
        }
        Self {
            data,
            width,
            len: index.len(),
        }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.width..(i + 1) * self.width]
    }
}

#[inline(always)]
fn lane<const L1: bool>(x: f32, y: f32) -> f32 {
    let d = x - y;
    if L1 {
        d.abs()
    } else {
        d * d
    }
}

#[inline(always)]
fn reduce(acc: &[f32; LANES]) -> f32 {
    // A fixed reduction order keeps results identical across runs, threads and CPUs.
    let mut sum = 0.0;
    for v in acc {
        sum += v;
    }
    sum
}

#[inline(always)]
fn distance<const L1: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += lane::<L1>(x[l], y[l]);
        }
    }
    reduce(&acc)
}

/// Distances of four queries to one training row: each training chunk is loaded once for
/// the four (register blocking). Per query, the arithmetic is exactly that of `distance`.
#[inline(always)]
fn distance4<const L1: bool>(q: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
    let mut acc = [[0.0f32; LANES]; 4];
    for (c, y) in b.chunks_exact(LANES).enumerate() {
        let range = c * LANES..(c + 1) * LANES;
        for (acc, q) in acc.iter_mut().zip(&q) {
            let x = &q[range.clone()];
            for l in 0..LANES {
                acc[l] += lane::<L1>(x[l], y[l]);
            }
        }
    }
    [
        reduce(&acc[0]),
        reduce(&acc[1]),
        reduce(&acc[2]),
        reduce(&acc[3]),
    ]
}

type Heap = Vec<(f32, i64, usize)>;

#[inline(always)]
fn push(heap: &mut Heap, k: usize, d: f32, id: i64, t: usize) {
    if heap.len() == k {
        let worst = heap[k - 1];
        if d > worst.0 || (d == worst.0 && id >= worst.1) {
            return;
        }
        heap.pop();
    }
    let pos = heap.partition_point(|e| e.0 < d || (e.0 == d && e.1 < id));
    heap.insert(pos, (d, id, t));
}

struct Search<'a> {
    queries: &'a Rows,
    train: &'a Rows,
    train_ids: &'a [i64],
    k: usize,
}

/// The k nearest training rows of queries `start..end`: every training row streams past
/// the block of queries once.
#[inline(always)]
fn scan_block<const L1: bool>(s: &Search<'_>, start: usize, end: usize) -> Vec<Heap> {
    let mut best: Vec<Heap> = vec![Vec::with_capacity(s.k + 1); end - start];
    for (t, &id) in s.train_ids.iter().enumerate().take(s.train.len) {
        let row = s.train.row(t);
        let mut q = start;
        while q + 4 <= end {
            let rows = [
                s.queries.row(q),
                s.queries.row(q + 1),
                s.queries.row(q + 2),
                s.queries.row(q + 3),
            ];
            let d = distance4::<L1>(rows, row);
            for (i, d) in d.into_iter().enumerate() {
                push(&mut best[q - start + i], s.k, d, id, t);
            }
            q += 4;
        }
        for q in q..end {
            push(
                &mut best[q - start],
                s.k,
                distance::<L1>(s.queries.row(q), row),
                id,
                t,
            );
        }
    }
    best
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scan_avx512<const L1: bool>(s: &Search<'_>, start: usize, end: usize) -> Vec<Heap> {
    scan_block::<L1>(s, start, end)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2<const L1: bool>(s: &Search<'_>, start: usize, end: usize) -> Vec<Heap> {
    scan_block::<L1>(s, start, end)
}

/// Picks the widest vector instructions the CPU has at run time (no target-cpu flags at
/// build time); every variant does the same arithmetic in the same order.
fn scan<const L1: bool>(s: &Search<'_>, start: usize, end: usize) -> Vec<Heap> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { scan_avx512::<L1>(s, start, end) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { scan_avx2::<L1>(s, start, end) };
        }
    }
    scan_block::<L1>(s, start, end)
}

/// For every query, the indices (into `train`) of its `k` nearest training rows, nearest
/// first; ties broken by `train_ids`.
pub fn nearest(
    queries: &Rows,
    train: &Rows,
    train_ids: &[i64],
    k: usize,
    metric: Metric,
) -> Vec<Vec<usize>> {
    let search = Search {
        queries,
        train,
        train_ids,
        k: k.min(train.len),
    };
    let blocks: Vec<usize> = (0..queries.len).step_by(QUERY_BLOCK).collect();
    blocks
        .par_iter()
        .flat_map_iter(|&start| {
            let end = (start + QUERY_BLOCK).min(queries.len);
            let best = match metric {
                Metric::L1 => scan::<true>(&search, start, end),
                Metric::Sqeuclidean => scan::<false>(&search, start, end),
            };
            best.into_iter()
                .map(|h| h.into_iter().map(|e| e.2).collect::<Vec<_>>())
        })
        .collect()
}

/// Scores of one (repeat, k).
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Mean Jaccard index over test tracks.
    pub jaccard: f64,
    /// Share of test tracks with at least one label right.
    pub at_least_one: f64,
    /// Micro-averaged precision, recall, F1.
    pub micro: (f64, f64, f64),
    /// Macro-averaged precision, recall, F1 over labels where each is defined.
    pub macro_avg: (f64, f64, f64),
    /// Per label: (support, predicted, true positives).
    pub per_label: Vec<(u64, u64, u64)>,
    /// Per test track: (jaccard, true labels, predicted labels).
    pub per_track: Vec<(f64, u32, u32)>,
}

/// Votes with the first `k` neighbours and scores against `truth`.
pub fn score(
    neighbours: &[Vec<usize>],
    k: usize,
    train_labels: &[Vec<bool>],
    truth: &[Vec<bool>],
) -> Scores {
    let labels = truth.first().map_or(0, Vec::len);
    let mut per_label = vec![(0u64, 0u64, 0u64); labels];
    let mut per_track = Vec::with_capacity(truth.len());
    let mut counts = vec![0usize; labels];
    for (nb, t) in neighbours.iter().zip(truth) {
        counts.iter_mut().for_each(|c| *c = 0);
        let used = k.min(nb.len());
        for &n in &nb[..used] {
            for (c, has) in counts.iter_mut().zip(&train_labels[n]) {
                *c += usize::from(*has);
            }
        }
        let (mut inter, mut union, mut n_true, mut n_pred) = (0u32, 0u32, 0u32, 0u32);
        for l in 0..labels {
            let p = counts[l] * 2 >= used && used > 0;
            let tr = t[l];
            inter += u32::from(p && tr);
            union += u32::from(p || tr);
            n_true += u32::from(tr);
            n_pred += u32::from(p);
            per_label[l].0 += u64::from(tr);
            per_label[l].1 += u64::from(p);
            per_label[l].2 += u64::from(p && tr);
        }
        let j = if union == 0 {
            1.0
        } else {
            f64::from(inter) / f64::from(union)
        };
        per_track.push((j, n_true, n_pred));
    }
    let n = per_track.len().max(1) as f64;
    let (tp, pred, sup) = per_label
        .iter()
        .fold((0u64, 0u64, 0u64), |a, l| (a.0 + l.2, a.1 + l.1, a.2 + l.0));
    let f1 = |p: f64, r: f64| {
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    };
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let micro_p = ratio(tp, pred);
    let micro_r = ratio(tp, sup);
    let precisions: Vec<f64> = per_label
        .iter()
        .filter(|l| l.1 > 0)
        .map(|l| l.2 as f64 / l.1 as f64)
        .collect();
    let recalls: Vec<f64> = per_label
        .iter()
        .filter(|l| l.0 > 0)
        .map(|l| l.2 as f64 / l.0 as f64)
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let f1s: Vec<f64> = per_label
        .iter()
        .filter(|l| l.0 > 0 || l.1 > 0)
        .map(|l| f1(ratio(l.2, l.1), ratio(l.2, l.0)))
        .collect();
    Scores {
        jaccard: per_track.iter().map(|t| t.0).sum::<f64>() / n,
        at_least_one: per_track.iter().filter(|t| t.0 > 0.0).count() as f64 / n,
        micro: (micro_p, micro_r, f1(micro_p, micro_r)),
        macro_avg: (mean(&precisions), mean(&recalls), mean(&f1s)),
        per_label,
        per_track,
    }
}

/// The k-NN stage.
pub struct Knn;

impl Stage for Knn {
    type Params = KnnParams;
    const KIND: &'static str = "knn";
    const SOURCES: &'static [&'static str] = &[
        "knn.rs",
        "chart.rs",
        "parquet_io.rs",
        "metrics.rs",
        "standardize.rs",
    ];

    fn inputs(_: &Self::Params) -> InputSpec {
        InputSpec::fixed(&["features", "labels", "tracks"])
    }

    fn outputs(_: &Self::Params) -> Vec<OutputSpec> {
        vec![
            OutputSpec::new("scores", "scores.parquet"),
            OutputSpec::new("per_genre", "per_genre.parquet"),
            OutputSpec::new("per_track", "per_track.parquet"),
            OutputSpec::new("metrics", "metrics.json"),
            OutputSpec::new("jaccard_figure", "jaccard_vs_k.svg"),
            OutputSpec::new("histogram_figure", "jaccard_histogram.svg"),
            OutputSpec::new("true_labels_figure", "jaccard_vs_true_labels.svg"),
        ]
    }

    fn run(params: &Self::Params, io: &StageIo<'_>) -> Result<()> {
        let features = read_matrix(io.input(0, "features")?)?;
        let labels_path = io.input(1, "labels")?;
        let labels = read_matrix(labels_path)?;
        let label_row: HashMap<i64, usize> = labels
            .track_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        // Tracks present in both tables, in feature order.
        let rows: Vec<(usize, usize)> = features
            .track_ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| label_row.get(id).map(|&l| (i, l)))
            .collect();
        if rows.len() < 2 {
            return Err(Error::TooFew {
                what: format!(
                    "tracks present in both {} and the features",
                    labels_path.display()
                ),
                needed: 2,
                got: rows.len(),
            });
        }
        let truth_all: Vec<Vec<bool>> = rows
            .iter()
            .map(|&(_, l)| labels.values.row(l).iter().map(|v| *v > 0.5).collect())
            .collect();
        let ids: Vec<i64> = rows.iter().map(|&(i, _)| features.track_ids[i]).collect();

        let splits: Vec<(Vec<usize>, Vec<usize>)> = match params.split {
            Split::Random => (0..params.repeats)
                .map(|r| {
                    let mut order: Vec<usize> = (0..rows.len()).collect();
                    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
                    rng.set_stream(r as u64);
                    order.shuffle(&mut rng);
                    let n_test = ((rows.len() as f64 * params.test_fraction).ceil() as usize)
                        .clamp(1, rows.len() - 1);
                    let test = order[..n_test].to_vec();
                    let mut train = order[n_test..].to_vec();
                    train.sort_unstable();
                    (train, test)
                })
                .collect(),
            Split::Fma => {
                let split_of = read_splits(io.input(2, "tracks")?)?;
                let pick = |name: &str| {
                    (0..rows.len())
                        .filter(|&i| split_of.get(&ids[i]).is_some_and(|s| s == name))
                        .collect::<Vec<_>>()
                };
                vec![(pick("training"), pick("test"))]
            }
        };

        let k_max = params.k_max;
        let mut table: Vec<(usize, usize, Scores)> = Vec::new();
        for (repeat, (train, test)) in splits.iter().enumerate() {
            io.check_cancelled()?;
            if train.len() < k_max || test.is_empty() {
                return Err(Error::TooFew {
                    what: "training tracks for k_max neighbours".into(),
                    needed: k_max.max(1),
                    got: train.len(),
                });
            }
            let feature_rows = |set: &[usize]| set.iter().map(|&i| rows[i].0).collect::<Vec<_>>();
            let train_rows = Rows::gather(&features.values, &feature_rows(train));
            let test_rows = Rows::gather(&features.values, &feature_rows(test));
            let train_ids: Vec<i64> = train.iter().map(|&i| ids[i]).collect();
            let neighbours = nearest(&test_rows, &train_rows, &train_ids, k_max, params.metric);
            let train_labels: Vec<Vec<bool>> =
                train.iter().map(|&i| truth_all[i].clone()).collect();
            let truth: Vec<Vec<bool>> = test.iter().map(|&i| truth_all[i].clone()).collect();
            for k in 1..=k_max {
                table.push((repeat, k, score(&neighbours, k, &train_labels, &truth)));
            }
            tracing::debug!(
                "{}: repeat {} of {} scored",
                io.stage,
                repeat + 1,
                splits.len()
            );
        }
        write_outputs(params, io, &labels.columns, &splits, &ids, &table)
    }
}

fn write_outputs(
    params: &KnnParams,
    io: &StageIo<'_>,
    label_names: &[String],
    splits: &[(Vec<usize>, Vec<usize>)],
    ids: &[i64],
    table: &[(usize, usize, Scores)],
) -> Result<()> {
    let col_u32 = |f: &dyn Fn(&(usize, usize, Scores)) -> u32| {
        Arc::new(UInt32Array::from_iter_values(table.iter().map(f))) as ArrayRef
    };
    let col_f64 = |f: &dyn Fn(&(usize, usize, Scores)) -> f64| {
        Arc::new(Float64Array::from_iter_values(table.iter().map(f))) as ArrayRef
    };
    write_table(
        &io.output("scores.parquet"),
        vec![
            ("repeat", col_u32(&|r| r.0 as u32 + 1)),
            ("k", col_u32(&|r| r.1 as u32)),
            ("jaccard_mean", col_f64(&|r| r.2.jaccard)),
            ("at_least_one_right", col_f64(&|r| r.2.at_least_one)),
            ("micro_precision", col_f64(&|r| r.2.micro.0)),
            ("micro_recall", col_f64(&|r| r.2.micro.1)),
            ("micro_f1", col_f64(&|r| r.2.micro.2)),
            ("macro_precision", col_f64(&|r| r.2.macro_avg.0)),
            ("macro_recall", col_f64(&|r| r.2.macro_avg.1)),
            ("macro_f1", col_f64(&|r| r.2.macro_avg.2)),
        ],
        io.provenance,
    )?;

    let (mut rep, mut kk, mut genre, mut support, mut predicted, mut precision, mut recall) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (r, k, s) in table {
        for (l, (sup, pred, tp)) in s.per_label.iter().enumerate() {
            rep.push(*r as u32 + 1);
            kk.push(*k as u32);
            genre.push(label_names[l].clone());
            support.push(*sup as i64);
            predicted.push(*pred as i64);
            // Undefined (no prediction, or no true track) is null, not NaN and not 0.
            precision.push((*pred > 0).then(|| *tp as f64 / *pred as f64));
            recall.push((*sup > 0).then(|| *tp as f64 / *sup as f64));
        }
    }
    write_table(
        &io.output("per_genre.parquet"),
        vec![
            ("repeat", Arc::new(UInt32Array::from(rep)) as ArrayRef),
            ("k", Arc::new(UInt32Array::from(kk))),
            ("genre", Arc::new(StringArray::from(genre))),
            ("support", Arc::new(Int64Array::from(support))),
            ("predicted", Arc::new(Int64Array::from(predicted))),
            ("precision", Arc::new(Float64Array::from(precision))),
            ("recall", Arc::new(Float64Array::from(recall))),
        ],
        io.provenance,
    )?;

    let (mut rep, mut kk, mut track, mut jac, mut n_true, mut n_pred) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (r, k, s) in table {
        let test = &splits[*r].1;
        for (i, (j, t, p)) in s.per_track.iter().enumerate() {
            rep.push(*r as u32 + 1);
            kk.push(*k as u32);
            track.push(ids[test[i]]);
            jac.push(*j);
            n_true.push(*t);
            n_pred.push(*p);
        }
    }
    write_table(
        &io.output("per_track.parquet"),
        vec![
            ("repeat", Arc::new(UInt32Array::from(rep)) as ArrayRef),
            ("k", Arc::new(UInt32Array::from(kk))),
            ("track_id", Arc::new(Int64Array::from(track))),
            ("jaccard", Arc::new(Float64Array::from(jac))),
            ("true_labels", Arc::new(UInt32Array::from(n_true))),
            ("predicted_labels", Arc::new(UInt32Array::from(n_pred))),
        ],
        io.provenance,
    )?;

    // Mean and population std over repeats, per k.
    let k_max = params.k_max;
    let per_k = |f: &dyn Fn(&Scores) -> f64| -> (Vec<f64>, Vec<f64>) {
        (1..=k_max)
            .map(|k| {
                let v: Vec<f64> = table.iter().filter(|r| r.1 == k).map(|r| f(&r.2)).collect();
                let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
                let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64;
                (m, var.sqrt())
            })
            .unzip()
    };
    let (jm, js) = per_k(&|s| s.jaccard);
    let (one, _) = per_k(&|s| s.at_least_one);
    let (micro_f1, _) = per_k(&|s| s.micro.2);
    let (macro_f1, _) = per_k(&|s| s.macro_avg.2);
    let best = (0..k_max).fold(0, |b, i| if jm[i] > jm[b] { i } else { b });
    write_metrics(
        &io.output("metrics.json"),
        &json!({
            "k": (1..=k_max).collect::<Vec<_>>(),
            "jaccard_mean": jm,
            "jaccard_std": js,
            "k_best": best + 1,
            "jaccard_best": jm[best],
            "at_least_one_right": one,
            "micro_f1": micro_f1,
            "macro_f1": macro_f1,
            "repeats": splits.len(),
            "test_tracks": splits.first().map_or(0, |s| s.1.len()),
            "metric": params.metric,
            "split": params.split,
        }),
    )?;
    line_chart(
        &io.output("jaccard_vs_k.svg"),
        &format!(
            "{}: mean Jaccard index (± std over {} repeats)",
            io.stage,
            splits.len()
        ),
        &[Series {
            name: "mean Jaccard".into(),
            points: jm
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, *v))
                .collect(),
            band: Some(js.clone()),
        }],
        "k (neighbours)",
        "Jaccard index",
        None,
    )?;
    let best_rows: Vec<&(f64, u32, u32)> = table
        .iter()
        .filter(|r| r.0 == 0 && r.1 == best + 1)
        .flat_map(|r| r.2.per_track.iter())
        .collect();
    let values: Vec<f64> = best_rows.iter().map(|t| t.0).collect();
    histogram(
        &io.output("jaccard_histogram.svg"),
        &format!("{}: per-track Jaccard index, k = {}", io.stage, best + 1),
        &bins(&values, 20),
        "Jaccard index",
        "test tracks",
    )?;
    let max_true = best_rows.iter().map(|t| t.1).max().unwrap_or(1).max(1);
    let points: Vec<(f64, f64)> = (1..=max_true)
        .filter_map(|n| {
            let v: Vec<f64> = best_rows.iter().filter(|t| t.1 == n).map(|t| t.0).collect();
            (!v.is_empty()).then(|| (f64::from(n), v.iter().sum::<f64>() / v.len() as f64))
        })
        .collect();
    line_chart(
        &io.output("jaccard_vs_true_labels.svg"),
        &format!(
            "{}: Jaccard index by number of true labels, k = {}",
            io.stage,
            best + 1
        ),
        &[Series {
            name: "mean Jaccard".into(),
            points,
            band: None,
        }],
        "true labels of the track",
        "mean Jaccard index",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn naive(
        queries: &Array2<f64>,
        train: &Array2<f64>,
        ids: &[i64],
        k: usize,
        metric: Metric,
    ) -> Vec<Vec<usize>> {
        (0..queries.nrows())
            .map(|q| {
                let mut d: Vec<(f32, i64, usize)> = (0..train.nrows())
                    .map(|t| {
                        let a = Rows::gather(queries, &[q]);
                        let b = Rows::gather(train, &[t]);
                        let d = match metric {
                            Metric::L1 => distance::<true>(a.row(0), b.row(0)),
                            Metric::Sqeuclidean => distance::<false>(a.row(0), b.row(0)),
                        };
                        (d, ids[t], t)
                    })
                    .collect();
                d.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                d.into_iter().take(k).map(|e| e.2).collect()
            })
            .collect()
    }

    #[test]
    fn the_blocked_kernel_matches_a_naive_search() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Few distinct values so distance ties happen and tie-breaking is exercised.
        let train = Array2::from_shape_fn((300, 37), |_| f64::from(rng.random_range(0..3u8)));
        let queries = Array2::from_shape_fn((70, 37), |_| f64::from(rng.random_range(0..3u8)));
        let ids: Vec<i64> = (0..300).map(|i| 1000 - i).collect();
        for metric in [Metric::L1, Metric::Sqeuclidean] {
            let all: Vec<usize> = (0..300).collect();
            let fast = nearest(
                &Rows::gather(&queries, &(0..70).collect::<Vec<_>>()),
                &Rows::gather(&train, &all),
                &ids,
                7,
                metric,
            );
            assert_eq!(fast, naive(&queries, &train, &ids, 7, metric));
        }
    }

    #[test]
    fn voting_and_jaccard_follow_the_original() {
        // Two test tracks, three training tracks, three labels.
        let train = vec![
            vec![true, false, false],
            vec![true, true, false],
            vec![false, true, true],
        ];
        let truth = vec![vec![true, true, false], vec![false, false, true]];
        let neighbours = vec![vec![0, 1, 2], vec![2, 0, 1]];
        let k1 = score(&neighbours, 1, &train, &truth);
        // Track 1 predicts {0}: J = 1/2. Track 2 predicts {1, 2}: J = 1/2.
        assert!((k1.jaccard - 0.5).abs() < 1e-12);
        assert_eq!(k1.at_least_one, 1.0);
        let k2 = score(&neighbours, 2, &train, &truth);
        // Track 1: label 0 by 2 of 2, label 1 by 1 of 2 (half counts) -> {0, 1}: J = 1.
        assert!((k2.per_track[0].0 - 1.0).abs() < 1e-12);
        // Track 2: neighbours 2 and 0 -> labels 0, 1, 2 each by 1 of 2 -> {0,1,2}: J = 1/3.
        assert!((k2.per_track[1].0 - 1.0 / 3.0).abs() < 1e-12);
    }
}
