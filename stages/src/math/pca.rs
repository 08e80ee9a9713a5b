//! Exact principal component analysis: covariance (a GEMM over the centred data, divided by
//! n - 1 as sklearn does) and its symmetric eigendecomposition, both by faer. Sign convention:
//! each component's largest-magnitude loading is positive (sklearn's `svd_flip`), so reruns
//! are byte-identical.

use ndarray::{Array1, Array2, Axis};

use crate::error::{Error, Result};
use crate::math::linalg::{gram_of, matmul, product_into, symmetric_eigen};

/// The fitted decomposition.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Column means of the input.
    pub mean: Array1<f64>,
    /// Eigenvalues of the covariance, descending (the explained variances).
    pub explained_variance: Array1<f64>,
    /// Loadings, one component per column (p x p).
    pub components: Array2<f64>,
}

impl Pca {
    /// Fits on `x` (rows are samples).
    pub fn fit(x: &Array2<f64>) -> Result<Self> {
        let mean = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(x.ncols()));
        let centred = x - &mean;
        Self::fit_centred(&centred, mean)
    }

    /// Fits on data already centred by `mean` (saves a copy of a large matrix).
    pub fn fit_centred(centred: &Array2<f64>, mean: Array1<f64>) -> Result<Self> {
        Self::from_gram(crate::math::linalg::gram(centred)?, centred.nrows(), mean)
    }

    /// Fits from the Gram matrix `X^T X` of `n` centred rows.
    pub fn from_gram(mut cov: Array2<f64>, n: usize, mean: Array1<f64>) -> Result<Self> {
        if n < 2 {
            return Err(Error::TooFew {
                what: "rows for PCA".into(),
                needed: 2,
                got: n,
            });
        }
        cov /= (n - 1) as f64;
        let (mut values, components) = symmetric_eigen(&cov)?;
        values.mapv_inplace(|v| v.max(0.0));
        Ok(Self {
            mean,
            explained_variance: values,
            components,
        })
    }

    /// Fits on `n` centred rows stored column-major (`values.len() / n` columns).
    pub fn fit_column_major(values: &[f64], n: usize, mean: Vec<f64>) -> Result<Self> {
        let p = values.len() / n.max(1);
        let centred = faer::MatRef::from_column_major_slice(&values[..n * p], n, p);
        Self::from_gram(gram_of(centred), n, Array1::from(mean))
    }

    /// Scores of `n` centred rows stored column-major on the first `k` components (at most
    /// all of them), also column-major (n x k).
    pub fn scores_column_major(&self, values: &[f64], n: usize, k: usize) -> Vec<f64> {
        let p = self.components.nrows();
        let k = k.min(self.components.ncols());
        let centred = faer::MatRef::from_column_major_slice(&values[..n * p], n, p);
        let basis = faer::Mat::from_fn(p, k, |i, j| self.components[[i, j]]);
        let mut scores = vec![0.0f64; n * k];
        product_into(
            faer::MatMut::from_column_major_slice_mut(&mut scores, n, k),
            centred,
            basis.as_ref(),
        );
        scores
    }

    /// Explained variance ratio of every component.
    pub fn ratios(&self) -> Vec<f64> {
        let total: f64 = self.explained_variance.sum();
        self.explained_variance
            .iter()
            .map(|v| v / total.max(f64::MIN_POSITIVE))
            .collect()
    }

    /// The fewest components whose cumulative ratio reaches `share`.
    pub fn components_for(&self, share: f64) -> usize {
        let mut cum = 0.0;
        for (i, r) in self.ratios().iter().enumerate() {
            cum += r;
            if cum >= share - 1e-12 {
                return i + 1;
            }
        }
        self.explained_variance.len()
    }

    /// Projects `x` on the first `k` components.
    pub fn transform(&self, x: &Array2<f64>, k: usize) -> Result<Array2<f64>> {
        let centred = (x - &self.mean).as_standard_layout().to_owned();
        self.project_centred(&centred, k)
    }

    /// Projects data already centred by the fitted mean on the first `k` components.
    pub fn project_centred(&self, centred: &Array2<f64>, k: usize) -> Result<Array2<f64>> {
        let basis = self
            .components
            .slice(ndarray::s![.., ..k])
            .as_standard_layout()
            .to_owned();
        matmul(centred, &basis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, p: usize, seed: u64) -> Array2<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // Correlated columns so the spectrum is not flat.
        let base = Array2::from_shape_fn((n, p), |_| rng.random::<f64>() - 0.5);
        let mix = Array2::from_shape_fn((p, p), |(i, j)| {
            if i <= j {
                1.0 / (1.0 + (j - i) as f64)
            } else {
                0.0
            }
        });
        matmul(&base, &mix).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn matches_an_svd_of_the_centred_data() {
        let x = random(300, 12, 1);
        let pca = Pca::fit(&x).unwrap_or_else(|e| panic!("{e}"));
        let mean = x.mean_axis(Axis(0)).unwrap_or_default();
        let centred = (&x - &mean).as_standard_layout().to_owned();
        let (s, vt) = crate::math::linalg::thin_svd(&centred).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..12 {
            let from_svd = s[i] * s[i] / 299.0;
            let rel = (pca.explained_variance[i] - from_svd).abs() / from_svd;
            assert!(
                rel < 1e-6,
                "eigenvalue {i}: {} vs {from_svd}",
                pca.explained_variance[i]
            );
            for j in 0..12 {
                let a = pca.components[[j, i]];
                let b = vt[[i, j]];
                assert!(
                    (a - b).abs() < 1e-6 * (1.0 + b.abs()),
                    "loading {j} of component {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn threshold_counts_and_projection_shapes() {
        let x = random(100, 6, 2);
        let pca = Pca::fit(&x).unwrap_or_else(|e| panic!("{e}"));
        let ratios = pca.ratios();
        assert!((ratios.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(ratios.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(pca.components_for(1.0), 6);
        assert_eq!(pca.components_for(ratios[0] * 0.5), 1);
        let scores = pca.transform(&x, 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scores.dim(), (100, 3));
        // Scores of the first component have the first eigenvalue as variance.
        let var = scores.column(0).mapv(|v| v * v).sum() / 99.0;
        assert!((var - pca.explained_variance[0]).abs() < 1e-9 * var.max(1.0));
    }

    #[test]
    fn the_column_major_path_matches_the_matrix_path() {
        let x = random(200, 7, 3);
        let reference = Pca::fit(&x).unwrap_or_else(|e| panic!("{e}"));
        let mean = x.mean_axis(Axis(0)).unwrap_or_default();
        let columns: Vec<f64> = (0..7)
            .flat_map(|j| x.column(j).iter().map(|v| v - mean[j]).collect::<Vec<_>>())
            .collect();
        let pca =
            Pca::fit_column_major(&columns, 200, mean.to_vec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pca.explained_variance, reference.explained_variance);
        assert_eq!(pca.components, reference.components);
        let scores = pca.scores_column_major(&columns, 200, 3);
        let expected = reference.transform(&x, 3).unwrap_or_else(|e| panic!("{e}"));
        for c in 0..3 {
            for r in 0..200 {
                assert!((scores[c * 200 + r] - expected[[r, c]]).abs() < 1e-12);
            }
        }
    }
}
