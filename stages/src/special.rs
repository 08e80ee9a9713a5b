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
