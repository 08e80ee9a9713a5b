//! Ridge regression in closed form, for a grid of penalties at the cost of one fit.
//!
//! Columns are standardised on the training rows (a constant column gets weight 0), the
//! target is centred, and the Gram matrix `Z^T Z = V diag(λ) V^T` is decomposed once; then
//! `w(α) = V diag(1 / (λ + α)) V^T Z^T y` for every α. The Gram matrix is summed in fixed row
//! blocks (`linalg::gram_of`) and decomposed on one thread, so the weights do not depend on
//! the thread count.

use faer::MatRef;
use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2};

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

    /// Predictions for the listed rows of `columns`, with the same sums as `predict_columns`.
    pub fn predict_rows(&self, columns: &[&[f64]], rows: &[usize]) -> Vec<f64> {
        let mut out = vec![self.intercept; rows.len()];
        for (((column, m), s), w) in columns
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.coef)
        {
            for (o, &r) in out.iter_mut().zip(rows) {
                *o += (column[r] - m) / s * w;
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
    /// Prepares fits of `y` (one value per listed row) on the `rows` of `columns`
    /// (`columns[j][i]` is feature j of row i; every column as long as the longest row).
    pub fn new(columns: &[&[f64]], rows: &[usize], y: &[f64]) -> Result<Self> {
        let (n, d) = (rows.len(), columns.len());
        let shortest = columns.iter().map(|c| c.len()).min().unwrap_or(0);
        let rows_fit = rows.iter().all(|&r| r < shortest);
        if n != y.len() || n < 2 || !rows_fit {
            return Err(Error::Numerical {
                what: "ridge regression",
                message: format!(
                    "{n} rows of features for {} targets (need at least 2, each within every column)",
                    y.len()
                ),
            });
        }
        let mean: Vec<f64> = columns
            .iter()
            .map(|column| rows.iter().fold(0.0, |acc, &r| acc + column[r]) / n as f64)
            .collect();
        // A constant column standardises to zeros, which the penalty keeps at weight 0.
        let scale: Vec<f64> = columns
            .iter()
            .zip(&mean)
            .map(|(column, m)| {
                let squares = rows
                    .iter()
                    .fold(0.0, |acc, &r| acc + (column[r] - m) * (column[r] - m));
                let s = (squares / n as f64).sqrt();
                if !s.is_finite() || s < 1e-12 {
                    1.0
                } else {
                    s
                }
            })
            .collect();
        let constant: Vec<bool> = columns
            .iter()
            .map(|column| rows.iter().all(|&r| column[r] == column[rows[0]]))
            .collect();
        // Row-major, built once, row by row on the pool's threads (each entry on its own, so
        // the thread count does not change it).
        let mut z = Array2::<f64>::zeros((n, d));
        z.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .zip(rows)
            .for_each(|(mut out, &r)| {
                for (j, o) in out.iter_mut().enumerate() {
                    if !constant[j] {
                        *o = (columns[j][r] - mean[j]) / scale[j];
                    }
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

    fn views(columns: &[Vec<f64>]) -> Vec<&[f64]> {
        columns.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn a_planted_linear_signal_is_recovered() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 400;
        // y = 2 x0 - 0.5 x3 + 7, plus a constant column that must get weight 0.
        let mut columns: Vec<Vec<f64>> = (0..6)
            .map(|j| {
                (0..n)
                    .map(|_| rng.random::<f64>() * (j + 1) as f64 + 3.0)
                    .collect()
            })
            .collect();
        columns[5].fill(4.0);
        let y: Vec<f64> = (0..n)
            .map(|i| 2.0 * columns[0][i] - 0.5 * columns[3][i] + 7.0)
            .collect();
        let all: Vec<usize> = (0..n).collect();
        let fit = RidgePath::new(&views(&columns), &all, &y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(1e-9);
        let predicted = fit.predict_columns(&views(&columns));
        for (p, t) in predicted.iter().zip(&y) {
            assert!((p - t).abs() < 1e-6, "{p} vs {t}");
        }
        assert_eq!(fit.coef[5], 0.0);
        let odd: Vec<usize> = (1..n).step_by(2).collect();
        let odd_predicted: Vec<f64> = odd.iter().map(|&r| predicted[r]).collect();
        assert_eq!(fit.predict_rows(&views(&columns), &odd), odd_predicted);
        // A large penalty shrinks towards the mean.
        let flat = RidgePath::new(&views(&columns), &all, &y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(1e12);
        assert!(flat.coef.iter().all(|w| w.abs() < 1e-6));
    }

    #[test]
    fn fitting_listed_rows_is_fitting_those_rows_alone() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let columns: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..300).map(|_| rng.random::<f64>()).collect())
            .collect();
        let y: Vec<f64> = (0..300)
            .map(|i| columns[1][i] + rng.random::<f64>())
            .collect();
        let rows: Vec<usize> = (0..300).filter(|i| i % 3 != 0).collect();
        let listed_y: Vec<f64> = rows.iter().map(|&r| y[r]).collect();
        let gathered: Vec<Vec<f64>> = columns
            .iter()
            .map(|c| rows.iter().map(|&r| c[r]).collect())
            .collect();
        let every: Vec<usize> = (0..rows.len()).collect();
        let listed = RidgePath::new(&views(&columns), &rows, &listed_y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(0.5);
        let alone = RidgePath::new(&views(&gathered), &every, &listed_y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(0.5);
        assert_eq!(listed, alone);
    }

    #[test]
    fn a_row_past_the_columns_is_an_error() {
        let columns = [vec![1.0, 2.0, 3.0], vec![0.0, 1.0]];
        let err = RidgePath::new(&views(&columns), &[0, 2], &[1.0, 2.0])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("ridge regression failed: 2 rows of features for 2 targets (need at least 2, each within every column)")
        );
    }

    #[test]
    fn matches_the_normal_equations() {
        // Two standardised columns: w = (Z^T Z + α I)^-1 Z^T y, solved by hand.
        let columns = [vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0, 0.0, 1.0]];
        let y = [1.0, 3.0, 2.0, 5.0];
        let fit = RidgePath::new(&views(&columns), &[0, 1, 2, 3], &y)
            .unwrap_or_else(|e| panic!("{e}"))
            .at(2.0);
        // Z columns: (x0 - 2.5) / sqrt(1.25), (x1 - 0.5) / 0.5.
        let s0 = 1.25f64.sqrt();
        let z: Vec<[f64; 2]> = (0..4)
            .map(|i| [(columns[0][i] - 2.5) / s0, (columns[1][i] - 0.5) / 0.5])
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
