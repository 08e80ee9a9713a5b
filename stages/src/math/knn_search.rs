//! Exact k-nearest-neighbour search: a blocked kernel that holds a block of queries in cache
//! while every training row streams past it once. The distance loop runs over fixed 16-lane
//! chunks so the compiler vectorises it (no target-cpu flags), with AVX-512 and AVX2 variants
//! chosen at run time. Ties are broken by track id, so results do not depend on the number of
//! threads.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The distance between feature vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Manhattan distance (the original).
    L1,
    /// Squared Euclidean distance.
    Sqeuclidean,
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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
}
