//! Latent Dirichlet allocation with online variational Bayes, as gensim's `LdaModel` does it
//! (Hoffman, Blei and Bach, 2010): the model, its E-step and M-step, and the per-word bound.
//!
//! The E-step of a chunk runs in parallel over fixed sub-batches whose statistics are summed
//! in a fixed order, and every random draw is seeded per document, so results do not depend
//! on the thread count. The document inner loop has AVX-512 and AVX2 variants chosen at run
//! time that give the same gammas bit for bit.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::math::special::{
    abs_diff_lanes, digamma, dirichlet_expectation, dot_lanes, exp_dirichlet_expectation, exp_fast,
    ln_gamma,
};

/// Parameters of `lda`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdaParams {
    /// Number of topics (70 as the original).
    pub topics: usize,
    /// Passes over the corpus.
    pub passes: usize,
    /// Documents per online update.
    pub chunksize: usize,
    /// Learning-rate decay (kappa).
    pub decay: f64,
    /// Learning-rate offset (tau0).
    pub offset: f64,
    /// Maximum gamma iterations per document.
    pub iterations: usize,
    /// Stop a document's iterations when the mean change of gamma is below this.
    pub gamma_threshold: f64,
    /// Topics with at least this probability become a track's labels.
    pub minimum_probability: f64,
    /// Words shown per printed topic.
    pub top_words: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for LdaParams {
    fn default() -> Self {
        Self {
            topics: 70,
            passes: 10,
            chunksize: 2000,
            decay: 0.5,
            offset: 1.0,
            iterations: 50,
            gamma_threshold: 0.001,
            minimum_probability: 0.01,
            top_words: 10,
            seed: 42,
        }
    }
}

/// A bag of words: (word id, count).
pub type Document = Vec<(usize, f64)>;

/// A fitted model.
#[derive(Debug, Clone)]
pub struct Lda {
    /// Topics.
    pub k: usize,
    /// Vocabulary size.
    pub w: usize,
    /// Symmetric document-topic prior.
    pub alpha: f64,
    /// Symmetric topic-word prior.
    pub eta: f64,
    /// Sufficient statistics (lambda = eta + sstats), k x w, row-major.
    pub sstats: Vec<f64>,
    /// exp(E[ln beta]), k x w, row-major.
    pub exp_elog_beta: Vec<f64>,
    /// The same, transposed (w x k), for inference's inner loops.
    exp_elog_beta_t: Vec<f64>,
    /// Documents counted by online updates (gensim's `num_updates`: first pass only).
    pub updates: usize,
}

const EPS: f64 = 1e-100;
const SUB_BATCH: usize = 64;
/// Documents on which the per-pass bound is measured.
pub const BOUND_SAMPLE: usize = 10_000;

fn gamma_draws(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    // gensim draws Gamma(shape 100, scale 1/100) for lambda and gamma initialisation.
    let dist = Gamma::new(100.0, 0.01).unwrap_or_else(|_| unreachable_gamma());
    (0..n).map(|_| dist.sample(rng)).collect()
}

fn unreachable_gamma() -> Gamma<f64> {
    // Shape and scale above are positive constants, so construction cannot fail; this
    // fallback keeps the code free of panics all the same.
    Gamma::new(1.0, 1.0).unwrap_or_else(|_| unreachable_gamma())
}

impl Lda {
    /// A model with gensim's random initialisation.
    pub fn new(k: usize, w: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sstats = gamma_draws(&mut rng, k * w);
        let mut model = Self {
            k,
            w,
            alpha: 1.0 / k as f64,
            eta: 1.0 / k as f64,
            sstats,
            exp_elog_beta: vec![0.0; k * w],
            exp_elog_beta_t: vec![0.0; k * w],
            updates: 0,
        };
        // As gensim's constructor: the first E-step sees exp(E[ln beta]) of the random draws
        // alone; every later one sees it of lambda = eta + sstats.
        let draws = model.sstats.clone();
        model.refresh_beta_from(&draws);
        model
    }

    /// lambda = eta + sstats, k x w, row-major.
    pub fn lambda(&self) -> Vec<f64> {
        self.sstats.iter().map(|s| s + self.eta).collect()
    }

    fn refresh_beta(&mut self) {
        self.refresh_beta_from(&self.lambda());
    }

    /// exp(E[ln beta]) for Dirichlet parameters `lambda` (k x w).
    fn refresh_beta_from(&mut self, lambda: &[f64]) {
        let mut row = vec![0.0; self.w];
        for t in 0..self.k {
            dirichlet_expectation(&lambda[t * self.w..(t + 1) * self.w], &mut row);
            for (e, v) in self.exp_elog_beta[t * self.w..(t + 1) * self.w]
                .iter_mut()
                .zip(&row)
            {
                *e = v.exp();
            }
        }
        for id in 0..self.w {
            for t in 0..self.k {
                self.exp_elog_beta_t[id * self.k + t] = self.exp_elog_beta[t * self.w + id];
            }
        }
    }

    /// Variational inference for one document: its gamma and, when asked, its share of the
    /// sufficient statistics added to `sstats_t` (word-major, w x k, not yet multiplied by
    /// exp(E[ln beta])).
    fn infer(
        &self,
        doc: &Document,
        rng: &mut ChaCha8Rng,
        (iterations, threshold): (usize, f64),
        scratch: &mut Scratch,
        sstats_t: Option<&mut [f64]>,
    ) -> Vec<f64> {
        let mut gamma = gamma_draws(rng, self.k);
        let inputs = DocumentInputs {
            beta_t: &self.exp_elog_beta_t,
            k: self.k,
            alpha: self.alpha,
            doc,
            iterations,
            threshold,
        };
        update_document_dispatch(&inputs, &mut gamma, scratch);
        if let Some(sstats_t) = sstats_t {
            let k = self.k;
            for (&(id, c), n) in doc.iter().zip(&scratch.norm) {
                let f = c / n;
                for (s, e) in sstats_t[id * k..(id + 1) * k]
                    .iter_mut()
                    .zip(&scratch.exp_theta)
                {
                    *s += e * f;
                }
            }
        }
        gamma
    }

    fn doc_rng(seed: u64, round: u64, doc: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.set_stream(doc as u64);
        rng
    }

    /// E-step over `docs` (indices into `corpus`): gammas and the chunk's sstats.
    fn estep(
        &self,
        corpus: &[Document],
        docs: &[usize],
        seed: u64,
        round: u64,
        p: &LdaParams,
    ) -> (Vec<Vec<f64>>, Vec<f64>) {
        let (k, w) = (self.k, self.w);
        let parts: Vec<(Vec<Vec<f64>>, Vec<f64>)> = docs
            .par_chunks(SUB_BATCH)
            .map(|batch| {
                let mut sstats_t = vec![0.0; k * w];
                let mut scratch = Scratch::default();
                let gammas = batch
                    .iter()
                    .map(|&d| {
                        let mut rng = Self::doc_rng(seed, round, d);
                        self.infer(
                            &corpus[d],
                            &mut rng,
                            (p.iterations, p.gamma_threshold),
                            &mut scratch,
                            Some(&mut sstats_t),
                        )
                    })
                    .collect();
                (gammas, sstats_t)
            })
            .collect();
        let mut total_t = vec![0.0; k * w];
        let mut gammas = Vec::with_capacity(docs.len());
        for (g, s) in parts {
            gammas.extend(g);
            for (t, v) in total_t.iter_mut().zip(s) {
                *t += v;
            }
        }
        // Back to topic-major, times exp(E[ln beta]) (gensim's `sstats *= expElogbeta`).
        let mut total = vec![0.0; k * w];
        for t in 0..k {
            for id in 0..w {
                total[t * w + id] = total_t[id * k + t] * self.exp_elog_beta[t * w + id];
            }
        }
        (gammas, total)
    }

    /// Trains on `corpus`, returning the per-word bound after each pass.
    pub fn fit(
        &mut self,
        corpus: &[Document],
        p: &LdaParams,
        cancelled: &dyn Fn() -> Result<()>,
    ) -> Result<Vec<f64>> {
        // The per-pass bound is measured on an evenly spaced sample of at most
        // BOUND_SAMPLE documents: a full-corpus bound costs as much as a pass. The stage
        // reports the final bound on the whole corpus.
        let n = corpus.len();
        let step = n.div_ceil(BOUND_SAMPLE).max(1);
        let sample: Vec<Document> = corpus.iter().step_by(step).cloned().collect();
        let mut bounds = Vec::with_capacity(p.passes);
        for pass in 0..p.passes {
            for (c, chunk) in (0..n).collect::<Vec<_>>().chunks(p.chunksize).enumerate() {
                cancelled()?;
                let rho = (p.offset + pass as f64 + self.updates as f64 / p.chunksize as f64)
                    .powf(-p.decay);
                let round = (pass * 1_000_003 + c) as u64;
                let (_, chunk_stats) = self.estep(corpus, chunk, p.seed, round, p);
                // gensim's LdaState.blend: stretch the chunk's statistics to the corpus size.
                let scale = n as f64 / chunk.len() as f64;
                for (s, o) in self.sstats.iter_mut().zip(&chunk_stats) {
                    *s = (1.0 - rho) * *s + rho * scale * o;
                }
                self.refresh_beta();
                // As gensim's `do_mstep`: only the first pass counts its documents ("extra"
                // passes do not), so rho stays constant within each later pass.
                if pass == 0 {
                    self.updates += chunk.len();
                }
            }
            let ratio = n as f64 / sample.len().max(1) as f64;
            // The same starting gammas every pass, so the curve shows the model changing,
            // not the noise of a fresh random start.
            let gammas = self.gammas(&sample, p, 0xB0_0D);
            bounds.push(self.bound_with(&sample, &gammas, ratio)?);
            tracing::debug!(
                "lda: pass {} of {}: per-word bound {:.4}",
                pass + 1,
                p.passes,
                bounds[pass]
            );
        }
        Ok(bounds)
    }

    /// Topic distributions of every document under the fitted model.
    pub fn transform(&self, corpus: &[Document], p: &LdaParams) -> Vec<Vec<f64>> {
        Self::normalise(self.gammas(corpus, p, u64::MAX))
    }

    /// Gammas to topic distributions (gensim's `get_document_topics` before its cut-off).
    pub fn normalise(gammas: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
        gammas
            .into_iter()
            .map(|g| {
                let total: f64 = g.iter().sum();
                g.into_iter().map(|v| v / total).collect()
            })
            .collect()
    }

    /// Variational gammas of every document under the current model.
    pub fn gammas(&self, corpus: &[Document], p: &LdaParams, round: u64) -> Vec<Vec<f64>> {
        corpus
            .par_iter()
            .enumerate()
            .map_init(Scratch::default, |scratch, (d, doc)| {
                let mut rng = Self::doc_rng(p.seed, round, d);
                self.infer(
                    doc,
                    &mut rng,
                    (p.iterations, p.gamma_threshold),
                    scratch,
                    None,
                )
            })
            .collect()
    }

    /// gensim's `bound` for `corpus` with its documents' `gammas`, per word. When `corpus` is
    /// a sample, `subsample_ratio` (corpus size / sample size) scales its document terms, as
    /// gensim's `log_perplexity` does.
    pub fn bound_with(
        &self,
        corpus: &[Document],
        gammas: &[Vec<f64>],
        subsample_ratio: f64,
    ) -> Result<f64> {
        let (k, w) = (self.k, self.w);
        let lambda = self.lambda();
        let mut elog_beta = vec![0.0; k * w];
        for t in 0..k {
            dirichlet_expectation(
                &lambda[t * w..(t + 1) * w],
                &mut elog_beta[t * w..(t + 1) * w],
            );
        }
        // Most topics of a short document keep gamma = alpha exactly: their digamma is
        // computed once here, and their log-gamma terms below are zero.
        let digamma_alpha = digamma(self.alpha);
        let doc_scores: Vec<f64> = corpus
            .par_iter()
            .zip(gammas)
            .map(|(doc, gamma)| {
                let total = digamma(gamma.iter().sum());
                let elog: Vec<f64> = gamma
                    .iter()
                    .map(|&g| {
                        if g == self.alpha {
                            digamma_alpha - total
                        } else {
                            digamma(g) - total
                        }
                    })
                    .collect();
                let mut score = 0.0;
                let mut terms = vec![0.0; k];
                for &(id, c) in doc {
                    for (t, term) in terms.iter_mut().enumerate() {
                        *term = elog[t] + elog_beta[t * w + id];
                    }
                    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = terms.iter().map(|v| exp_fast(v - max)).sum();
                    score += c * (max + sum.ln());
                }
                for t in 0..k {
                    if gamma[t] != self.alpha {
                        score += (self.alpha - gamma[t]) * elog[t] + ln_gamma(gamma[t])
                            - ln_gamma(self.alpha);
                    }
                }
                score + ln_gamma(self.alpha * k as f64) - ln_gamma(gamma.iter().sum())
            })
            .collect();
        let mut score: f64 = doc_scores.iter().sum::<f64>() * subsample_ratio;
        for t in 0..k {
            let row = &lambda[t * w..(t + 1) * w];
            for (l, e) in row.iter().zip(&elog_beta[t * w..(t + 1) * w]) {
                score += (self.eta - l) * e + ln_gamma(*l) - ln_gamma(self.eta);
            }
            score += ln_gamma(self.eta * w as f64) - ln_gamma(row.iter().sum());
        }
        let words: f64 = corpus.iter().flat_map(|d| d.iter().map(|e| e.1)).sum();
        if words <= 0.0 {
            return Err(Error::TooFew {
                what: "words in the corpus".into(),
                needed: 1,
                got: 0,
            });
        }
        Ok(score / (subsample_ratio * words))
    }

    /// Topic `t` as word probabilities (lambda row normalised).
    pub fn topic(&self, t: usize) -> Vec<f64> {
        let row: Vec<f64> = self.sstats[t * self.w..(t + 1) * self.w]
            .iter()
            .map(|s| s + self.eta)
            .collect();
        let total: f64 = row.iter().sum();
        row.into_iter().map(|v| v / total).collect()
    }
}

/// Buffers of one document's inference, reused across the documents of a batch.
#[derive(Default)]
struct Scratch {
    /// exp(E[ln theta]) of the document, k.
    exp_theta: Vec<f64>,
    /// Per word: Σ_t exp(E[ln theta_t]) exp(E[ln beta_tw]) (gensim's `phinorm`).
    norm: Vec<f64>,
    last: Vec<f64>,
    dot: Vec<f64>,
}

/// What one document's inference reads.
struct DocumentInputs<'a> {
    /// exp(E[ln beta]), word-major (w x k), so every inner loop runs over contiguous topics.
    beta_t: &'a [f64],
    k: usize,
    alpha: f64,
    doc: &'a Document,
    iterations: usize,
    threshold: f64,
}

/// gensim's per-document loop: gamma = alpha + exp(E[ln theta]) * (counts / phinorm) .
/// exp(E[ln beta]), until the mean change of gamma is under the threshold. Leaves the
/// final exp(E[ln theta]) and phinorm in `s` for the sufficient statistics.
#[inline(always)]
fn update_document(x: &DocumentInputs<'_>, gamma: &mut [f64], s: &mut Scratch) {
    let k = x.k;
    s.exp_theta.resize(k, 0.0);
    s.last.resize(k, 0.0);
    s.dot.resize(k, 0.0);
    s.norm.resize(x.doc.len(), 0.0);
    exp_dirichlet_expectation(gamma, &mut s.exp_theta);
    phinorm(x, &s.exp_theta, &mut s.norm);
    for _ in 0..x.iterations {
        s.last.copy_from_slice(gamma);
        s.dot.fill(0.0);
        for (&(id, c), n) in x.doc.iter().zip(&s.norm) {
            let f = c / n;
            for (d, b) in s.dot.iter_mut().zip(x.row(id)) {
                *d += f * b;
            }
        }
        for ((g, e), d) in gamma.iter_mut().zip(&s.exp_theta).zip(&s.dot) {
            *g = x.alpha + e * d;
        }
        exp_dirichlet_expectation(gamma, &mut s.exp_theta);
        phinorm(x, &s.exp_theta, &mut s.norm);
        if abs_diff_lanes(gamma, &s.last) / (k as f64) < x.threshold {
            break;
        }
    }
}

// A function, not a closure: closures do not inherit the caller's target features, so one
// would run the hottest loop without the wide vector instructions.
#[inline(always)]
fn phinorm(x: &DocumentInputs<'_>, exp_theta: &[f64], norm: &mut [f64]) {
    for (n, &(id, _)) in norm.iter_mut().zip(x.doc) {
        *n = dot_lanes(x.row(id), exp_theta) + EPS;
    }
}

impl DocumentInputs<'_> {
    /// exp(E[ln beta]) of word `id` for every topic.
    #[inline(always)]
    fn row(&self, id: usize) -> &[f64] {
        &self.beta_t[id * self.k..(id + 1) * self.k]
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn update_document_avx512(x: &DocumentInputs<'_>, gamma: &mut [f64], s: &mut Scratch) {
    update_document(x, gamma, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn update_document_avx2(x: &DocumentInputs<'_>, gamma: &mut [f64], s: &mut Scratch) {
    update_document(x, gamma, s);
}

/// Picks the widest vector instructions the CPU has at run time (no target-cpu flags at
/// build time). Every variant does the same arithmetic in the same order (no fused
/// multiply-adds; sums in fixed lanes), so results do not depend on the machine.
fn update_document_dispatch(x: &DocumentInputs<'_>, gamma: &mut [f64], s: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { update_document_avx512(x, gamma, s) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { update_document_avx2(x, gamma, s) };
        }
    }
    update_document(x, gamma, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn cosine(a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
            * b.iter().map(|x| x * x).sum::<f64>().sqrt())
    }

    #[test]
    fn recovers_known_topics_and_the_bound_improves() {
        // Four topics over 20 words, each on five words of its own.
        let (k, w) = (4, 20);
        let truth: Vec<Vec<f64>> = (0..k)
            .map(|t| (0..w).map(|i| if i / 5 == t { 0.2 } else { 0.0 }).collect())
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let corpus: Vec<Document> = (0..1500)
            .map(|_| {
                let main = rng.random_range(0..k);
                let mut counts = vec![0.0; w];
                for _ in 0..8 {
                    let topic = if rng.random::<f64>() < 0.85 {
                        main
                    } else {
                        rng.random_range(0..k)
                    };
                    counts[topic * 5 + rng.random_range(0..5)] += 1.0;
                }
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0.0)
                    .map(|(i, c)| (i, *c))
                    .collect()
            })
            .collect();
        let params = LdaParams {
            topics: k,
            passes: 8,
            chunksize: 300,
            ..LdaParams::default()
        };
        let mut model = Lda::new(k, w, 1);
        let bounds = model
            .fit(&corpus, &params, &|| Ok(()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            bounds.windows(2).all(|b| b[1] >= b[0] - 1e-3),
            "bound must not get worse: {bounds:?}"
        );
        // gensim's step-size clock counts the first pass's documents only.
        assert_eq!(model.updates, corpus.len());
        assert!(bounds.last().unwrap_or(&f64::NAN) > &bounds[0]);
        for t in &truth {
            let best = (0..k)
                .map(|f| cosine(t, &model.topic(f)))
                .fold(0.0, f64::max);
            assert!(
                best > 0.95,
                "a true topic was not recovered (best cosine {best})"
            );
        }
        // Inference is deterministic.
        assert_eq!(
            model.transform(&corpus[..20], &params),
            model.transform(&corpus[..20], &params)
        );
    }

    #[test]
    fn every_instruction_set_gives_the_same_gammas() {
        let model = Lda::new(70, 40, 3);
        let doc: Document = vec![(1, 1.0), (7, 2.0), (39, 1.0)];
        let inputs = DocumentInputs {
            beta_t: &model.exp_elog_beta_t,
            k: model.k,
            alpha: model.alpha,
            doc: &doc,
            iterations: 50,
            threshold: 0.001,
        };
        let start = gamma_draws(&mut ChaCha8Rng::seed_from_u64(5), 70);
        let mut plain = start.clone();
        update_document(&inputs, &mut plain, &mut Scratch::default());
        let mut dispatched = start;
        update_document_dispatch(&inputs, &mut dispatched, &mut Scratch::default());
        assert_eq!(plain, dispatched);
        assert!(plain.iter().all(|g| g.is_finite() && *g >= model.alpha));
    }
}
