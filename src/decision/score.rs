//! Score functions: the model's raw output → one 0..1 score per label.
//!
//! * softmax: `exp(z_i) / Σ_j exp(z_j)`, computed as `exp(z_i - max z)` for
//!   numerical stability; the top score is the maximum softmax probability
//!   (MSP; Hendrycks & Gimpel 2017, "A Baseline for Detecting Misclassified
//!   and Out-of-Distribution Examples in Neural Networks").
//! * sigmoid: `1 / (1 + exp(-z_i))` per label, for one-vs-rest heads, where
//!   every label can be low at once (the remedy for "none of my labels").

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
