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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray, UInt32Array};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::io::chart::{bins, histogram, line_chart, Series};
pub use crate::io::fma::splits::Split;
use crate::io::fma::splits::{fma_rows, read_splits};
use crate::io::metrics::write_metrics;
use crate::io::parquet::{column_index, read_batches, read_matrix, write_table, Matrix};
use crate::kind::{
    check_range, InputSpec, OutputSpec, ParamError, Params, Stage, StageIo, SHARD_FILE,
};
use crate::math::knn_search::{nearest, Metric, Rows};
use crate::math::knn_vote::{score, Scores};

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
    /// Pieces the test queries are split into; a cluster executor runs each as one task of a
    /// job array. Never changes the result (it is not part of the key).
    pub shards: usize,
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
            shards: 1,
        }
    }
}

impl Params for KnnParams {
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_range("k_max", self.k_max, 1, 1000)?;
        check_range("repeats", self.repeats, 1, 1000)?;
        check_range("shards", self.shards, 1, 10_000)?;
        check_range("test_fraction", self.test_fraction, 1e-6, 0.99)
    }
}

/// The k-NN stage.
pub struct Knn;

impl Stage for Knn {
    type Params = KnnParams;
    const KIND: &'static str = "knn";
    const MODULE: &'static str = module_path!();

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
        let prepared = Prepared::read(params, io)?;
        // The pieces in turn: each query's neighbours depend on that query alone, so this is
        // the unsharded search whatever `shards` is.
        let mut neighbours: Vec<Vec<Vec<usize>>> = vec![Vec::new(); prepared.splits.len()];
        for shard in 0..params.shards {
            for (repeat, found) in prepared.search(params, io, shard)?.into_iter().enumerate() {
                neighbours[repeat].extend(found);
            }
        }
        prepared.score_and_write(params, io, &neighbours)
    }

    const SCHEDULING_PARAMS: &'static [&'static str] = &["shards"];

    fn shards(params: &Self::Params) -> usize {
        params.shards
    }

    fn run_shard(params: &Self::Params, io: &StageIo<'_>, shard: usize) -> Result<()> {
        if shard >= params.shards {
            return Err(Error::BadParam {
                param: "shards",
                message: format!("shard {shard} asked of {}", params.shards),
            });
        }
        let prepared = Prepared::read(params, io)?;
        let found = prepared.search(params, io, shard)?;
        write_shard(&io.output(SHARD_FILE), &found, io.provenance)
    }

    fn merge_shards(params: &Self::Params, io: &StageIo<'_>, shards: &[PathBuf]) -> Result<()> {
        let prepared = Prepared::read(params, io)?;
        if shards.len() != params.shards {
            return Err(Error::TooFew {
                what: "shard results to merge".into(),
                needed: params.shards,
                got: shards.len(),
            });
        }
        let mut neighbours: Vec<Vec<Vec<usize>>> = vec![Vec::new(); prepared.splits.len()];
        for (shard, path) in shards.iter().enumerate() {
            let expected: Vec<usize> = prepared
                .splits
                .iter()
                .map(|(_, test)| shard_range(test.len(), shard, params.shards).len())
                .collect();
            let found = read_shard(path, &expected, params.k_max)?;
            for (repeat, rows) in found.into_iter().enumerate() {
                neighbours[repeat].extend(rows);
            }
        }
        prepared.score_and_write(params, io, &neighbours)
    }
}

/// The queries of piece `shard` of `count`: contiguous, sizes differing by at most one.
fn shard_range(queries: usize, shard: usize, count: usize) -> std::ops::Range<usize> {
    let count = count.max(1);
    let (base, extra) = (queries / count, queries % count);
    let start = shard * base + shard.min(extra);
    start..start + base + usize::from(shard < extra)
}

/// What every piece and the final scoring share: the tracks, their labels and the splits.
struct Prepared {
    features: Matrix,
    label_names: Vec<String>,
    rows: Vec<(usize, usize)>,
    truth_all: Vec<Vec<bool>>,
    ids: Vec<i64>,
    splits: Vec<(Vec<usize>, Vec<usize>)>,
}

impl Prepared {
    fn read(params: &KnnParams, io: &StageIo<'_>) -> Result<Self> {
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
                let sets = fma_rows(&ids, &split_of);
                vec![(sets.train, sets.test)]
            }
        };
        for (train, test) in &splits {
            if train.len() < params.k_max || test.is_empty() {
                return Err(Error::TooFew {
                    what: "training tracks for k_max neighbours".into(),
                    needed: params.k_max.max(1),
                    got: train.len(),
                });
            }
        }
        Ok(Self {
            features,
            label_names: labels.columns,
            rows,
            truth_all,
            ids,
            splits,
        })
    }

    /// The `k_max` nearest training tracks (positions in the repeat's training list) of the
    /// queries of piece `shard`, per repeat.
    fn search(
        &self,
        params: &KnnParams,
        io: &StageIo<'_>,
        shard: usize,
    ) -> Result<Vec<Vec<Vec<usize>>>> {
        let mut found = Vec::with_capacity(self.splits.len());
        for (train, test) in &self.splits {
            io.check_cancelled()?;
            let queries = &test[shard_range(test.len(), shard, params.shards)];
            let feature_rows =
                |set: &[usize]| set.iter().map(|&i| self.rows[i].0).collect::<Vec<_>>();
            let train_rows = Rows::gather(&self.features.values, &feature_rows(train));
            let query_rows = Rows::gather(&self.features.values, &feature_rows(queries));
            let train_ids: Vec<i64> = train.iter().map(|&i| self.ids[i]).collect();
            found.push(nearest(
                &query_rows,
                &train_rows,
                &train_ids,
                params.k_max,
                params.metric,
            ));
        }
        Ok(found)
    }

    fn score_and_write(
        &self,
        params: &KnnParams,
        io: &StageIo<'_>,
        neighbours: &[Vec<Vec<usize>>],
    ) -> Result<()> {
        let mut table: Vec<(usize, usize, Scores)> = Vec::new();
        for (repeat, ((train, test), found)) in self.splits.iter().zip(neighbours).enumerate() {
            let train_labels: Vec<Vec<bool>> =
                train.iter().map(|&i| self.truth_all[i].clone()).collect();
            let truth: Vec<Vec<bool>> = test.iter().map(|&i| self.truth_all[i].clone()).collect();
            for k in 1..=params.k_max {
                table.push((repeat, k, score(found, k, &train_labels, &truth)));
            }
            tracing::debug!(
                "{}: repeat {} of {} scored",
                io.stage,
                repeat + 1,
                self.splits.len()
            );
        }
        write_outputs(
            params,
            io,
            &self.label_names,
            &self.splits,
            &self.ids,
            &table,
        )
    }
}

/// One row per (repeat, query, rank): the neighbour's position in the repeat's training list.
fn write_shard(
    path: &Path,
    found: &[Vec<Vec<usize>>],
    provenance: &[(String, String)],
) -> Result<()> {
    let (mut repeat, mut query, mut rank, mut neighbour) = (vec![], vec![], vec![], vec![]);
    for (r, queries) in found.iter().enumerate() {
        for (q, list) in queries.iter().enumerate() {
            for (k, &n) in list.iter().enumerate() {
                repeat.push(r as u32);
                query.push(q as u32);
                rank.push(k as u32);
                neighbour.push(n as u32);
            }
        }
    }
    write_table(
        path,
        vec![
            ("repeat", Arc::new(UInt32Array::from(repeat)) as ArrayRef),
            ("query", Arc::new(UInt32Array::from(query))),
            ("rank", Arc::new(UInt32Array::from(rank))),
            ("neighbour", Arc::new(UInt32Array::from(neighbour))),
        ],
        provenance,
    )
}

/// Reads a shard file back, checking that it holds `k` neighbours, in rank order, for exactly
/// `expected[r]` queries of every repeat `r`.
fn read_shard(path: &Path, expected: &[usize], k: usize) -> Result<Vec<Vec<Vec<usize>>>> {
    let bad = |message: String| Error::BadFile {
        path: path.to_owned(),
        message,
    };
    let (schema, batches) = read_batches(path)?;
    let mut columns: Vec<Vec<u32>> = vec![Vec::new(); 4];
    for (slot, name) in ["repeat", "query", "rank", "neighbour"].iter().enumerate() {
        let index = column_index(&schema, name, path)?;
        for batch in &batches {
            let values = batch
                .column(index)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| bad(format!("column `{name}` is not uint32")))?;
            if values.null_count() > 0 {
                return Err(bad(format!("column `{name}` has nulls")));
            }
            columns[slot].extend(values.values().iter().copied());
        }
    }
    let total: usize = expected.iter().map(|q| q * k).sum();
    if columns[0].len() != total {
        return Err(bad(format!(
            "holds {} neighbours, expected {total}",
            columns[0].len()
        )));
    }
    let mut found: Vec<Vec<Vec<usize>>> = expected.iter().map(|&q| vec![Vec::new(); q]).collect();
    let [repeats, queries, ranks, neighbours] = &columns[..] else {
        return Err(bad("expected four columns".into()));
    };
    let rows = repeats.iter().zip(queries).zip(ranks).zip(neighbours);
    for (i, (((&r, &q), &rank), &n)) in rows.enumerate() {
        let (r, q, rank, n) = (r as usize, q as usize, rank as usize, n as usize);
        let list = found
            .get_mut(r)
            .and_then(|queries| queries.get_mut(q))
            .ok_or_else(|| bad(format!("row {i}: repeat {r}, query {q} out of range")))?;
        if list.len() != rank {
            return Err(bad(format!("row {i}: rank {rank} out of order")));
        }
        list.push(n);
    }
    Ok(found)
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
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn ok<T>(r: Result<T>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn write_inputs(dir: &Path, n: usize) -> Vec<PathBuf> {
        let ids: Vec<i64> = (0..n as i64).map(|i| 1000 + i * 3).collect();
        let id_column = || {
            (
                "track_id",
                Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
            )
        };
        // Few distinct values: distance ties happen, so tie-breaking must survive sharding.
        let feature = |j: usize| {
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(move |i| ((i * (j + 3) + j) % 4) as f64),
            )) as ArrayRef
        };
        let label = |g: usize| {
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(move |i| f64::from(u8::from((i + g).is_multiple_of(3)))),
            )) as ArrayRef
        };
        let paths: Vec<PathBuf> = ["features", "labels", "tracks"]
            .iter()
            .map(|name| dir.join(format!("{name}.parquet")))
            .collect();
        ok(write_table(
            &paths[0],
            vec![
                id_column(),
                ("a", feature(0)),
                ("b", feature(1)),
                ("c", feature(2)),
            ],
            &[],
        ));
        ok(write_table(
            &paths[1],
            vec![id_column(), ("Rock", label(0)), ("Pop", label(1))],
            &[],
        ));
        ok(write_table(&paths[2], vec![id_column()], &[]));
        paths
    }

    fn with_io<T>(inputs: &[PathBuf], out: &Path, body: impl FnOnce(&StageIo<'_>) -> T) -> T {
        std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = ["features", "labels", "tracks"].map(String::from).to_vec();
        let cancel = AtomicBool::new(false);
        let io = StageIo {
            stage: "knn",
            inputs,
            input_names: &names,
            out_dir: out,
            provenance: &[],
            project_dir: out,
            cancel: &cancel,
            progress: &|_, _| {},
        };
        body(&io)
    }

    fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
        Knn::outputs(&KnnParams::default())
            .iter()
            .map(|o| {
                let bytes = std::fs::read(dir.join(&o.file)).unwrap_or_else(|e| panic!("{e}"));
                (o.file.clone(), bytes)
            })
            .collect()
    }

    #[test]
    fn shard_ranges_cover_every_query_once_in_order() {
        for queries in [0, 1, 7, 10, 101] {
            for count in [1, 2, 3, 7, 12] {
                let ranges: Vec<_> = (0..count).map(|s| shard_range(queries, s, count)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[count - 1].end, queries);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                    assert!(pair[0].len().abs_diff(pair[1].len()) <= 1);
                }
            }
        }
    }

    #[test]
    fn sharded_pieces_merged_give_the_bytes_of_one_unsharded_run() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let inputs = write_inputs(dir.path(), 400);
        let single = KnnParams {
            repeats: 3,
            test_fraction: 0.1,
            ..KnnParams::default()
        };
        let whole = dir.path().join("whole");
        ok(with_io(&inputs, &whole, |io| Knn::run(&single, io)));

        let sharded = KnnParams {
            shards: 3,
            ..single.clone()
        };
        let in_turn = dir.path().join("in_turn");
        ok(with_io(&inputs, &in_turn, |io| Knn::run(&sharded, io)));
        assert_eq!(outputs(&in_turn), outputs(&whole));

        let pieces: Vec<PathBuf> = (0..3)
            .map(|s| {
                let out = dir.path().join(format!("shard{s}"));
                ok(with_io(&inputs, &out, |io| Knn::run_shard(&sharded, io, s)));
                out.join(SHARD_FILE)
            })
            .collect();
        let merged = dir.path().join("merged");
        ok(with_io(&inputs, &merged, |io| {
            Knn::merge_shards(&sharded, io, &pieces)
        }));
        assert_eq!(outputs(&merged), outputs(&whole));

        // A piece given twice is refused, not scored.
        let wrong = vec![pieces[0].clone(), pieces[0].clone(), pieces[2].clone()];
        let bad = dir.path().join("bad");
        let err = with_io(&inputs, &bad, |io| Knn::merge_shards(&sharded, io, &wrong));
        assert!(err.is_err());
    }
}
