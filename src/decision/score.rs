//! Score functions: the model's raw output → per-label scores and one
//! confidence per frame (higher = more confident that the frame shows one of
//! the labels).
//!
//! | [`ScoreFn`] | confidence of the top label | range | source |
//! | --- | --- | --- | --- |
//! | `msp` | its softmax probability (maximum softmax probability) | 0..1 | Hendrycks & Gimpel 2017 |
//! | `msp_temp` | the same at a temperature T fitted on calibration data ([`fit_temperature`]) | 0..1 | Guo et al. 2017 |
//! | `max_logit` | its raw logit ([`max_logit`]) | any | Vaze et al. 2022 |
//! | `energy` | the frame's negative energy `log Σ exp(z)` ([`neg_energy`]) | any | Liu et al. 2020 |
//! | `sigmoid` | its sigmoid score (one-vs-rest heads) | 0..1 | e.g. Vaze et al. 2022, sec. 5; the training issue |
//! | `knn` | minus the distance to the k-th nearest training embedding ([`super::knn`]) | -2..0 | Sun et al. 2022 |
//!
//! With label groups (one published label = several model classes; other
//! classes are "none of my labels"), a group's probability is the sum of its
//! members' softmax probabilities, its logit is the log-sum-exp of its
//! members' logits (so that softmax over group logits gives the same
//! probabilities), its sigmoid score the best member's, and the energy is
//! taken over the grouped classes only.
//!
//! The label of a frame is always the head's top label (highest probability);
//! `energy` and `knn` only give the confidence.
//!
//! Building blocks:
//!
//! * softmax: `exp(z_i) / Σ_j exp(z_j)`, computed as `exp(z_i - max z)` for
//!   numerical stability.
//! * sigmoid: `1 / (1 + exp(-z_i))` per label, for one-vs-rest heads, where
//!   every label can be low at once (the remedy for "none of my labels").

use crate::model::manifest::{Activation, OutputKind};
pub use crate::model::score_fn::ScoreFn;

/// Writes softmax(`logits`) into `out` (cleared first; no reallocation once
/// `out` has the capacity). Non-finite logits give an all-zero result.
pub fn softmax(logits: &[f32], out: &mut Vec<f32>) {
    softmax_at(logits, 1.0, out);
}

/// Writes softmax(`logits / temperature`) into `out` (temperature scaling,
/// Guo et al. 2017; cleared first, no reallocation once `out` has the
/// capacity). `temperature` = 1 is [`softmax`].
pub fn softmax_at(logits: &[f32], temperature: f32, out: &mut Vec<f32>) {
    out.clear();
    let max = logits
        .iter()
        .map(|z| z / temperature)
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        out.resize(logits.len(), 0.0);
        return;
    }
    let mut sum = 0.0f32;
    for &z in logits {
        let e = (z / temperature - max).exp();
        sum += e;
        out.push(e);
    }
    if sum.is_finite() && sum > 0.0 {
        out.iter_mut().for_each(|v| *v /= sum);
    } else {
        out.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Max-logit confidence: the largest raw logit (Vaze, Han, Vedaldi &
/// Zisserman 2022, "Open-Set Recognition: a Good Closed-Set Classifier is All
/// You Need?"). Unbounded (not 0..1); `None` for an empty or NaN input.
pub fn max_logit(logits: &[f32]) -> Option<f32> {
    if logits.iter().any(|z| z.is_nan()) {
        return None;
    }
    logits.iter().copied().reduce(f32::max)
}

/// Negative energy confidence `T · log Σ_j exp(z_j / T)` at temperature `t`
/// (Liu, Wang, Owens & Li 2020, "Energy-based Out-of-distribution
/// Detection"; the energy is its negation). Higher = more in-distribution.
/// Computed with the log-sum-exp shift, so large logits do not overflow.
/// `None` for an empty input, a NaN, or a non-positive temperature.
pub fn neg_energy(logits: &[f32], t: f32) -> Option<f32> {
    if t.is_nan() || t <= 0.0 || logits.iter().any(|z| z.is_nan()) {
        return None;
    }
    let m = logits.iter().copied().reduce(f32::max)? / t;
    if !m.is_finite() {
        return Some(m * t);
    }
    let sum: f64 = logits.iter().map(|&z| f64::from(z / t - m).exp()).sum();
    Some(t * (m + sum.ln() as f32))
}

/// Logistic sigmoid of one logit, stable for large |z|.
pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Turns the scores output of a model into 0..1 per-label scores per the
/// manifest: logits go through softmax or sigmoid, probabilities are copied
/// (and clamped to 0..1). NaN becomes 0.
pub fn to_scores(raw: &[f32], kind: OutputKind, activation: Activation, out: &mut Vec<f32>) {
    match (kind, activation) {
        (OutputKind::Logits, Activation::Softmax) => softmax(raw, out),
        (OutputKind::Logits, Activation::Sigmoid) => {
            out.clear();
            out.extend(
                raw.iter()
                    .map(|&z| if z.is_nan() { 0.0 } else { sigmoid(z) }),
            );
        }
        (OutputKind::Probabilities, _) => {
            out.clear();
            out.extend(
                raw.iter()
                    .map(|&p| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }),
            );
        }
    }
}

/// `log Σ exp(v)` in f64, stable; `-inf` for an empty input.
pub fn log_sum_exp(v: impl Iterator<Item = f32> + Clone) -> f64 {
    let m = v.clone().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return f64::from(m);
    }
    let m = f64::from(m);
    m + v.map(|z| (f64::from(z) - m).exp()).sum::<f64>().ln()
}

/// Everything needed to turn one model output into per-label scores and a
/// confidence, for one score function.
#[derive(Debug, Clone)]
pub struct Scorer {
    score_fn: ScoreFn,
    kind: OutputKind,
    activation: Activation,
    /// Member classes of each decision label, when label groups are used.
    groups: Option<Vec<Vec<usize>>>,
    /// Every grouped class, sorted (the "known" part of the output).
    grouped: Vec<usize>,
    temperature: f32,
    knn: Option<std::sync::Arc<crate::model::knn_bank::KnnBank>>,
}

impl Scorer {
    /// A scorer for `score_fn` over a model with the given output, label
    /// groups (member class indices per decision label), temperature (for
    /// `msp_temp`; 1 otherwise) and kNN bank (for `knn`).
    pub fn new(
        score_fn: ScoreFn,
        kind: OutputKind,
        activation: Activation,
        groups: Option<Vec<Vec<usize>>>,
        temperature: f32,
        knn: Option<std::sync::Arc<crate::model::knn_bank::KnnBank>>,
    ) -> Scorer {
        let mut grouped: Vec<usize> = groups.iter().flatten().flatten().copied().collect();
        grouped.sort_unstable();
        grouped.dedup();
        Scorer {
            score_fn,
            kind,
            activation,
            groups,
            grouped,
            temperature,
            knn,
        }
    }

    /// The score function.
    pub fn score_fn(&self) -> ScoreFn {
        self.score_fn
    }

    /// Member classes of each decision label, when label groups are used.
    pub fn groups(&self) -> Option<&[Vec<usize>]> {
        self.groups.as_deref()
    }

    /// The temperature used by `msp_temp` (1 for the others).
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Whether the per-class scores are sigmoid-like (groups take their best
    /// member) rather than softmax-like (groups sum their members).
    fn sigmoid_like(&self) -> bool {
        match self.score_fn {
            ScoreFn::Msp | ScoreFn::MspTemp => false,
            ScoreFn::Sigmoid => true,
            _ => self.activation == Activation::Sigmoid,
        }
    }

    /// Writes one 0..1 score per decision label into `out` (probabilities:
    /// softmax, temperature-scaled softmax for `msp_temp`, or sigmoid; summed
    /// or maximised over label groups); `class_buf` is scratch space.
    pub fn label_scores(&self, raw: &[f32], class_buf: &mut Vec<f32>, out: &mut Vec<f32>) {
        let target: &mut Vec<f32> = if self.groups.is_some() {
            class_buf
        } else {
            out
        };
        match (self.score_fn, self.kind) {
            (ScoreFn::Msp, OutputKind::Logits) => softmax(raw, target),
            (ScoreFn::MspTemp, OutputKind::Logits) => softmax_at(raw, self.temperature, target),
            (ScoreFn::Sigmoid, OutputKind::Logits) => {
                to_scores(raw, OutputKind::Logits, Activation::Sigmoid, target)
            }
            _ => to_scores(raw, self.kind, self.activation, target),
        }
        if let Some(groups) = &self.groups {
            out.clear();
            let sigmoid = self.sigmoid_like();
            for members in groups {
                let s = members
                    .iter()
                    .map(|&i| class_buf.get(i).copied().unwrap_or(0.0));
                out.push(if sigmoid {
                    s.fold(0.0, f32::max)
                } else {
                    s.sum::<f32>().min(1.0)
                });
            }
        }
    }

    /// The confidence of decision label `top` under this score function:
    /// `label_scores[top]` for the 0..1 scores, the (group) logit, the
    /// negative energy, or the kNN score. `None` when it cannot be computed
    /// (no embedding for `knn`, an index out of range).
    pub fn confidence(
        &self,
        raw: &[f32],
        embedding: Option<&[f32]>,
        label_scores: &[f32],
        top: usize,
    ) -> Option<f32> {
        match self.score_fn {
            ScoreFn::Msp | ScoreFn::MspTemp | ScoreFn::Sigmoid => label_scores.get(top).copied(),
            ScoreFn::MaxLogit => match &self.groups {
                None => raw.get(top).copied(),
                Some(groups) => {
                    let m = groups.get(top)?.iter().filter_map(|&i| raw.get(i).copied());
                    Some(if self.activation == Activation::Sigmoid {
                        m.fold(f32::NEG_INFINITY, f32::max)
                    } else {
                        log_sum_exp(m) as f32
                    })
                }
            },
            ScoreFn::Energy => Some(match &self.groups {
                None => log_sum_exp(raw.iter().copied()) as f32,
                Some(_) => {
                    log_sum_exp(self.grouped.iter().filter_map(|&i| raw.get(i).copied())) as f32
                }
            }),
            ScoreFn::Knn => Some(self.knn.as_ref()?.score(embedding?)),
        }
    }
}

/// Mean negative log-likelihood of the true labels at temperature `t`, in
/// f64: `labels[i]` is the decision label of row `i` of `logits`; with
/// `groups`, the true label's probability is the sum over its members.
pub fn temperature_nll(
    logits: &[Vec<f32>],
    labels: &[usize],
    groups: Option<&[Vec<usize>]>,
    t: f64,
) -> f64 {
    let n = logits.len().min(labels.len());
    if n == 0 {
        return f64::NAN;
    }
    let mut total = 0.0;
    for (z, &y) in logits.iter().zip(labels) {
        let scaled = z.iter().map(|&v| (f64::from(v) / t) as f32);
        let all = log_sum_exp(scaled.clone());
        let truth = match groups {
            None => z.get(y).map_or(f64::NEG_INFINITY, |&v| f64::from(v) / t),
            Some(g) => log_sum_exp(
                g.get(y)
                    .into_iter()
                    .flatten()
                    .filter_map(|&i| z.get(i).map(|&v| (f64::from(v) / t) as f32)),
            ),
        };
        total += all - truth;
    }
    total / n as f64
}

/// Temperature scaling (Guo, Pleiss, Sun & Weinberger 2017, "On Calibration
/// of Modern Neural Networks"): the temperature T in 0.05..=20 that
/// minimises the mean negative log-likelihood of the true labels of
/// `logits` (see [`temperature_nll`]); T > 1 softens over-confident scores.
/// A log-spaced grid search followed by a golden-section refinement; `None`
/// without data or when the likelihood is not finite.
pub fn fit_temperature(
    logits: &[Vec<f32>],
    labels: &[usize],
    groups: Option<&[Vec<usize>]>,
) -> Option<f32> {
    if logits.is_empty() || labels.len() != logits.len() {
        return None;
    }
    let f = |u: f64| temperature_nll(logits, labels, groups, u.exp());
    let (lo, hi) = (0.05f64.ln(), 20f64.ln());
    const STEPS: usize = 240;
    let grid: Vec<(f64, f64)> = (0..=STEPS)
        .map(|i| {
            let u = lo + (hi - lo) * i as f64 / STEPS as f64;
            (u, f(u))
        })
        .collect();
    let best = grid
        .iter()
        .enumerate()
        .filter(|(_, p)| p.1.is_finite())
        .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))?
        .0;
    let (mut a, mut b) = (
        grid[best.saturating_sub(1)].0,
        grid[(best + 1).min(STEPS)].0,
    );
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..80 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = f(d);
        }
    }
    let t = ((a + b) / 2.0).exp() as f32;
    t.is_finite().then_some(t)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn softmax_matches_reference_values() {
        let mut out = Vec::new();
        softmax(&[1.0, 2.0, 3.0], &mut out);
        // numpy: exp([1,2,3]) / exp([1,2,3]).sum()
        let want = [0.090_030_57, 0.244_728_48, 0.665_240_94];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        softmax(&[1000.0, 1000.0], &mut out);
        assert_eq!(out, vec![0.5, 0.5]);
        softmax(&[f32::NAN, 1.0], &mut out);
        assert_eq!(out, vec![0.0, 0.0]);
    }

    #[test]
    fn sigmoid_matches_reference_values() {
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!((sigmoid(2.0) - 0.880_797_1).abs() < 1e-6);
        assert!((sigmoid(-2.0) - 0.119_202_92).abs() < 1e-6);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
    }

    #[test]
    fn max_logit_and_energy_match_reference_values() {
        assert_eq!(max_logit(&[1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(max_logit(&[]), None);
        assert_eq!(max_logit(&[1.0, f32::NAN]), None);
        // numpy: log(exp([1,2,3]).sum()) = 3.40760596; 2*log(exp([1,2,3]/2).sum()) = 4.36053934
        assert!((neg_energy(&[1.0, 2.0, 3.0], 1.0).unwrap() - 3.407_606).abs() < 1e-5);
        assert!((neg_energy(&[1.0, 2.0, 3.0], 2.0).unwrap() - 4.360_539).abs() < 1e-5);
        // No overflow for large logits: 1000 + log(1 + e^-1) = 1000.31326.
        assert!((neg_energy(&[1000.0, 999.0], 1.0).unwrap() - 1_000.313_3).abs() < 1e-3);
        assert_eq!(neg_energy(&[1.0], 0.0), None);
        assert_eq!(neg_energy(&[], 1.0), None);
        assert_eq!(
            neg_energy(&[f32::NEG_INFINITY, f32::NEG_INFINITY], 1.0),
            Some(f32::NEG_INFINITY)
        );
    }

    #[test]
    fn probabilities_are_clamped() {
        let mut out = Vec::new();
        to_scores(
            &[1.2, -0.1, f32::NAN, 0.3],
            OutputKind::Probabilities,
            Activation::Softmax,
            &mut out,
        );
        assert_eq!(out, vec![1.0, 0.0, 0.0, 0.3]);
    }

    #[derive(serde::Deserialize)]
    struct TempCase {
        name: String,
        logits: Vec<Vec<f32>>,
        labels: Vec<usize>,
        groups: Option<Vec<Vec<usize>>>,
        temperature: f64,
        nll_at_1: f64,
        nll_at_fit: f64,
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        temperature: Vec<TempCase>,
    }

    pub(crate) fn reference_json() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/score_reference.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn temperature_fit_matches_scipy() {
        let r: Reference = serde_json::from_value(reference_json()).unwrap();
        assert_eq!(r.temperature.len(), 3);
        for c in &r.temperature {
            let g = c.groups.as_deref();
            let nll1 = temperature_nll(&c.logits, &c.labels, g, 1.0);
            assert!(
                (nll1 - c.nll_at_1).abs() < 1e-5,
                "{}: NLL(1) {nll1} vs {}",
                c.name,
                c.nll_at_1
            );
            let t = f64::from(fit_temperature(&c.logits, &c.labels, g).unwrap());
            assert!(
                (t - c.temperature).abs() < 1e-3 * c.temperature,
                "{}: T {t} vs scipy {}",
                c.name,
                c.temperature
            );
            let nll = temperature_nll(&c.logits, &c.labels, g, t);
            assert!(
                (nll - c.nll_at_fit).abs() < 1e-6,
                "{}: {nll} vs {}",
                c.name,
                c.nll_at_fit
            );
        }
        assert_eq!(fit_temperature(&[], &[], None), None);
    }

    #[test]
    fn score_fn_names_round_trip() {
        for f in ScoreFn::ALL {
            assert_eq!(f.as_str().parse::<ScoreFn>().unwrap(), f);
        }
        assert_eq!("max-logit".parse::<ScoreFn>().unwrap(), ScoreFn::MaxLogit);
        let e = "softmax".parse::<ScoreFn>().unwrap_err();
        assert!(
            e.contains("allowed: msp, msp_temp, max_logit, energy, sigmoid, knn"),
            "{e}"
        );
    }

    #[test]
    fn group_scores_per_score_function() {
        // Classes 0,1 form group 0; class 2 group 1; class 3 is outside every group.
        let groups = Some(vec![vec![0, 1], vec![2]]);
        let raw = [1.0f32, 2.0, 0.5, 3.0];
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        let s = |f, t| {
            Scorer::new(
                f,
                OutputKind::Logits,
                Activation::Softmax,
                groups.clone(),
                t,
                None,
            )
        };
        let msp = s(ScoreFn::Msp, 1.0);
        msp.label_scores(&raw, &mut buf, &mut out);
        // numpy: softmax([1,2,.5,3]) = [.0854, .2321, .0518, .6308]
        assert!(
            (out[0] - 0.317_5).abs() < 1e-3 && (out[1] - 0.051_8).abs() < 1e-3,
            "{out:?}"
        );
        assert_eq!(msp.confidence(&raw, None, &out, 0), Some(out[0]));
        // Group logit: log(e^1 + e^2) = 2.31326; energy over grouped classes:
        // log(e^1 + e^2 + e^0.5) = 2.464369 (class 3 does not count).
        let ml = s(ScoreFn::MaxLogit, 1.0)
            .confidence(&raw, None, &out, 0)
            .unwrap();
        assert!((ml - 2.313_262).abs() < 1e-5, "{ml}");
        let en = s(ScoreFn::Energy, 1.0)
            .confidence(&raw, None, &out, 0)
            .unwrap();
        assert!((en - 2.464_369).abs() < 1e-5, "{en}");
        // Temperature 2: softmax([.5, 1, .25, 1.5]) grouped: (e^.5 + e^1) / Σ = 0.430980
        s(ScoreFn::MspTemp, 2.0).label_scores(&raw, &mut buf, &mut out);
        assert!((out[0] - 0.430_980).abs() < 1e-5, "{out:?}");
        assert_eq!(s(ScoreFn::Knn, 1.0).confidence(&raw, None, &out, 0), None);
        // Without groups, max-logit is the logit itself.
        let plain = Scorer::new(
            ScoreFn::MaxLogit,
            OutputKind::Logits,
            Activation::Softmax,
            None,
            1.0,
            None,
        );
        assert_eq!(plain.confidence(&raw, None, &[], 3), Some(3.0));
    }

    #[test]
    fn availability_depends_on_the_head() {
        use Activation::*;
        use OutputKind::*;
        assert!(ScoreFn::Sigmoid
            .unavailable(Logits, Softmax, false)
            .unwrap()
            .contains("one-vs-rest"));
        assert!(ScoreFn::Sigmoid
            .unavailable(Logits, Sigmoid, false)
            .is_none());
        assert!(ScoreFn::MaxLogit
            .unavailable(Probabilities, Softmax, false)
            .is_some());
        assert!(ScoreFn::Knn
            .unavailable(Logits, Softmax, false)
            .unwrap()
            .contains("camtrapd bank"));
        assert!(ScoreFn::Knn.unavailable(Logits, Softmax, true).is_none());
        assert!(ScoreFn::Msp.unavailable(Logits, Sigmoid, false).is_none());
    }
}
