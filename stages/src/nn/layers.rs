//! Small dense neural networks on the CPU: linear layers over faer GEMMs, ReLU, dropout, a
//! numerically stable binary cross-entropy on logits, and Adam, as Keras defines them.
//!
//! Every GEMM runs sequentially (`Par::Seq`) with a fixed reduction order, and every random
//! draw (Glorot initialisation, shuffling, dropout masks) comes from a generator seeded by
//! the caller, so the same seed gives bit-identical weights whatever the machine's thread
//! count. Matrices are row-major `f32` slices, batch x features.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One dense layer `y = x W + b` with its Adam state.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Inputs.
    pub n_in: usize,
    /// Outputs.
    pub n_out: usize,
    /// Weights, `n_in x n_out`, row-major.
    pub w: Vec<f32>,
    /// Biases.
    pub b: Vec<f32>,
    /// ReLU after the affine map (false: linear, e.g. logits).
    pub relu: bool,
    /// Dropout rate applied to this layer's output while training.
    pub dropout: f32,
    /// Frozen layers are not updated.
    pub frozen: bool,
    grad_w: Vec<f32>,
    grad_b: Vec<f32>,
    m_w: Vec<f32>,
    v_w: Vec<f32>,
    m_b: Vec<f32>,
    v_b: Vec<f32>,
}

impl Dense {
    /// A layer with Glorot-uniform weights (Keras' default) and zero biases.
    pub fn new(n_in: usize, n_out: usize, relu: bool, dropout: f32, rng: &mut ChaCha8Rng) -> Self {
        let limit = (6.0 / (n_in + n_out) as f32).sqrt();
        let w = (0..n_in * n_out)
            .map(|_| rng.random_range(-limit..limit))
            .collect();
        Self::from_weights(n_in, n_out, w, vec![0.0; n_out], relu, dropout)
    }

    /// A layer with the given weights (`n_in x n_out`, row-major) and biases.
    pub fn from_weights(
        n_in: usize,
        n_out: usize,
        w: Vec<f32>,
        b: Vec<f32>,
        relu: bool,
        dropout: f32,
    ) -> Self {
        Self {
            n_in,
            n_out,
            grad_w: vec![0.0; w.len()],
            grad_b: vec![0.0; b.len()],
            m_w: vec![0.0; w.len()],
            v_w: vec![0.0; w.len()],
            m_b: vec![0.0; b.len()],
            v_b: vec![0.0; b.len()],
            w,
            b,
            relu,
            dropout,
            frozen: false,
        }
    }
}

impl Dense {
    /// `x W + b` for the `rows` rows of `x`. (Splitting the rows between two threads made
    /// the product faster and training slower: the Adam step after it, writing weights the
    /// other core had just read, took three times as long.)
    fn affine(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut z = vec![0.0f32; rows * self.n_out];
        gemm(
            &mut z,
            x,
            &self.w,
            (rows, self.n_in, self.n_out),
            (false, false),
        );
        for row in z.chunks_exact_mut(self.n_out) {
            for (v, b) in row.iter_mut().zip(&self.b) {
                *v += b;
            }
        }
        z
    }
}

/// Fills `masks[l]` with layer `l`'s dropout mask for `rows` rows (`1 / keep` or 0 per
/// output), or empties it where the layer has no dropout or `rng` is `None` (evaluation).
fn draw_masks(
    masks: &mut [Vec<f32>],
    layers: &[Dense],
    rows: usize,
    mut rng: Option<&mut ChaCha8Rng>,
) {
    let mut draws = Vec::new();
    for (mask, layer) in masks.iter_mut().zip(layers) {
        mask.clear();
        let Some(rng) = rng.as_deref_mut().filter(|_| layer.dropout > 0.0) else {
            continue;
        };
        let keep = 1.0 - layer.dropout;
        // Raw 32-bit draws, filled in bulk, compared with the keep probability scaled to
        // 2^32.
        let cutoff = (f64::from(keep) * 4_294_967_296.0) as u64;
        draws.clear();
        draws.resize(rows * layer.n_out, 0u32);
        rng.fill(&mut draws[..]);
        mask.extend(draws.iter().map(|&d| {
            if u64::from(d) < cutoff {
                1.0 / keep
            } else {
                0.0
            }
        }));
    }
}

/// Below this many multiply-adds a GEMM runs on the calling thread: splitting it costs more
/// than it saves. Measured at full scale on two cores, with training on a pool thread (see
/// `training::in_pool`): 2^20 took an autoencoder epoch from 5.5 s to 3.7 s and a classifier
/// epoch from 2.6 s to 1.6 s; 2^18 split products too small to pay for the hand-over, and 2^24
/// left batch 32's products (about 2^23) on one thread.
const PARALLEL_GEMM_WORK: usize = 1 << 20;

/// `dst = lhs (m x k) * rhs (k x n)`, all row-major, optionally transposing an operand.
///
/// Large products use every thread of the current rayon pool. faer splits a product over
/// blocks of the *output* only; each output element's sum over `k` runs on one thread in the
/// same order whatever the number of threads, so the bytes do not depend on it (a test below
/// checks this on the network's shapes, and `training.rs` checks whole training runs).
fn gemm(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    (m, k, n): (usize, usize, usize),
    (lhs_t, rhs_t): (bool, bool),
) {
    let a = if lhs_t {
        MatRef::from_row_major_slice(lhs, k, m).transpose()
    } else {
        MatRef::from_row_major_slice(lhs, m, k)
    };
    let b = if rhs_t {
        MatRef::from_row_major_slice(rhs, n, k).transpose()
    } else {
        MatRef::from_row_major_slice(rhs, k, n)
    };
    let c = MatMut::from_row_major_slice_mut(dst, m, n);
    let par = if m * k * n >= PARALLEL_GEMM_WORK && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    };
    matmul(c, Accum::Replace, a, b, 1.0f32, par);
}

/// A stack of dense layers.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Dense>,
    step: u64,
    // Per layer: the layer's input, pre-activation and dropout mask of the last forward.
    inputs: Vec<Vec<f32>>,
    pre: Vec<Vec<f32>>,
    masks: Vec<Vec<f32>>,
}

/// Adam's hyper-parameters (Keras defaults but the learning rate).
#[derive(Debug, Clone, Copy)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Keras' epsilon.
    pub eps: f32,
}

impl Adam {
    /// Keras' defaults with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
        }
    }
}

impl Mlp {
    /// Builds a network from sizes: `sizes[0]` inputs, then one layer per further size. Hidden
    /// layers are ReLU with `dropout` after them; the last layer is linear (logits).
    pub fn new(sizes: &[usize], dropout: f32, relu_last: bool, rng: &mut ChaCha8Rng) -> Self {
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let last = i + 1 == n;
                Dense::new(
                    sizes[i],
                    sizes[i + 1],
                    !last || relu_last,
                    if last { 0.0 } else { dropout },
                    rng,
                )
            })
            .collect();
        Self::from_layers(layers)
    }

    /// A network of the given layers.
    pub fn from_layers(layers: Vec<Dense>) -> Self {
        let n = layers.len();
        Self {
            layers,
            step: 0,
            inputs: vec![Vec::new(); n],
            pre: vec![Vec::new(); n],
            masks: vec![Vec::new(); n],
        }
    }

    /// Outputs (logits of the last layer) for `x` (`rows x n_in`); dropout only if `rng` is given.
    pub fn forward(&mut self, x: &[f32], rows: usize, rng: Option<&mut ChaCha8Rng>) -> Vec<f32> {
        // The element-wise work (bias, ReLU, dropout) in the widest vector unit the CPU has,
        // as `adam_step` does; same IEEE operations whatever the unit.
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                return unsafe { self.forward_avx512(x, rows, rng) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { self.forward_avx2(x, rows, rng) };
            }
        }
        self.forward_portable(x, rows, rng)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn forward_avx512(&mut self, x: &[f32], rows: usize, rng: Option<&mut ChaCha8Rng>) -> Vec<f32> {
        self.forward_portable(x, rows, rng)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn forward_avx2(&mut self, x: &[f32], rows: usize, rng: Option<&mut ChaCha8Rng>) -> Vec<f32> {
        self.forward_portable(x, rows, rng)
    }

    #[inline(always)]
    fn forward_portable(
        &mut self,
        x: &[f32],
        rows: usize,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Vec<f32> {
        let mut masks = std::mem::take(&mut self.masks);
        let mut a = x.to_vec();
        let first_product = || self.layers.first().map(|layer| layer.affine(&a, rows));
        // While training with dropout, the masks are drawn on one thread while the first
        // layer's product runs on the other; they take the stream layer by layer, as they
        // always have.
        let mut first = if rng.is_some() && self.layers.iter().any(|l| l.dropout > 0.0) {
            rayon::join(
                || draw_masks(&mut masks, &self.layers, rows, rng),
                first_product,
            )
            .1
        } else {
            draw_masks(&mut masks, &self.layers, rows, rng);
            first_product()
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let z = match first.take() {
                Some(z) => z,
                None => layer.affine(&a, rows),
            };
            let mut out: Vec<f32> = if layer.relu {
                z.iter().map(|v| v.max(0.0)).collect()
            } else {
                z.clone()
            };
            for (o, m) in out.iter_mut().zip(&masks[l]) {
                *o *= m;
            }
            self.inputs[l] = std::mem::replace(&mut a, out);
            self.pre[l] = z;
        }
        self.masks = masks;
        a
    }

    /// Backpropagates `grad` (d loss / d output of the last forward) into the gradients.
    pub fn backward(&mut self, grad: &[f32], rows: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                return unsafe { self.backward_avx512(grad, rows) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { self.backward_avx2(grad, rows) };
            }
        }
        self.backward_portable(grad, rows);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn backward_avx512(&mut self, grad: &[f32], rows: usize) {
        self.backward_portable(grad, rows);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn backward_avx2(&mut self, grad: &[f32], rows: usize) {
        self.backward_portable(grad, rows);
    }

    #[inline(always)]
    fn backward_portable(&mut self, grad: &[f32], rows: usize) {
        let mut d = grad.to_vec();
        for l in (0..self.layers.len()).rev() {
            let layer = &mut self.layers[l];
            if !self.masks[l].is_empty() {
                for (g, m) in d.iter_mut().zip(&self.masks[l]) {
                    *g *= m;
                }
            }
            if layer.relu {
                for (g, z) in d.iter_mut().zip(&self.pre[l]) {
                    if *z <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
            // The weight gradient and the input gradient read the same `d` and write different
            // buffers: on two threads at once. Each is one GEMM computed as it would be alone,
            // so the bytes do not depend on how many threads there are.
            let Dense {
                grad_w,
                grad_b,
                w,
                n_in,
                n_out,
                frozen,
                ..
            } = layer;
            let (n_in, n_out, frozen) = (*n_in, *n_out, *frozen);
            let (inputs, d_ref, w) = (&self.inputs[l], &d, &*w);
            let ((), prev) = rayon::join(
                || {
                    if frozen {
                        return;
                    }
                    gemm(grad_w, inputs, d_ref, (n_in, rows, n_out), (true, false));
                    grad_b.iter_mut().for_each(|g| *g = 0.0);
                    for row in d_ref.chunks_exact(n_out) {
                        for (g, v) in grad_b.iter_mut().zip(row) {
                            *g += v;
                        }
                    }
                },
                || {
                    (l > 0).then(|| {
                        let mut prev = vec![0.0f32; rows * n_in];
                        gemm(&mut prev, d_ref, w, (rows, n_out, n_in), (false, true));
                        prev
                    })
                },
            );
            if let Some(prev) = prev {
                d = prev;
            }
        }
    }

    /// One Adam step with the gradients of the last `backward`.
    pub fn update(&mut self, adam: Adam) {
        self.step += 1;
        let t = self.step as i32;
        let rule = AdamStep {
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            lr: adam.lr * (1.0 - adam.beta2.powi(t)).sqrt() / (1.0 - adam.beta1.powi(t)),
        };
        // Each layer's weights in two halves, one per thread, the biases with the first: a
        // step reads only its own parameter's values, so the split does not change the bytes.
        // (A layer per thread left one thread with most of the weights: the first layers are
        // the widest.)
        for layer in self.layers.iter_mut().filter(|l| !l.frozen) {
            let Dense {
                w,
                b,
                grad_w,
                grad_b,
                m_w,
                v_w,
                m_b,
                v_b,
                ..
            } = layer;
            let mid = w.len() / 2;
            let (w0, w1) = w.split_at_mut(mid);
            let (g0, g1) = grad_w.split_at(mid);
            let (m0, m1) = m_w.split_at_mut(mid);
            let (v0, v1) = v_w.split_at_mut(mid);
            rayon::join(
                || {
                    adam_step(w0, g0, m0, v0, rule);
                    adam_step(b, grad_b, m_b, v_b, rule);
                },
                || adam_step(w1, g1, m1, v1, rule),
            );
        }
    }
}

/// One step's Adam constants, the learning rate bias-corrected.
#[derive(Clone, Copy)]
struct AdamStep {
    beta1: f32,
    beta2: f32,
    eps: f32,
    lr: f32,
}

/// Updates parameters `p` and moments `m`, `v` from gradients `g`. The step was 40% of a
/// training step when compiled for the baseline x86-64 (SSE2: 4 lanes, slow `sqrt` and
/// division); the widest vector unit is picked at run time, as in the k-NN kernel. Every
/// variant does the same IEEE operations per element (no fused multiply-add), so the bytes do
/// not depend on the CPU.
fn adam_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamStep) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { adam_step_avx512(p, g, m, v, k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { adam_step_avx2(p, g, m, v, k) };
        }
    }
    adam_step_portable(p, g, m, v, k);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn adam_step_avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamStep) {
    adam_step_portable(p, g, m, v, k);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn adam_step_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamStep) {
    adam_step_portable(p, g, m, v, k);
}

#[inline(always)]
fn adam_step_portable(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamStep) {
    // Zipped iterators (no bounds checks) so the loop vectorises.
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = flush(k.beta1 * *m + (1.0 - k.beta1) * g);
        *v = flush(k.beta2 * *v + (1.0 - k.beta2) * g * g);
        *p -= k.lr * *m / (v.sqrt() + k.eps);
    }
}

/// Flushes values too small to matter to zero. Subnormal floats (which the moments of
/// rarely seen genres decay into) are up to 100 times slower on x86; Keras runs with
/// flush-to-zero for the same reason.
#[inline]
fn flush(v: f32) -> f32 {
    if v.abs() < 1e-30 {
        0.0
    } else {
        v
    }
}

/// Mean binary cross-entropy of `sigmoid(logits)` against `targets`, computed stably, and
/// its gradient with respect to the logits.
pub fn bce_with_logits(logits: &[f32], targets: &[f32]) -> (f32, Vec<f32>) {
    let n = logits.len().max(1) as f32;
    logistic_loss(logits, targets, |_, z, y, e, s| {
        (z.max(0.0) - z * y + ln_1p_unit(e), flush((s - y) / n))
    })
}

/// Binary cross-entropy with each label's positives weighted by `positive_weight[label]`
/// (`targets` and `logits` are rows of `positive_weight.len()` labels): `-(w y ln s +
/// (1 - y) ln(1 - s))`, averaged over every entry, and its gradient `(w y + 1 - y) s - w y`.
/// With every weight 1 it is `bce_with_logits`.
pub fn weighted_bce_with_logits(
    logits: &[f32],
    targets: &[f32],
    positive_weight: &[f32],
) -> (f32, Vec<f32>) {
    let n = logits.len().max(1) as f32;
    let width = positive_weight.len().max(1);
    logistic_loss(logits, targets, |i, z, y, e, s| {
        let w = positive_weight.get(i % width).copied().unwrap_or(1.0);
        // softplus(z) = ln(1 + e^z) = -ln(1 - s); softplus(z) - z = -ln s.
        let softplus = z.max(0.0) + ln_1p_unit(e);
        (
            w * y * (softplus - z) + (1.0 - y) * softplus,
            flush(((w * y + 1.0 - y) * s - w * y) / n),
        )
    })
}

/// The mean of `term`'s losses over every entry, and its gradients. `term(i, z, y, e, s)`
/// gets entry `i`'s logit and target, `e = e^-|z|` and the sigmoid `s` of `z`, and returns
/// the entry's loss and gradient. The per-entry work runs in the widest vector unit the
/// CPU has (it was a tenth of a training step as scalar code calling libm's `roundf`); the
/// losses are then summed in order in `f64`, so the bytes do not depend on the unit.
fn logistic_loss(
    logits: &[f32],
    targets: &[f32],
    term: impl Fn(usize, f32, f32, f32, f32) -> (f32, f32),
) -> (f32, Vec<f32>) {
    #[inline(always)]
    fn terms(
        logits: &[f32],
        targets: &[f32],
        term: impl Fn(usize, f32, f32, f32, f32) -> (f32, f32),
    ) -> (Vec<f32>, Vec<f32>) {
        let (mut losses, mut grads) = (vec![0.0f32; logits.len()], vec![0.0f32; logits.len()]);
        for (i, (((&z, &y), loss), grad)) in logits
            .iter()
            .zip(targets)
            .zip(losses.iter_mut())
            .zip(grads.iter_mut())
            .enumerate()
        {
            // One exponential serves both the loss and the sigmoid.
            let e = exp_neg(z.abs());
            let s = if z >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            (*loss, *grad) = term(i, z, y, e, s);
        }
        (losses, grads)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn terms_avx512(
        logits: &[f32],
        targets: &[f32],
        term: impl Fn(usize, f32, f32, f32, f32) -> (f32, f32),
    ) -> (Vec<f32>, Vec<f32>) {
        terms(logits, targets, term)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn terms_avx2(
        logits: &[f32],
        targets: &[f32],
        term: impl Fn(usize, f32, f32, f32, f32) -> (f32, f32),
    ) -> (Vec<f32>, Vec<f32>) {
        terms(logits, targets, term)
    }

    let (losses, grads) = 'computed: {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                break 'computed unsafe { terms_avx512(logits, targets, term) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                break 'computed unsafe { terms_avx2(logits, targets, term) };
            }
        }
        terms(logits, targets, term)
    };
    let total: f64 = losses.iter().map(|&l| f64::from(l)).sum();
    ((total / logits.len().max(1) as f64) as f32, grads)
}

/// e^(-x) for x >= 0, to within 5e-7 relative: 2^-n e^-r by Cody-Waite reduction and a
/// degree-6 polynomial. Plain arithmetic the compiler vectorises, where libm's `expf` is a
/// call per element (it dominated training time).
#[inline]
fn exp_neg(x: f32) -> f32 {
    // Cody-Waite: x = n ln2 + r with |r| <= ln2 / 2, ln2 split in two so n ln2 is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    if x > 87.0 {
        return 0.0;
    }
    let n = (x * std::f32::consts::LOG2_E).round();
    let u = -((x - n * LN2_HI) - n * LN2_LO);
    let p = 1.0
        + u * (1.0
            + u * (0.5 + u * (1.0 / 6.0 + u * (1.0 / 24.0 + u * (1.0 / 120.0 + u / 720.0)))));
    // 2^-n by building the exponent bits; n is in [0, 126] here.
    let scale = f32::from_bits(((127 - n as i32).max(1) as u32) << 23);
    p * scale
}

/// ln(1 + e) for e in [0, 1], to about 1e-7: ln((1 + s) / (1 - s)) = 2 atanh(s) with
/// s = e / (2 + e) <= 1/3, by its odd series.
#[inline]
fn ln_1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    2.0 * s
        * (1.0
            + s2 * (1.0 / 3.0
                + s2 * (1.0 / 5.0
                    + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 / 13.0))))))
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn loss_of(net: &mut Mlp, x: &[f32], y: &[f32], rows: usize) -> f64 {
        let out = net.forward(x, rows, None);
        f64::from(bce_with_logits(&out, y).0)
    }

    #[test]
    fn a_parallel_gemm_gives_the_bytes_of_a_sequential_one_whatever_the_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        // The shapes of training at batch 256 and batch 32 (all over `PARALLEL_GEMM_WORK`):
        // forward, weight gradient (lhs transposed), input gradient.
        for &(m, k, n, t) in &[
            (32, 518, 512, (false, false)),
            (518, 32, 512, (true, false)),
            (32, 512, 518, (false, true)),
            (32, 256, 164, (false, false)),
            (256, 32, 164, (true, false)),
            (256, 518, 512, (false, false)),
            (518, 256, 512, (true, false)),
            (256, 512, 518, (false, true)),
            (256, 512, 512, (false, false)),
        ] {
            assert!(m * k * n >= PARALLEL_GEMM_WORK);
            let lhs: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let rhs: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let with = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"));
                pool.install(|| {
                    let mut dst = vec![0.0f32; m * n];
                    gemm(&mut dst, &lhs, &rhs, (m, k, n), t);
                    dst.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                })
            };
            let one = with(1);
            for threads in [2, 3, 4, 7] {
                assert!(
                    one == with(threads),
                    "{m}x{k}x{n} {t:?}: {threads} threads differ"
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rows, sizes) = (4, [5usize, 7, 6, 3]);
        let mut net = Mlp::new(&sizes, 0.0, false, &mut rng);
        let x: Vec<f32> = (0..rows * 5).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = (0..rows * 3)
            .map(|_| f32::from(rng.random_range(0..2u8)))
            .collect();
        let out = net.forward(&x, rows, None);
        let (_, grad) = bce_with_logits(&out, &y);
        net.backward(&grad, rows);
        let h = 1e-3f32;
        for l in 0..net.layers.len() {
            for i in (0..net.layers[l].w.len()).step_by(5) {
                let analytic = f64::from(net.layers[l].grad_w[i]);
                let original = net.layers[l].w[i];
                net.layers[l].w[i] = original + h;
                let up = loss_of(&mut net, &x, &y, rows);
                net.layers[l].w[i] = original - h;
                let down = loss_of(&mut net, &x, &y, rows);
                net.layers[l].w[i] = original;
                let numeric = (up - down) / (2.0 * f64::from(h));
                assert!(
                    (analytic - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "layer {l} weight {i}: {analytic} vs {numeric}"
                );
            }
            for i in 0..net.layers[l].b.len() {
                let analytic = f64::from(net.layers[l].grad_b[i]);
                let original = net.layers[l].b[i];
                net.layers[l].b[i] = original + h;
                let up = loss_of(&mut net, &x, &y, rows);
                net.layers[l].b[i] = original - h;
                let down = loss_of(&mut net, &x, &y, rows);
                net.layers[l].b[i] = original;
                let numeric = (up - down) / (2.0 * f64::from(h));
                assert!(
                    (analytic - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "layer {l} bias {i}: {analytic} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn fast_exp_and_log_match_libm() {
        for i in 0..2000 {
            let x = i as f32 * 0.05;
            let (fast, exact) = (exp_neg(x), (-x).exp());
            assert!(
                (fast - exact).abs() <= 5e-7 * exact + 2e-38,
                "exp(-{x}): {fast} vs {exact}"
            );
            let e = i as f32 / 2000.0;
            assert!((ln_1p_unit(e) - e.ln_1p()).abs() < 2e-7, "ln(1 + {e})");
        }
    }

    #[test]
    fn weighted_bce_is_bce_at_weight_one_and_its_gradient_is_right() {
        let logits = [0.3f32, -1.2, 2.0, 0.0, -0.4, 1.5];
        let targets = [1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0];
        let (plain, plain_grad) = bce_with_logits(&logits, &targets);
        let (same, same_grad) = weighted_bce_with_logits(&logits, &targets, &[1.0, 1.0, 1.0]);
        assert!((plain - same).abs() < 1e-6);
        for (a, b) in plain_grad.iter().zip(&same_grad) {
            assert!((a - b).abs() < 1e-7);
        }
        let weights = [4.0f32, 1.0, 0.5];
        let (_, grad) = weighted_bce_with_logits(&logits, &targets, &weights);
        for i in 0..logits.len() {
            let at = |dz: f32| {
                let mut moved = logits;
                moved[i] += dz;
                f64::from(weighted_bce_with_logits(&moved, &targets, &weights).0)
            };
            let numeric = (at(1e-3) - at(-1e-3)) / 2e-3;
            assert!(
                (numeric - f64::from(grad[i])).abs() < 1e-4,
                "entry {i}: {numeric} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn bce_is_stable_for_saturated_logits() {
        let (loss, grad) = bce_with_logits(&[80.0, -80.0, 80.0], &[1.0, 0.0, 0.0]);
        assert!(loss.is_finite() && grad.iter().all(|g| g.is_finite()));
        assert!((loss - 80.0 / 3.0).abs() < 1e-3);
    }

    #[test]
    fn dropout_masks_and_training_reduce_the_loss() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut net = Mlp::new(&[3, 16, 2], 0.2, false, &mut rng);
        let x: Vec<f32> = (0..64 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f32> = x
            .chunks(3)
            .flat_map(|r| {
                [
                    f32::from(u8::from(r[0] > 0.0)),
                    f32::from(u8::from(r[1] + r[2] > 0.0)),
                ]
            })
            .collect();
        let before = loss_of(&mut net, &x, &y, 64);
        for _ in 0..300 {
            let out = net.forward(&x, 64, Some(&mut rng));
            let (_, grad) = bce_with_logits(&out, &y);
            net.backward(&grad, 64);
            net.update(Adam::new(1e-2));
        }
        assert!(loss_of(&mut net, &x, &y, 64) < before * 0.5);
    }
}
