//! Ridge regression in closed form, for a grid of penalties at the cost of one fit.
//!
//! Columns are standardised on the training rows (a constant column gets weight 0), the
//! target is centred, and the Gram matrix `Z^T Z = V diag(λ) V^T` is decomposed once; then
//! `w(α) = V diag(1 / (λ + α)) V^T Z^T y` for every α. The Gram matrix is summed in fixed row
//! blocks (`linalg::gram_of`) and decomposed on one thread, so the weights do not depend on
//! the thread count.

use faer::MatRef;
use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::math::linalg::{gram_of, symmetric_eigen};

/// A fitted ridge model over raw (unstandardised) columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Ridge {
    /// The penalty, on the standardised columns.
    pub alpha: f64,
    /// Training means of the columns.
    pub mean: Vec<f64>,
    /// Training standard deviations (1 where a column is constant).
    pub scale: Vec<f64>,
    /// Weights on the standardised columns.
    pub coef: Vec<f64>,
    /// The training mean of the target.
    pub intercept: f64,
}

impl Ridge {
    /// Predictions for the rows of `x`.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<f64> {
        x.rows()
            .into_iter()
            .map(|row| {
                // The same order of sums as `predict_columns`, so both give the same bits.
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.scale)
                    .zip(&self.coef)
                    .fold(self.intercept, |acc, (((v, m), s), w)| {
                        acc + (v - m) / s * w
                    })
            })
            .collect()
    }
}

impl Ridge {
    /// Predictions for rows given as columns (`columns[j][i]` is feature j of row i).
    pub fn predict_columns(&self, columns: &[&[f64]]) -> Vec<f64> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut out = vec![self.intercept; rows];
        for (((column, m), s), w) in columns
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.coef)
        {
            for (o, v) in out.iter_mut().zip(column.iter()) {
                *o += (v - m) / s * w;
            }
        }
        out
    }
}

/// What every penalty's fit shares: the standardisation and the decomposed Gram matrix.
pub struct RidgePath {
    mean: Vec<f64>,
    scale: Vec<f64>,
    intercept: f64,
    eigenvalues: Array1<f64>,
    eigenvectors: Array2<f64>,
    /// `V^T Z^T y`.
    projected: Vec<f64>,
}

impl RidgePath {
    /// Prepares fits of `y` on the training rows `x`.
    pub fn new(x: ArrayView2<'_, f64>, y: &[f64]) -> Result<Self> {
        let (n, d) = x.dim();
        if n != y.len() || n < 2 {
            return Err(Error::Numerical {
                what: "ridge regression",
                message: format!(
                    "{n} rows of features for {} targets (need at least 2)",
                    y.len()
                ),
            });
        }
        let mut mean = vec![0.0; d];
        for row in x.rows() {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut scale = vec![0.0; d];
        for row in x.rows() {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        // A constant column standardises to zeros, which the penalty keeps at weight 0.
        for s in &mut scale {
            *s = (*s / n as f64).sqrt();
            if !s.is_finite() || *s < 1e-12 {
                *s = 1.0;
            }
        }
        let constant: Vec<bool> = (0..d)
            .map(|j| x.column(j).iter().all(|v| *v == x[(0, j)]))
            .collect();
        let z = Array2::from_shape_fn((n, d), |(i, j)| {
            if constant[j] {
                0.0
            } else {
                (x[(i, j)] - mean[j]) / scale[j]
            }
        });
        if z.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numerical {
                what: "ridge regression",
                message: "a feature is not finite after standardising".into(),
            });
        }
        let intercept = y.iter().sum::<f64>() / n as f64;
        let slice = z.as_slice().ok_or(Error::Numerical {
            what: "ridge regression",
            message: "design matrix is not contiguous".into(),
        })?;
        let gram = gram_of(MatRef::from_row_major_slice(slice, n, d));
        let (eigenvalues, eigenvectors) = symmetric_eigen(&gram)?;
        let mut zty = vec![0.0; d];
        for (row, t) in z.rows().into_iter().zip(y) {
            let centred = t - intercept;
            for (acc, v) in zty.iter_mut().zip(row) {
                *acc += v * centred;
            }
        }
        let projected = (0..d)
            .map(|k| (0..d).map(|j| eigenvectors[(j, k)] * zty[j]).sum())
            .collect();
        Ok(Self {
            mean,
            scale,
            intercept,
            eigenvalues,
            eigenvectors,
            projected,
        })
    }

    /// The fit with penalty `alpha` (> 0).
    pub fn at(&self, alpha: f64) -> Ridge {
        let d = self.mean.len();
        let shrunk: Vec<f64> = self
            .projected
            .iter()
            .zip(&self.eigenvalues)
            .map(|(p, l)| p / (l.max(0.0) + alpha))
            .collect();
        let coef = (0..d)
            .map(|j| (0..d).map(|k| self.eigenvectors[(j, k)] * shrunk[k]).sum())
            .collect();
        Ridge {
            alpha,
            mean: self.mean.clone(),
            scale: self.scale.clone(),
            coef,
            intercept: self.intercept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn a_planted_linear_signal_is_recovered() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, d) = (400, 6);
        let x = Array2::from_shape_fn((n, d), |(_, j)| rng.random::<f64>() * (j + 1) as f64 + 3.0);
        // y = 2 x0 - 0.5 x3 + 7, plus a constant column that must get weight 0.
        let mut x = x;
        x.column_mut(5).fill(4.0);
        let y: Vec<f64> = x
            .rows()
            .into_iter()
            .map(|r| 2.0 * r[0] - 0.5 * r[3] + 7.0)
            .collect();
        let fit = RidgePath::new(x.view(), &y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(1e-9);
        let predicted = fit.predict(x.view());
        for (p, t) in predicted.iter().zip(&y) {
            assert!((p - t).abs() < 1e-6, "{p} vs {t}");
        }
        let columns: Vec<Vec<f64>> = (0..d).map(|j| x.column(j).to_vec()).collect();
        let views: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
        assert_eq!(fit.predict_columns(&views), predicted);
        assert_eq!(fit.coef[5], 0.0);
        // A large penalty shrinks towards the mean.
        let flat = RidgePath::new(x.view(), &y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(1e12);
        assert!(flat.coef.iter().all(|w| w.abs() < 1e-6));
    }

    #[test]
    fn matches_the_normal_equations() {
        // Two standardised columns: w = (Z^T Z + α I)^-1 Z^T y, solved by hand.
        let x = ndarray::array![[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]];
        let y = [1.0, 3.0, 2.0, 5.0];
        let fit = RidgePath::new(x.view(), &y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(2.0);
        // Z columns: (x0 - 2.5) / sqrt(1.25), (x1 - 0.5) / 0.5.
        let s0 = 1.25f64.sqrt();
        let z: Vec<[f64; 2]> = x
            .rows()
            .into_iter()
            .map(|r| [(r[0] - 2.5) / s0, (r[1] - 0.5) / 0.5])
            .collect();
        let (mut a, mut b) = ([[0.0; 2]; 2], [0.0; 2]);
        for (zi, yi) in z.iter().zip(&y) {
            for p in 0..2 {
                b[p] += zi[p] * (yi - 2.75);
                for q in 0..2 {
                    a[p][q] += zi[p] * zi[q];
                }
            }
        }
        a[0][0] += 2.0;
        a[1][1] += 2.0;
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        let w0 = (a[1][1] * b[0] - a[0][1] * b[1]) / det;
        let w1 = (a[0][0] * b[1] - a[1][0] * b[0]) / det;
        assert!((fit.coef[0] - w0).abs() < 1e-12 && (fit.coef[1] - w1).abs() < 1e-12);
    }
}
