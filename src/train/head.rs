//! The linear head trained on frozen backbone embeddings: logits
//! `z = W x + b` (`W` is `[outputs, D]`, `x` one `[D]` f32 embedding), its
//! three losses with their gradients, class-balanced weights, L2
//! regularisation, full-batch L-BFGS and early stopping on a held-out split.
//!
//! The losses differ in what a *negative* image (a "nothing" folder: empty
//! habitat, other animals) is taught:
//!
//! * [`Loss::Sigmoid`]: one-vs-rest sigmoid outputs with binary
//!   cross-entropy per label; a negative has the all-zero target, so every
//!   label learns to stay low on it (the remedy for "the other animals still
//!   get a confident known label").
//! * [`Loss::SoftmaxNothing`]: softmax cross-entropy over the labels plus one
//!   extra "nothing" class that negatives are taught to be (the usual first
//!   attempt, kept as a baseline).
//! * [`Loss::Entropic`]: the Entropic Open-Set loss (Dhamija, Günther, Boult
//!   2018, "Reducing network agnostophobia"): softmax cross-entropy for the
//!   labels, and for negatives the uniform target `1/N` over the N labels.
//!
//! Training is deterministic for a seed: the seed draws the initial weights,
//! the rest (full batch, fixed order, one thread) is exact arithmetic.

use crate::decision::score::sigmoid;

/// The training loss of the head (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Loss {
    /// One-vs-rest sigmoid outputs, binary cross-entropy; negatives have an all-zero target.
    Sigmoid,
    /// Softmax over the labels and an extra "nothing" class that negatives are taught.
    SoftmaxNothing,
    /// Entropic Open-Set loss (Dhamija et al. 2018): negatives get a uniform softmax target.
    Entropic,
}

impl Loss {
    /// The name on the command line and in manifests: `sigmoid`, `softmax-nothing`, `entropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Loss::Sigmoid => "sigmoid",
            Loss::SoftmaxNothing => "softmax-nothing",
            Loss::Entropic => "entropic",
        }
    }

    /// Number of head outputs for `labels` labels (one more for `softmax-nothing`).
    pub fn outputs(self, labels: usize) -> usize {
        match self {
            Loss::SoftmaxNothing => labels + 1,
            Loss::Sigmoid | Loss::Entropic => labels,
        }
    }

    /// The loss of one example with logits `z` and target `target`
    /// (`Some(label)`, or `None` for a negative), and its gradient
    /// `∂loss/∂z` written into `grad` (same length as `z`). `z` has
    /// [`Loss::outputs`] entries; for `softmax-nothing` the last one is the
    /// "nothing" class.
    ///
    /// * sigmoid: `Σ_j softplus(z_j) − t_j z_j` with `t` one-hot (all zero
    ///   for a negative); gradient `σ(z) − t`.
    /// * softmax-nothing: `logΣexp(z) − z_y` (`y` = the last class for a
    ///   negative); gradient `softmax(z) − onehot(y)`.
    /// * entropic: as softmax for a label; for a negative
    ///   `logΣexp(z) − mean(z)` (cross-entropy with the uniform target);
    ///   gradient `softmax(z) − 1/N`.
    pub fn loss_and_grad(self, z: &[f64], target: Option<usize>, grad: &mut [f64]) -> f64 {
        match self {
            Loss::Sigmoid => {
                let mut loss = 0.0;
                for (j, (&zj, g)) in z.iter().zip(grad.iter_mut()).enumerate() {
                    let t = if target == Some(j) { 1.0 } else { 0.0 };
                    loss += softplus(zj) - t * zj;
                    *g = sigmoid64(zj) - t;
                }
                loss
            }
            Loss::SoftmaxNothing | Loss::Entropic => {
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|&v| (v - m).exp()).sum();
                let lse = m + sum.ln();
                for (g, &zj) in grad.iter_mut().zip(z) {
                    *g = (zj - lse).exp();
                }
                let y = match (self, target) {
                    (_, Some(y)) => y,
                    (Loss::SoftmaxNothing, None) => z.len() - 1,
                    _ => {
                        // Entropic negative: uniform target over the labels.
                        let n = z.len() as f64;
                        for g in grad.iter_mut() {
                            *g -= 1.0 / n;
                        }
                        return lse - z.iter().sum::<f64>() / n;
                    }
                };
                grad[y] -= 1.0;
                lse - z[y]
            }
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid64(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Embeddings with their targets: row `i` of `rows` (`[n, dim]`, row-major
/// f32) is one image's embedding, `targets[i]` its label index or `None`
/// for a negative ("nothing") image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Examples {
    /// Embedding width D.
    pub dim: usize,
    /// `[n, D]` row-major.
    pub rows: Vec<f32>,
    /// Label index, or `None` for a negative.
    pub targets: Vec<Option<usize>>,
}

impl Examples {
    /// An empty set of `dim`-wide embeddings.
    pub fn new(dim: usize) -> Examples {
        Examples {
            dim,
            ..Examples::default()
        }
    }

    /// Adds one embedding (must be `dim` wide) with its target.
    pub fn push(&mut self, embedding: &[f32], target: Option<usize>) {
        debug_assert_eq!(embedding.len(), self.dim);
        self.rows.extend_from_slice(embedding);
        self.targets.push(target);
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Embedding of example `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// Per-example weights so that each label and the negatives together
    /// weigh the same (`n / (groups · n_group)`), or all 1 without
    /// `balanced`. The "nothing" pile is often much larger than a label.
    pub fn weights(&self, labels: usize, balanced: bool) -> Vec<f64> {
        if !balanced {
            return vec![1.0; self.len()];
        }
        let mut counts = vec![0usize; labels + 1];
        for t in &self.targets {
            counts[t.unwrap_or(labels).min(labels)] += 1;
        }
        let groups = counts.iter().filter(|&&c| c > 0).count().max(1);
        let n = self.len() as f64;
        self.targets
            .iter()
            .map(|t| n / (groups as f64 * counts[t.unwrap_or(labels).min(labels)] as f64))
            .collect()
    }
}

/// A trained linear head: `logits = weight · x + bias`, with `weight`
/// `[outputs, dim]` row-major f32 and `bias` `[outputs]`, applied to the
/// backbone's raw embedding `x` (`[dim]` f32; the input standardisation used
/// in training is folded into `weight` and `bias`).
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The loss it was trained with (decides the activation and outputs).
    pub loss: Loss,
    /// Number of labels N (outputs are N, or N + 1 for `softmax-nothing`).
    pub labels: usize,
    /// Embedding width D.
    pub dim: usize,
    /// `[outputs, D]` row-major.
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

impl Head {
    /// Number of outputs: N, or N + 1 for `softmax-nothing`.
    pub fn outputs(&self) -> usize {
        self.loss.outputs(self.labels)
    }

    /// The logits `[outputs]` for one embedding `[D]`, accumulated in f64.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.dim)
            .zip(&self.bias)
            .map(|(w, b)| {
                (w.iter()
                    .zip(x)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum::<f64>()
                    + f64::from(*b)) as f32
            })
            .collect()
    }

    /// The 0..1 per-label scores `[N]` the exported graph's `probabilities`
    /// output holds: sigmoid of each logit (`sigmoid`), softmax over all
    /// outputs without the "nothing" column (`softmax-nothing`: they sum to
    /// 1 − P(nothing)), or softmax (`entropic`).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let z = self.logits(x);
        match self.loss {
            Loss::Sigmoid => z.iter().map(|&v| sigmoid(v)).collect(),
            Loss::SoftmaxNothing | Loss::Entropic => {
                let mut p = Vec::new();
                crate::decision::score::softmax(&z, &mut p);
                p.truncate(self.labels);
                p
            }
        }
    }
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// L2 penalty `λ/2 · ‖W‖²` on the weights of standardised inputs (not the bias).
    pub l2: f64,
    /// At most this many full-batch L-BFGS iterations ("epochs": each one
    /// computes the loss and gradient over every training example, more
    /// than once when the line search backtracks).
    pub max_epochs: usize,
    /// Stop after this many iterations without a lower held-out loss.
    pub patience: usize,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Class-balanced example weights (see [`Examples::weights`]).
    pub class_balanced: bool,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            loss: Loss::Sigmoid,
            l2: 1e-3,
            max_epochs: 300,
            patience: 20,
            seed: 42,
            class_balanced: true,
        }
    }
}

/// What training did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (lowest held-out loss; 0 = the initial weights).
    pub best_epoch: usize,
    /// Training objective (weighted loss + L2) at the kept weights.
    pub train_loss: f64,
    /// Held-out weighted loss at the kept weights.
    pub val_loss: f64,
    /// Per epoch: training objective, held-out loss.
    pub history: Vec<(f64, f64)>,
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// No training examples, or none of some label.
    #[error("{0}")]
    Data(String),
    /// The loss became NaN or infinite (a broken embedding, or a step size far too large).
    #[error(
        "the training loss became {0} at epoch {1}; check the embeddings (NaN or huge values), or raise --l2"
    )]
    NotFinite(f64, usize),
}

/// Input standardisation `(x − mean) / std` per embedding dimension.
#[derive(Debug, Clone)]
struct Standardise {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

impl Standardise {
    fn fit(ex: &Examples) -> Standardise {
        let (n, d) = (ex.len().max(1) as f64, ex.dim);
        let mut mean = vec![0.0; d];
        for i in 0..ex.len() {
            for (m, &v) in mean.iter_mut().zip(ex.row(i)) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; d];
        for i in 0..ex.len() {
            for ((s, &v), m) in var.iter_mut().zip(ex.row(i)).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let inv_std = var
            .into_iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-6 {
                    1.0 / sd
                } else {
                    0.0
                }
            })
            .collect();
        Standardise { mean, inv_std }
    }

    fn apply(&self, ex: &Examples) -> Vec<f64> {
        let mut out = Vec::with_capacity(ex.rows.len());
        for i in 0..ex.len() {
            out.extend(
                ex.row(i)
                    .iter()
                    .zip(&self.mean)
                    .zip(&self.inv_std)
                    .map(|((&v, m), s)| (f64::from(v) - m) * s),
            );
        }
        out
    }
}

/// Parameters in f64 during training: `w` `[K, D]`, `b` `[K]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `[outputs, D]` row-major.
    pub w: Vec<f64>,
    /// `[outputs]`.
    pub b: Vec<f64>,
}

/// The training objective on rows `x` (`[n, D]` row-major f64) with
/// targets and per-example weights: `Σ_i w_i loss_i / Σ_i w_i + λ/2 ‖W‖²`,
/// and its gradient (same shapes as `p`). Public for the finite-difference
/// tests.
pub fn objective(
    loss: Loss,
    p: &Params,
    x: &[f64],
    targets: &[Option<usize>],
    weights: &[f64],
    l2: f64,
) -> (f64, Params) {
    let k = p.b.len();
    let d = p.w.len() / k.max(1);
    let total: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut g = Params {
        w: p.w.iter().map(|w| l2 * w).collect(),
        b: vec![0.0; k],
    };
    let mut value = 0.5 * l2 * p.w.iter().map(|w| w * w).sum::<f64>();
    let mut z = vec![0.0; k];
    let mut gz = vec![0.0; k];
    for (i, (t, wi)) in targets.iter().zip(weights).enumerate() {
        let xi = &x[i * d..(i + 1) * d];
        for (j, zj) in z.iter_mut().enumerate() {
            *zj = p.w[j * d..(j + 1) * d]
                .iter()
                .zip(xi)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                + p.b[j];
        }
        value += wi / total * loss.loss_and_grad(&z, *t, &mut gz);
        for (j, gj) in gz.iter().enumerate() {
            let s = gj * wi / total;
            if s == 0.0 {
                continue;
            }
            g.b[j] += s;
            for (gw, xv) in g.w[j * d..(j + 1) * d].iter_mut().zip(xi) {
                *gw += s * xv;
            }
        }
    }
    (value, g)
}

/// Trains a head on `train` for `labels` labels, keeping the weights with
/// the lowest class-weighted loss on `val` (early stopping; with an empty
/// `val`, the last weights). Deterministic for `cfg.seed`.
///
/// # Errors
/// [`TrainError::Data`] without training examples, with mismatched widths
/// or without examples of some label; [`TrainError::NotFinite`] when the
/// loss diverges.
pub fn train(
    train: &Examples,
    val: &Examples,
    labels: usize,
    cfg: &TrainConfig,
) -> Result<(Head, TrainReport), TrainError> {
    if train.is_empty() || train.dim == 0 {
        return Err(TrainError::Data("no training embeddings".into()));
    }
    if !val.is_empty() && val.dim != train.dim {
        return Err(TrainError::Data(format!(
            "held-out embeddings are {}-wide, training ones {}-wide",
            val.dim, train.dim
        )));
    }
    if let Some(l) = (0..labels).find(|l| !train.targets.contains(&Some(*l))) {
        return Err(TrainError::Data(format!(
            "label #{l} has no training image"
        )));
    }
    let d = train.dim;
    let k = cfg.loss.outputs(labels);
    let st = Standardise::fit(train);
    let xt = st.apply(train);
    let xv = st.apply(val);
    let wt = train.weights(labels, cfg.class_balanced);
    let wv = val.weights(labels, cfg.class_balanced);
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    // Small random initial weights: N(0, 0.01²) by Box–Muller.
    let mut normal = || {
        let u1 = rng.f64().max(f64::MIN_POSITIVE);
        let u2 = rng.f64();
        0.01 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let p = Params {
        w: (0..k * d).map(|_| normal()).collect(),
        b: vec![0.0; k],
    };
    // Full-batch L-BFGS (Nocedal & Wright 2006, algorithm 7.4, memory 10)
    // with a backtracking (Armijo) line search; the parameters as one
    // vector, weights then biases.
    let split = |x: &[f64]| Params {
        w: x[..k * d].to_vec(),
        b: x[k * d..].to_vec(),
    };
    let eval = |x: &[f64]| {
        let (f, g) = objective(cfg.loss, &split(x), &xt, &train.targets, &wt, cfg.l2);
        let mut flat = g.w;
        flat.extend(g.b);
        (f, flat)
    };
    let val_loss = |x: &[f64]| objective(cfg.loss, &split(x), &xv, &val.targets, &wv, 0.0).0;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
    let mut x: Vec<f64> = p.w.iter().chain(&p.b).copied().collect();
    let (mut f, mut g) = eval(&x);
    let mut memory: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let fv0 = if val.is_empty() { f } else { val_loss(&x) };
    let mut history = vec![(f, fv0)];
    let mut best = (fv0, 0usize, x.clone(), f);
    let mut epochs = 0;
    for epoch in 1..=cfg.max_epochs.max(1) {
        epochs = epoch;
        // Two-loop recursion: r ≈ H⁻¹ g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(memory.len());
        for (s, y, rho) in memory.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        let gamma = match memory.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            None => 1.0 / dot(&g, &g).sqrt().max(1.0),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in memory.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            memory.clear();
            dir = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        let mut t = 1.0;
        let (x_new, f_new, g_new) = loop {
            let xn: Vec<f64> = x.iter().zip(&dir).map(|(x, d)| x + t * d).collect();
            let (fnew, gnew) = eval(&xn);
            if (fnew.is_finite() && fnew <= f + 1e-4 * t * slope) || t < 1e-12 {
                break (xn, fnew, gnew);
            }
            t *= 0.5;
        };
        if !f_new.is_finite() {
            return Err(TrainError::NotFinite(f_new, epoch));
        }
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            memory.push_back((s, y, 1.0 / sy));
            if memory.len() > 10 {
                memory.pop_front();
            }
        }
        let improvement = f - f_new;
        (x, f, g) = (x_new, f_new, g_new);
        let fv = if val.is_empty() { f } else { val_loss(&x) };
        history.push((f, fv));
        if fv < best.0 || val.is_empty() {
            best = (fv, epoch, x.clone(), f);
        } else if epoch - best.1 >= cfg.patience {
            break;
        }
        // Converged: the gradient vanished or the objective stopped moving.
        if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) < 1e-7
            || improvement.abs() < 1e-12 * f.abs().max(1.0)
        {
            break;
        }
    }
    let (val_loss, best_epoch, x, train_loss) = best;
    let p = split(&x);
    // Fold the standardisation: W (x − μ) ⊙ s + b = (W ⊙ s) x + (b − Σ W ⊙ s ⊙ μ).
    let mut weight = Vec::with_capacity(k * d);
    let mut bias = Vec::with_capacity(k);
    for j in 0..k {
        let row = &p.w[j * d..(j + 1) * d];
        let mut b = p.b[j];
        for ((w, s), mu) in row.iter().zip(&st.inv_std).zip(&st.mean) {
            weight.push((w * s) as f32);
            b -= w * s * mu;
        }
        bias.push(b as f32);
    }
    Ok((
        Head {
            loss: cfg.loss,
            labels,
            dim: d,
            weight,
            bias,
        },
        TrainReport {
            epochs,
            best_epoch,
            train_loss,
            val_loss,
            history,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOSSES: [Loss; 3] = [Loss::Sigmoid, Loss::SoftmaxNothing, Loss::Entropic];

    fn examples(seed: u64, n: usize, d: usize, labels: usize) -> Examples {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut ex = Examples::new(d);
        for i in 0..n {
            // Labels 0..labels, and every fourth a negative.
            let t = (i % 4 != 3).then_some(i % labels);
            let row: Vec<f32> = (0..d)
                .map(|j| {
                    rng.f32() * 2.0 - 1.0
                        + if t.map(|t| t % d) == Some(j) {
                            2.0
                        } else {
                            0.0
                        }
                })
                .collect();
            ex.push(&row, t);
        }
        ex
    }

    #[test]
    fn per_example_gradients_match_finite_differences() {
        let z = [0.7, -1.3, 2.1, 0.05];
        for loss in LOSSES {
            for target in [Some(0), Some(2), None] {
                let mut g = [0.0; 4];
                loss.loss_and_grad(&z, target, &mut g);
                for j in 0..4 {
                    let h = 1e-6;
                    let mut zp = z;
                    zp[j] += h;
                    let mut zm = z;
                    zm[j] -= h;
                    let mut s = [0.0; 4];
                    let fd = (loss.loss_and_grad(&zp, target, &mut s)
                        - loss.loss_and_grad(&zm, target, &mut s))
                        / (2.0 * h);
                    assert!(
                        (fd - g[j]).abs() < 1e-7,
                        "{loss} target {target:?} dz{j}: analytic {} finite difference {fd}",
                        g[j]
                    );
                }
            }
        }
    }

    #[test]
    fn objective_gradient_matches_finite_differences() {
        let (d, labels) = (5, 3);
        let ex = examples(1, 24, d, labels);
        let x: Vec<f64> = ex.rows.iter().map(|&v| f64::from(v)).collect();
        let w = ex.weights(labels, true);
        for loss in LOSSES {
            let k = loss.outputs(labels);
            let mut rng = fastrand::Rng::with_seed(7);
            let p = Params {
                w: (0..k * d).map(|_| rng.f64() - 0.5).collect(),
                b: (0..k).map(|_| rng.f64() - 0.5).collect(),
            };
            let (_, g) = objective(loss, &p, &x, &ex.targets, &w, 0.1);
            let h = 1e-6;
            for idx in 0..k * d + k {
                let bump = |delta: f64| {
                    let mut q = p.clone();
                    if idx < k * d {
                        q.w[idx] += delta;
                    } else {
                        q.b[idx - k * d] += delta;
                    }
                    objective(loss, &q, &x, &ex.targets, &w, 0.1).0
                };
                let fd = (bump(h) - bump(-h)) / (2.0 * h);
                let an = if idx < k * d {
                    g.w[idx]
                } else {
                    g.b[idx - k * d]
                };
                assert!(
                    (fd - an).abs() < 1e-6,
                    "{loss} parameter {idx}: analytic {an} finite difference {fd}"
                );
            }
        }
    }

    #[test]
    fn all_zero_targets_push_every_sigmoid_output_down() {
        // A negative under the sigmoid loss: the target is all zero, so the
        // gradient is σ(z) (positive on every output: each logit is lowered)
        // and the loss is Σ softplus(z_j).
        let z = [0.0, 2.0, -3.0];
        let mut g = [0.0; 3];
        let l = Loss::Sigmoid.loss_and_grad(&z, None, &mut g);
        let want: f64 = z.iter().map(|&v| (1.0 + f64::exp(v)).ln()).sum();
        assert!((l - want).abs() < 1e-12, "{l} vs {want}");
        assert!((g[0] - 0.5).abs() < 1e-12);
        assert!((g[1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        assert!(g.iter().all(|&v| v > 0.0));
        // Entropic negative: the uniform target; at equal logits the gradient is zero.
        let mut g = [0.0; 3];
        let l = Loss::Entropic.loss_and_grad(&[1.5; 3], None, &mut g);
        assert!((l - 3f64.ln()).abs() < 1e-12, "{l}");
        assert!(g.iter().all(|v| v.abs() < 1e-12), "{g:?}");
        // softmax-nothing negative: the target is the last ("nothing") class.
        let mut g = [0.0; 3];
        Loss::SoftmaxNothing.loss_and_grad(&[0.0; 3], None, &mut g);
        assert!((g[2] - (1.0 / 3.0 - 1.0)).abs() < 1e-12 && (g[0] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn sigmoid_training_keeps_negatives_below_one_half_on_every_label() {
        // 20 of the 80 examples are negatives (all-zero targets) drawn from
        // the same box as the labels but without their bump: after training
        // nearly all of them score below 0.5 on every label, while the
        // labelled ones score above 0.5 on their own label.
        let (d, labels) = (4, 2);
        let ex = examples(3, 80, d, labels);
        let (head, rep) = train(&ex, &Examples::new(d), labels, &TrainConfig::default()).unwrap();
        assert!(rep.epochs > 10 && rep.epochs <= 300, "{rep:?}");
        let (mut neg_high, mut known_high, mut known) = (0, 0, 0);
        for i in 0..ex.len() {
            let p = head.probabilities(ex.row(i));
            match ex.targets[i] {
                None => neg_high += usize::from(p.iter().any(|&v| v >= 0.5)),
                Some(t) => {
                    known += 1;
                    known_high += usize::from(p[t] >= 0.5);
                }
            }
        }
        assert!(
            neg_high <= 2,
            "{neg_high} of 20 negatives score 0.5 or more"
        );
        assert!(known_high * 10 >= known * 9, "{known_high} of {known}");
    }

    #[test]
    fn class_weights_balance_labels_and_negatives() {
        let mut ex = Examples::new(1);
        for t in [Some(0), Some(1), Some(1), None, None, None, None, None] {
            ex.push(&[0.0], t);
        }
        // 8 examples, 3 groups: label 0 (1), label 1 (2), negatives (5).
        let w = ex.weights(2, true);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(w[0], 8.0 / 3.0) && close(w[1], 8.0 / 6.0) && close(w[3], 8.0 / 15.0));
        assert!(close(w[0], 2.0 * w[1]));
        assert!(close(w.iter().sum::<f64>(), 8.0));
        assert_eq!(ex.weights(2, false), vec![1.0; 8]);
    }

    #[test]
    fn training_is_deterministic_for_a_seed_and_folds_standardisation() {
        let (d, labels) = (6, 3);
        let tr = examples(11, 60, d, labels);
        let va = examples(12, 20, d, labels);
        for loss in LOSSES {
            let cfg = TrainConfig {
                loss,
                max_epochs: 80,
                ..TrainConfig::default()
            };
            let (a, ra) = train(&tr, &va, labels, &cfg).unwrap();
            let (b, rb) = train(&tr, &va, labels, &cfg).unwrap();
            assert_eq!(a, b, "{loss}: same seed, different head");
            assert_eq!(ra, rb);
            let (c, _) = train(&tr, &va, labels, &TrainConfig { seed: 43, ..cfg }).unwrap();
            assert_ne!(a.weight, c.weight, "{loss}: the seed changes nothing");
            assert_eq!(a.outputs(), loss.outputs(labels));
            assert_eq!(a.weight.len(), a.outputs() * d);
            // The held-out loss went down from the initial weights.
            assert!(ra.val_loss < ra.history[0].1, "{loss}: {ra:?}");
            // Training accuracy on the labels is high on this easy data.
            let right = (0..tr.len())
                .filter(|&i| {
                    tr.targets[i].is_some_and(|t| {
                        let p = a.probabilities(tr.row(i));
                        (0..labels).all(|j| p[j] <= p[t])
                    })
                })
                .count();
            let known = tr.targets.iter().filter(|t| t.is_some()).count();
            assert!(right * 10 >= known * 9, "{loss}: {right}/{known}");
        }
    }

    #[test]
    fn a_label_without_training_images_is_refused() {
        let mut ex = Examples::new(2);
        ex.push(&[1.0, 0.0], Some(0));
        ex.push(&[0.0, 1.0], None);
        let e = train(&ex, &Examples::new(2), 2, &TrainConfig::default()).unwrap_err();
        assert!(e.to_string().contains("label #1"), "{e}");
    }
}
