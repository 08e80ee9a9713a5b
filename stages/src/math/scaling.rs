//! Per-column scaling statistics: mean and population standard deviation (z-score), minimum
//! and maximum (min-max to [0, 1]), fitted over a chosen subset of rows. A constant column
//! scales to 0 rather than dividing by zero.

use rayon::prelude::*;

use crate::math::column_sums;

/// Per-column statistics of the fit.
#[derive(Debug, Clone)]
pub struct Scaling {
    /// Means.
    pub mean: Vec<f64>,
    /// Population standard deviations.
    pub std: Vec<f64>,
    /// Minima.
    pub min: Vec<f64>,
    /// Maxima.
    pub max: Vec<f64>,
}

/// The statistics of one column over the `used` rows where `use_row` is true:
/// (mean, population std, min, max).
fn fit_column(column: &[f64], use_row: &[bool], used: usize) -> (f64, f64, f64, f64) {
    let n = used as f64;
    let mean = column_sums::masked_sum(column, use_row, |v| v) / f64::max(n, 1.0);
    let var =
        column_sums::masked_sum(column, use_row, |v| (v - mean) * (v - mean)) / f64::max(n, 1.0);
    let (min, max) = column_sums::masked_extremes(column, use_row);
    (mean, var.sqrt(), min, max)
}

/// Fits the statistics of every column of a column-major matrix (`rows` per column).
pub fn fit(values: &[f64], rows: usize, use_row: &[bool]) -> Scaling {
    let used = use_row.iter().filter(|u| **u).count();
    let cols: Vec<(f64, f64, f64, f64)> = values
        .par_chunks(rows.max(1))
        .map(|column| fit_column(column, use_row, used))
        .collect();
    Scaling {
        mean: cols.iter().map(|c| c.0).collect(),
        std: cols.iter().map(|c| c.1).collect(),
        min: cols.iter().map(|c| c.2).collect(),
        max: cols.iter().map(|c| c.3).collect(),
    }
}

impl Scaling {
    /// Column `j` z-scored; 0 for a constant column.
    pub fn zscore<'a>(
        &self,
        j: usize,
        column: &'a [f64],
    ) -> impl ExactSizeIterator<Item = f64> + 'a {
        let (mean, std) = (self.mean[j], self.std[j]);
        column
            .iter()
            .map(move |v| if std > 0.0 { (v - mean) / std } else { 0.0 })
    }

    /// Column `j` scaled to [0, 1]; 0 for a constant column.
    pub fn minmax<'a>(
        &self,
        j: usize,
        column: &'a [f64],
    ) -> impl ExactSizeIterator<Item = f64> + 'a {
        let (min, range) = (self.min[j], self.max[j] - self.min[j]);
        column
            .iter()
            .map(move |v| if range > 0.0 { (v - min) / range } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_uses_population_std_and_constant_columns_stay_zero() {
        // Two columns of four rows, column-major.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0];
        let s = fit(&x, 4, &[true; 4]);
        assert!((s.std[0] - 1.25f64.sqrt()).abs() < 1e-12);
        let z0: Vec<f64> = s.zscore(0, &x[..4]).collect();
        assert!((z0[0] + 1.5 / 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.zscore(1, &x[4..]).collect::<Vec<_>>(), vec![0.0; 4]);
        assert_eq!(s.minmax(1, &x[4..]).collect::<Vec<_>>(), vec![0.0; 4]);
        assert_eq!(
            s.minmax(0, &x[..4]).collect::<Vec<_>>(),
            vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
        );
        assert!(z0.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn fitting_on_a_subset_ignores_other_rows() {
        let s = fit(&[0.0, 2.0, 100.0], 3, &[true, true, false]);
        assert_eq!((s.mean[0], s.std[0], s.max[0]), (1.0, 1.0, 2.0));
    }
}
