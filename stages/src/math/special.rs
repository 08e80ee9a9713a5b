//! Special functions for the topic models: digamma and log-gamma.

/// The digamma function ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) - 1/x up to x >= 10,
/// then the asymptotic series (error below 1e-13 over the range the topic models use).
/// The recurrence's terms are summed as one fraction, so the shift costs a single division:
/// this function dominates LDA's run time.
pub fn digamma(x: f64) -> f64 {
    let (mut x, mut num, mut den) = (x, 0.0f64, 1.0f64);
    while x < 10.0 {
        // num/den + 1/x = (num x + den) / (den x)
        num = num * x + den;
        den *= x;
        x += 1.0;
    }
    let shift = num / den;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    x.ln()
        - 0.5 * inv
        - inv2
            * (1.0 / 12.0
                - inv2
                    * (1.0 / 120.0
                        - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))))
        - shift
}

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// E[ln θ] for θ ~ Dirichlet(alpha): ψ(alpha_k) - ψ(Σ alpha).
pub fn dirichlet_expectation(alpha: &[f64], out: &mut [f64]) {
    let total = digamma(alpha.iter().sum());
    for (o, a) in out.iter_mut().zip(alpha) {
        *o = digamma(*a) - total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_matches_known_values() {
        // ψ(1) = -γ, ψ(0.5) = -γ - 2 ln 2, ψ(10) from tables.
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-12);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-12);
        assert!((digamma(10.0) - 2.251_752_589_066_721).abs() < 1e-12);
        assert!((digamma(0.01) - (-100.560_885_457_868_7)).abs() < 1e-9);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    }
}

/// e^x in plain arithmetic the compiler can vectorise (libm's `exp` is a call per element):
/// Cody-Waite reduction x = n ln 2 + r with |r| <= ln 2 / 2 and n found by the round-to-even
/// of adding 1.5 * 2^52, then Taylor's series to r^12 (truncation below 2e-16 relative) and
/// 2^n built from its exponent bits. 0 below -708 (where 2^n would be subnormal): callers
/// add these values to sums of order 1e-100 or more, where such terms vanish anyway.
#[inline(always)]
pub fn exp_fast(x: f64) -> f64 {
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let clamped = x.clamp(-708.0, 709.0);
    let shifted = clamped * std::f64::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Horner with 1/j! as constants: no division in the loop.
    const C: [f64; 13] = {
        let mut c = [1.0f64; 13];
        let mut j = 1;
        while j < 13 {
            c[j] = c[j - 1] / j as f64;
            j += 1;
        }
        c
    };
    let mut p = C[12];
    for c in C[..12].iter().rev() {
        p = p * r + c;
    }
    // Both doubles share the exponent of 2^52, so their bit patterns differ by exactly n.
    let exponent = (shifted.to_bits() as i64 - SHIFT.to_bits() as i64 + 1023) as u64;
    let value = p * f64::from_bits(exponent << 52);
    if x < -708.0 {
        0.0
    } else {
        value
    }
}

/// exp(E[ln θ]) for θ ~ Dirichlet(alpha), that is exp(ψ(alpha_k) - ψ(Σ alpha)), for
/// parameters below 1e25 (the document-topic gammas of LDA's inner loop, where this is
/// evaluated for every topic at every iteration and dominates the run time).
///
/// ψ(x) = ln y + s(y) - Σ_{i<10} 1/(x + i) with y = x + 10 and s the asymptotic series, so
/// exp(ψ(x) - c) = y exp(s(y) - Σ 1/(x + i) - c): no logarithm, one exponential, and the ten
/// recurrence terms summed as one fraction. Branch-free, so it vectorises across topics.
#[inline(always)]
pub fn exp_dirichlet_expectation(alpha: &[f64], out: &mut [f64]) {
    let total = digamma(sum_lanes(alpha));
    let n = alpha.len().min(out.len());
    if n < 8 {
        for (o, &x) in out.iter_mut().zip(alpha) {
            *o = exp_digamma_minus(x, total);
        }
        return;
    }
    // Whole blocks of eight; the tail as the last eight (overlapping the block before it,
    // which is recomputed to the same values) so no element takes a scalar path.
    let mut start = 0;
    while start < n {
        let at = start.min(n - 8);
        for (o, &x) in out[at..at + 8].iter_mut().zip(&alpha[at..at + 8]) {
            *o = exp_digamma_minus(x, total);
        }
        start += 8;
    }
}

/// exp(ψ(x) - c) for 0 < x < 1e25 (see [`exp_dirichlet_expectation`]).
#[inline(always)]
fn exp_digamma_minus(x: f64, c: f64) -> f64 {
    let (mut y, mut num, mut den) = (x, 0.0f64, 1.0f64);
    for _ in 0..10 {
        num = num * y + den;
        den *= y;
        y += 1.0;
    }
    // One division for both 1/y and num/den (divisions are the slowest vector instructions
    // here); den y < 1e275 for x < 1e25, so it cannot overflow.
    let inv_both = 1.0 / (den * y);
    let inv = den * inv_both;
    let shift = num * y * inv_both;
    let inv2 = inv * inv;
    let series = -0.5 * inv
        - inv2
            * (1.0 / 12.0
                - inv2
                    * (1.0 / 120.0
                        - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))));
    y * exp_fast(series - shift - c)
}

/// Σ a in eight interleaved partial sums, combined in a fixed order: the same result on
/// every instruction set, and a form the compiler vectorises (a single running sum cannot
/// be reordered).
#[inline(always)]
pub fn sum_lanes(a: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = a.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (s, v) in acc.iter_mut().zip(c) {
            *s += v;
        }
    }
    for (s, v) in acc.iter_mut().zip(rest) {
        *s += v;
    }
    combine_lanes(acc)
}

/// Σ a_i b_i in eight interleaved partial sums (see [`sum_lanes`]).
#[inline(always)]
pub fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    fold_lanes(a, b, |u, v| u * v)
}

/// Σ |a_i - b_i| in eight interleaved partial sums (see [`sum_lanes`]).
#[inline(always)]
pub fn abs_diff_lanes(a: &[f64], b: &[f64]) -> f64 {
    fold_lanes(a, b, |u, v| (u - v).abs())
}

/// Σ term(a_i, b_i) in eight interleaved partial sums.
#[inline(always)]
fn fold_lanes(a: &[f64], b: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, u), v) in acc.iter_mut().zip(x).zip(y) {
            *s += term(*u, *v);
        }
    }
    for ((s, u), v) in acc.iter_mut().zip(ra).zip(rb) {
        *s += term(*u, *v);
    }
    combine_lanes(acc)
}

#[inline(always)]
fn combine_lanes(acc: [f64; 8]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[cfg(test)]
mod fast_tests {
    use super::*;

    #[test]
    fn the_vectorisable_forms_match_the_reference() {
        let mut x = -750.0;
        while x < 709.0 {
            let (a, b) = (exp_fast(x), x.exp());
            if x < -708.0 {
                assert_eq!(a, 0.0, "exp {x}");
            } else {
                assert!((a - b).abs() <= 4e-16 * b, "exp {x}: {a} vs {b}");
            }
            x += 0.173;
        }
        let gamma: Vec<f64> = (0..70).map(|i| 1e-4 * 1.31f64.powi(i)).collect();
        let mut fast = vec![0.0; 70];
        exp_dirichlet_expectation(&gamma, &mut fast);
        let mut reference = vec![0.0; 70];
        dirichlet_expectation(&gamma, &mut reference);
        for (i, (a, r)) in fast.iter().zip(&reference).enumerate() {
            let b = r.exp();
            assert!(
                (a - b).abs() <= 1e-12 * b,
                "topic {i} (gamma {}): {a} vs {b}",
                gamma[i]
            );
        }
    }

    #[test]
    fn lane_sums_match_plain_sums() {
        let a: Vec<f64> = (0..70).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..70).map(|i| (i as f64 * 0.11).cos()).collect();
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12 * (1.0 + y.abs());
        assert!(close(sum_lanes(&a), a.iter().sum()));
        assert!(close(
            dot_lanes(&a, &b),
            a.iter().zip(&b).map(|(x, y)| x * y).sum()
        ));
        assert!(close(
            abs_diff_lanes(&a, &b),
            a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum()
        ));
    }
}
