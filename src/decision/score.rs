//! Score functions: the model's raw output → one 0..1 score per label.
//!
//! * softmax: `exp(z_i) / Σ_j exp(z_j)`, computed as `exp(z_i - max z)` for
//!   numerical stability; the top score is the maximum softmax probability
//!   (MSP; Hendrycks & Gimpel 2017, "A Baseline for Detecting Misclassified
//!   and Out-of-Distribution Examples in Neural Networks").
//! * sigmoid: `1 / (1 + exp(-z_i))` per label, for one-vs-rest heads, where
//!   every label can be low at once (the remedy for "none of my labels").
//! * max-logit and (negative) energy: unbounded per-frame confidences from the
//!   raw logits, for open-set evaluation ([`max_logit`], [`neg_energy`]).

use crate::model::manifest::{Activation, OutputKind};

/// Writes softmax(`logits`) into `out` (cleared first; no reallocation once
/// `out` has the capacity). Non-finite logits give an all-zero result.
pub fn softmax(logits: &[f32], out: &mut Vec<f32>) {
    out.clear();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        out.resize(logits.len(), 0.0);
        return;
    }
    let mut sum = 0.0f32;
    for &z in logits {
        let e = (z - max).exp();
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

#[cfg(test)]
mod tests {
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
}
