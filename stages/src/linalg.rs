//! Dense linear algebra on ndarray matrices, computed by faer (pure Rust, parallel).
//!
//! ndarray is the matrix type every stage passes around; faer does the heavy lifting
//! (GEMM, symmetric eigendecomposition, SVD) on zero-copy views of the same memory.

use faer::{MatRef, Side};
use ndarray::{Array1, Array2};

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
    use faer::linalg::matmul::triangular::{matmul, BlockStructure};
    let v = view(a)?;
    let n = a.ncols();
    let mut g = faer::Mat::<f64>::zeros(n, n);
    matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        faer::Accum::Replace,
        v.transpose(),
        BlockStructure::Rectangular,
        v,
        BlockStructure::Rectangular,
        1.0,
        faer::get_global_parallelism(),
    );
    Ok(Array2::from_shape_fn((n, n), |(i, j)| {
        if i >= j {
            g[(i, j)]
        } else {
            g[(j, i)]
        }
    }))
}

/// `a b`.
pub fn matmul(a: &Array2<f64>, b: &Array2<f64>) -> Result<Array2<f64>> {
    if a.ncols() != b.nrows() {
        return Err(Error::Numerical {
            what: "matrix product",
            message: format!("shapes {:?} and {:?} do not fit", a.dim(), b.dim()),
        });
    }
    let c = view(a)? * view(b)?;
    Ok(to_ndarray(c.as_ref()))
}

/// Eigenvalues (descending) and eigenvectors (as columns, same order) of a symmetric matrix.
/// Each eigenvector's sign is fixed so that its entry of largest magnitude is positive (the
/// sklearn `svd_flip` convention), so reruns give identical bytes.
pub fn symmetric_eigen(a: &Array2<f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    let evd = view(a)?
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Numerical {
            what: "eigendecomposition",
            message: format!("{e:?}"),
        })?;
    let n = a.nrows();
    let s = evd.S();
    let u = evd.U();
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
}
