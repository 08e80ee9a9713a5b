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

/// ln x for positive normal x, in plain arithmetic the compiler can vectorise (libm's `ln`
/// is a call per element): x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s) with
/// s = (m - 1) / (m + 1), by its odd series to s^19 (error below 1e-15).
#[inline(always)]
fn ln_fast(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0
                            + s2 * (1.0 / 13.0
                                + s2 * (1.0 / 15.0 + s2 * (1.0 / 17.0 + s2 / 19.0))))))));
    e as f64 * std::f64::consts::LN_2 + 2.0 * s * series
}

/// ψ(x) for 0 < x < 1e25 without branches: always ten recurrence steps (summed as one
/// fraction), then the asymptotic series at x + 10. Used on the gamma vectors of LDA's
/// inner loop, where it is evaluated for every topic at every iteration.
#[inline(always)]
fn digamma_fixed(x: f64) -> f64 {
    let (mut y, mut num, mut den) = (x, 0.0f64, 1.0f64);
    for _ in 0..10 {
        num = num * y + den;
        den *= y;
        y += 1.0;
    }
    let inv = 1.0 / y;
    let inv2 = inv * inv;
    ln_fast(y)
        - 0.5 * inv
        - inv2
            * (1.0 / 12.0
                - inv2
                    * (1.0 / 120.0
                        - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))))
        - num / den
}

/// [`dirichlet_expectation`] for parameters below 1e25 (document-topic gammas), in a form
/// the compiler vectorises across topics.
pub fn dirichlet_expectation_small(alpha: &[f64], out: &mut [f64]) {
    let total = digamma(alpha.iter().sum());
    for (o, a) in out.iter_mut().zip(alpha) {
        *o = digamma_fixed(*a) - total;
    }
}

#[cfg(test)]
mod fast_tests {
    use super::*;

    #[test]
    fn the_vectorisable_forms_match_the_reference() {
        let mut x = 1e-4;
        while x < 1e6 {
            assert!(
                (ln_fast(x) - x.ln()).abs() < 1e-14 * x.ln().abs().max(1.0),
                "ln {x}"
            );
            let (a, b) = (digamma_fixed(x), digamma(x));
            assert!(
                (a - b).abs() < 1e-12 * b.abs().max(1.0),
                "digamma {x}: {a} vs {b}"
            );
            x *= 1.37;
        }
    }
}
