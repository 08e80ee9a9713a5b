//! Dense linear algebra on ndarray matrices, computed by faer (pure Rust, parallel).
//!
//! ndarray is the matrix type every stage passes around; faer does the heavy lifting
//! (GEMM, symmetric eigendecomposition, SVD) on zero-copy views of the same memory.

use faer::MatRef;
use ndarray::{Array1, Array2};
use rayon::prelude::*;

use crate::error::{Error, Result};

fn view(a: &Array2<f64>) -> Result<MatRef<'_, f64>> {
    let slice = a.as_slice().ok_or(Error::Numerical {
        what: "matrix view",
        message: "matrix is not contiguous".into(),
    })?;
    Ok(MatRef::from_row_major_slice(slice, a.nrows(), a.ncols()))
}

fn to_ndarray(m: MatRef<'_, f64>) -> Array2<f64> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)])
}

/// `a^T a`. Only the lower triangle is computed (half the work of a full GEMM), then
/// mirrored.
pub fn gram(a: &Array2<f64>) -> Result<Array2<f64>> {
    Ok(gram_of(view(a)?))
}

/// The parallel products below cut a tall matrix into at most this many row blocks, each of
/// at least [`MIN_BLOCK_ROWS`] rows. The cut depends on the row count alone, never on the
/// thread count, so the order of every sum (and with it every bit of the result) is the same
/// on any machine load or core count. Sixteen equal blocks share out evenly over 1, 2, 4, 8
/// or 16 threads; thirteen blocks of 8192 rows (the full-scale cut before) left one of two
/// cores idle for a block's time at the end of each product.
const ROW_BLOCKS: usize = 16;

/// Fewer rows than this per block would spend more on each block's packing and partial sum
/// than its parallelism gains.
const MIN_BLOCK_ROWS: usize = 2048;

/// The row blocks of an `n`-row matrix: (first row, rows).
fn row_blocks(n: usize) -> Vec<(usize, usize)> {
    let blocks = n.div_ceil(MIN_BLOCK_ROWS).clamp(1, ROW_BLOCKS);
    let rows = n.div_ceil(blocks).max(1);
    (0..n)
        .step_by(rows)
        .map(|first| (first, rows.min(n - first)))
        .collect()
}

/// `a^T a` of a faer view (any layout; column-major is the fastest). Tall matrices are cut
/// into row blocks whose lower-triangular Gram matrices are computed in parallel, each by
/// one thread (faer's own parallel split scales poorly on this shape), and summed in block
/// order.
pub fn gram_of(v: MatRef<'_, f64>) -> Array2<f64> {
    use faer::linalg::matmul::triangular::{matmul, BlockStructure};
    let p = v.ncols();
    let partials: Vec<faer::Mat<f64>> = row_blocks(v.nrows())
        .into_par_iter()
        .map(|(first, rows)| {
            let block = v.subrows(first, rows);
            let mut g = faer::Mat::<f64>::zeros(p, p);
            matmul(
                g.as_mut(),
                BlockStructure::TriangularLower,
                faer::Accum::Replace,
                block.transpose(),
                BlockStructure::Rectangular,
                block,
                BlockStructure::Rectangular,
                1.0,
                faer::Par::Seq,
            );
            g
        })
        .collect();
    let mut g = faer::Mat::<f64>::zeros(p, p);
    for partial in &partials {
        for j in 0..p {
            for i in j..p {
                g[(i, j)] += partial[(i, j)];
            }
        }
    }
    Array2::from_shape_fn((p, p), |(i, j)| if i >= j { g[(i, j)] } else { g[(j, i)] })
}

/// `a b` of faer views, as a column-major faer matrix.
pub fn product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> faer::Mat<f64> {
    let mut c = faer::Mat::<f64>::zeros(a.nrows(), b.ncols());
    product_into(c.as_mut(), a, b);
    c
}

/// `c = a b`: row blocks of `a` in parallel, each by one thread (faer's own parallel split
/// scales poorly on tall products), written straight into their rows of `c`.
pub fn product_into(c: faer::MatMut<'_, f64>, a: MatRef<'_, f64>, b: MatRef<'_, f64>) {
    let mut blocks = Vec::new();
    let mut rest = c;
    for (first, rows) in row_blocks(a.nrows()) {
        let (block, tail) = rest.split_at_row_mut(rows);
        blocks.push((first, rows, block));
        rest = tail;
    }
    blocks.into_par_iter().for_each(|(first, rows, block)| {
        faer::linalg::matmul::matmul(
            block,
            faer::Accum::Replace,
            a.subrows(first, rows),
            b,
            1.0,
            faer::Par::Seq,
        );
    });
}

/// `a b`.
pub fn matmul(a: &Array2<f64>, b: &Array2<f64>) -> Result<Array2<f64>> {
    if a.ncols() != b.nrows() {
        return Err(Error::Numerical {
            what: "matrix product",
            message: format!("shapes {:?} and {:?} do not fit", a.dim(), b.dim()),
        });
    }
    Ok(to_ndarray(product(view(a)?, view(b)?).as_ref()))
}

/// Eigenvalues (descending) and eigenvectors (as columns, same order) of a symmetric matrix.
/// Each eigenvector's sign is fixed so that its entry of largest magnitude is positive (the
/// sklearn `svd_flip` convention), so reruns give identical bytes.
///
/// Runs on one thread: faer's parallel split of this algorithm depends on the thread count,
/// and so would the last bits of the result; at the sizes used here (at most a few hundred
/// columns) it takes a few hundredths of a second.
pub fn symmetric_eigen(a: &Array2<f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
    let n = a.nrows();
    let mut s = faer::diag::Diag::<f64>::zeros(n);
    let mut u = faer::Mat::<f64>::zeros(n, n);
    let scratch = self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::Yes,
        faer::Par::Seq,
        Default::default(),
    );
    self_adjoint_evd(
        view(a)?,
        s.as_mut(),
        Some(u.as_mut()),
        faer::Par::Seq,
        MemStack::new(&mut MemBuffer::new(scratch)),
        Default::default(),
    )
    .map_err(|e| Error::Numerical {
        what: "eigendecomposition",
        message: format!("{e:?}"),
    })?;
    let mut values = Array1::zeros(n);
    let mut vectors = Array2::zeros((n, n));
    for k in 0..n {
        // faer returns ascending order; flip to descending.
        let src = n - 1 - k;
        values[k] = s[src];
        let mut column: Vec<f64> = (0..n).map(|i| u[(i, src)]).collect();
        fix_sign(&mut column);
        for (i, v) in column.into_iter().enumerate() {
            vectors[[i, k]] = v;
        }
    }
    Ok((values, vectors))
}

/// Singular values (descending) and right singular vectors (as rows of `vt`) of `a`,
/// signs fixed as in [`symmetric_eigen`].
pub fn thin_svd(a: &Array2<f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    let svd = view(a)?.thin_svd().map_err(|e| Error::Numerical {
        what: "SVD",
        message: format!("{e:?}"),
    })?;
    let s = svd.S();
    let v = svd.V();
    let k = s.dim();
    let values = Array1::from_shape_fn(k, |i| s[i]);
    let mut vt = Array2::zeros((k, v.nrows()));
    for c in 0..k {
        let mut row: Vec<f64> = (0..v.nrows()).map(|i| v[(i, c)]).collect();
        fix_sign(&mut row);
        for (i, x) in row.into_iter().enumerate() {
            vt[[c, i]] = x;
        }
    }
    Ok((values, vt))
}

/// Flips `v` so that its entry of largest magnitude (first one on ties) is positive.
pub fn fix_sign(v: &mut [f64]) {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if x.abs() > v[best].abs() {
            best = i;
        }
    }
    if v.get(best).is_some_and(|x| *x < 0.0) {
        v.iter_mut().for_each(|x| *x = -*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_diagonal_matrix_is_sorted_descending() {
        let a = Array2::from_shape_vec((3, 3), vec![1.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 2.0])
            .unwrap_or_default();
        let (values, vectors) = symmetric_eigen(&a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values.to_vec(), vec![3.0, 2.0, 1.0]);
        assert!((vectors[[1, 0]] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gram_and_matmul_agree() {
        let a = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f64 * 0.5 - 2.0);
        let g = gram(&a).unwrap_or_else(|e| panic!("{e}"));
        let at = a.t().to_owned().as_standard_layout().to_owned();
        let m = matmul(&at, &a).unwrap_or_else(|e| panic!("{e}"));
        assert!((&g - &m).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn blocked_products_match_a_plain_sum_across_several_row_blocks() {
        let n = 2 * MIN_BLOCK_ROWS + 123;
        let block = row_blocks(n)[0].1;
        assert!(block < n, "one block");
        let a = Array2::from_shape_fn((n, 4), |(i, j)| ((i * 13 + j * 7) % 29) as f64 - 14.0);
        let b = Array2::from_shape_fn((4, 3), |(i, j)| (i + 2 * j) as f64 * 0.25 - 1.0);
        let g = gram(&a).unwrap_or_else(|e| panic!("{e}"));
        let c = matmul(&a, &b).unwrap_or_else(|e| panic!("{e}"));
        for p in 0..4 {
            for q in 0..4 {
                let expected: f64 = (0..n).map(|r| a[[r, p]] * a[[r, q]]).sum();
                assert_eq!(g[[p, q]], expected, "gram ({p}, {q})");
            }
        }
        for r in [0, block - 1, block, n - 1] {
            for q in 0..3 {
                let expected: f64 = (0..4).map(|p| a[[r, p]] * b[[p, q]]).sum();
                assert!((c[[r, q]] - expected).abs() < 1e-12, "product ({r}, {q})");
            }
        }
    }

    #[test]
    fn row_blocks_cover_the_rows_evenly_whatever_the_count() {
        for n in [0, 1, 2047, 2048, 2049, 8000, 106_574, 426_296] {
            let blocks = row_blocks(n);
            assert!(
                blocks.len() <= ROW_BLOCKS,
                "{n} rows: {} blocks",
                blocks.len()
            );
            let mut next = 0;
            for (first, rows) in &blocks {
                assert_eq!(*first, next, "{n} rows: a gap or an overlap");
                next += rows;
            }
            assert_eq!(next, n);
            let sizes: Vec<usize> = blocks.iter().map(|b| b.1).collect();
            if let (Some(largest), Some(smallest)) = (sizes.iter().max(), sizes.iter().min()) {
                // Equal blocks but the last, which is short by less than one row per block.
                assert!(largest - smallest < ROW_BLOCKS, "{n} rows: {sizes:?}");
            }
        }
        assert_eq!(row_blocks(106_574).len(), 16);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let a = Array2::from_shape_fn((2 * MIN_BLOCK_ROWS + 77, 9), |(i, j)| {
            ((i * 31 + j * 17) % 101) as f64 / 7.0 - 7.0
        });
        let b = Array2::from_shape_fn((9, 4), |(i, j)| (i * 4 + j) as f64 / 9.0 - 1.5);
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
                .install(|| {
                    let g = gram(&a).unwrap_or_else(|e| panic!("{e}"));
                    let eigen = symmetric_eigen(&g).unwrap_or_else(|e| panic!("{e}"));
                    (g, eigen, matmul(&a, &b).unwrap_or_else(|e| panic!("{e}")))
                })
        };
        assert_eq!(on(1), on(3));
    }
}
