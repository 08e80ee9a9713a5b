//! Sums, extremes and finiteness of long columns, in a fixed order the compiler vectorises.
//!
//! A plain `iter().sum::<f64>()` adds one value at a time: every addition waits for the one
//! before it (four cycles), because reordering floating-point additions changes the result
//! and the compiler may not. Here value `i` goes into running sum `i % LANES`, and the lanes
//! are combined in one fixed tree at the end. The order depends only on the column's length,
//! never on threads or the machine, so results stay byte-identical; and its bound on rounding
//! error is lower than the sequential sum's (each lane sums a sixteenth of the values).

/// Running sums per column: two AVX-512 (or four AVX2) registers, enough independent chains
/// to hide the adder's latency.
const LANES: usize = 16;

/// Combines the lanes pairwise in a fixed tree.
fn combine(mut lanes: [f64; LANES]) -> f64 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}

/// The sum of `values`.
pub fn sum(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    for (lane, v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += v;
    }
    combine(lanes)
}

/// The sum of `f(v)` over the values whose `use_row` is true.
pub fn masked_sum(values: &[f64], use_row: &[bool], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let mut chunks = values.chunks_exact(LANES).zip(use_row.chunks_exact(LANES));
    for (chunk, used) in &mut chunks {
        for ((lane, v), u) in lanes.iter_mut().zip(chunk).zip(used) {
            *lane += if *u { f(*v) } else { 0.0 };
        }
    }
    let done = values.len() / LANES * LANES;
    for ((lane, v), u) in lanes.iter_mut().zip(&values[done..]).zip(&use_row[done..]) {
        *lane += if *u { f(*v) } else { 0.0 };
    }
    combine(lanes)
}

/// The smallest and largest value whose `use_row` is true (infinities when there is none).
pub fn masked_extremes(values: &[f64], use_row: &[bool]) -> (f64, f64) {
    let mut low = [f64::INFINITY; LANES];
    let mut high = [f64::NEG_INFINITY; LANES];
    // Compare-and-select per lane, not `f64::min`, so it vectorises; the values are finite
    // (checked as read), so NaN ordering never comes up.
    let visit = |low: &mut [f64], high: &mut [f64], values: &[f64], used: &[bool]| {
        for (((l, h), v), u) in low.iter_mut().zip(high.iter_mut()).zip(values).zip(used) {
            *l = if *u && *v < *l { *v } else { *l };
            *h = if *u && *v > *h { *v } else { *h };
        }
    };
    let mut chunks = values.chunks_exact(LANES).zip(use_row.chunks_exact(LANES));
    for (chunk, used) in &mut chunks {
        visit(&mut low, &mut high, chunk, used);
    }
    let done = values.len() / LANES * LANES;
    visit(&mut low, &mut high, &values[done..], &use_row[done..]);
    let low = low.into_iter().fold(f64::INFINITY, f64::min);
    let high = high.into_iter().fold(f64::NEG_INFINITY, f64::max);
    (low, high)
}

/// Whether every value is a finite number (one pass with no early exit, so it vectorises;
/// the caller looks for the offending value only when there is one).
pub fn all_finite(values: &[f64]) -> bool {
    values.iter().fold(true, |ok, v| ok & v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_exact_arithmetic_on_integers_of_any_length() {
        for n in [0, 1, 7, 15, 16, 17, 33, 1000] {
            let values: Vec<f64> = (1..=n).map(f64::from).collect();
            let expected = f64::from(n * (n + 1) / 2);
            assert_eq!(sum(&values), expected, "{n} values");
            let every_other: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
            let odd_sum: f64 = (1..=n).step_by(2).map(f64::from).sum();
            assert_eq!(
                masked_sum(&values, &every_other, |v| v),
                odd_sum,
                "{n} values"
            );
            assert_eq!(
                masked_sum(&values, &every_other, |v| v * v),
                (1..=n).step_by(2).map(|v| f64::from(v * v)).sum::<f64>(),
            );
        }
    }

    #[test]
    fn the_order_is_fixed_and_rounds_no_worse_than_one_by_one() {
        // 1 followed by many values each below half an ulp of 1: added one by one, every
        // one of them is lost; spread over lanes they add up first.
        let mut values = vec![1.0];
        values.extend(std::iter::repeat_n(1e-17, 1600));
        let sequential: f64 = values.iter().sum();
        let exact = 1.0 + 1600.0 * 1e-17;
        assert!((sum(&values) - exact).abs() <= (sequential - exact).abs());
    }

    #[test]
    fn extremes_skip_unused_rows_and_finiteness_finds_any_bad_value() {
        let values: Vec<f64> = (0..40).map(|i| f64::from((i * 7) % 40) - 20.0).collect();
        let mut used = vec![true; 40];
        let (low, high) = masked_extremes(&values, &used);
        assert_eq!((low, high), (-20.0, 19.0));
        for (u, v) in used.iter_mut().zip(&values) {
            *u = v.abs() < 10.0;
        }
        assert_eq!(masked_extremes(&values, &used), (-9.0, 9.0));
        assert_eq!(
            masked_extremes(&values, &[false; 40]),
            (f64::INFINITY, f64::NEG_INFINITY)
        );
        assert!(all_finite(&values));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut with_bad = values.clone();
            with_bad[37] = bad;
            assert!(!all_finite(&with_bad));
        }
    }
}
