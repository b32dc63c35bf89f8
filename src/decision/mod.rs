//! The open-set decision: does a classified frame become a detection?
//!
//! A classifier always answers with one of its labels, even for an empty
//! frame or an animal it was never trained on. The decision therefore
//! publishes a frame only when
//!
//! 1. its top label's 0..1 score reaches that label's threshold, and
//! 2. that label is allowed for publishing (`publish_labels`).
//!
//! Everything else is rejected with a counted [`RejectReason`]. Thresholds
//! are resolved per label, first match wins: the config's per-label
//! threshold, the model manifest's per-label threshold (e.g. calibrated),
//! the config's `default_threshold`, the manifest's `thresholds.default`,
//! and finally [`FALLBACK_THRESHOLD`].

pub mod event;
pub mod score;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::manifest::{Activation, Manifest, OutputKind};
pub use event::{Detection, LabelScore, Latency, ModelRef};

/// Threshold used when neither the config nor the manifest gives one.
pub const FALLBACK_THRESHOLD: f32 = 0.5;

/// Why a frame produced no detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The top label's score is below its threshold (an unknown animal, an
    /// empty frame, or an uncertain view).
    BelowThreshold,
    /// The top label is confident but not in `publish_labels`.
    LabelNotPublished,
    /// The frame could not be read or decoded.
    Unreadable,
    /// The model produced non-finite scores, or a number of scores that is not
    /// the number of labels.
    InvalidOutput,
}

impl RejectReason {
    /// Stable snake_case name, as used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BelowThreshold => "below_threshold",
            RejectReason::LabelNotPublished => "label_not_published",
            RejectReason::Unreadable => "unreadable",
            RejectReason::InvalidOutput => "invalid_output",
        }
    }
}

/// The outcome for one classified frame (before any decision: rejected as
/// below threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Publish it.
    Detection,
    /// Drop it, for this reason.
    Rejected(RejectReason),
}

/// Per-label thresholds and publish list, resolved for one model.
#[derive(Debug, Clone)]
pub struct Policy {
    kind: OutputKind,
    activation: Activation,
    /// Number of model classes (length of the raw output).
    classes: usize,
    /// Decision labels: the model's labels, or the label group names.
    labels: Vec<String>,
    /// Member class indices of each group, when label groups are used.
    groups: Option<Vec<Vec<usize>>>,
    thresholds: Vec<f32>,
    publishable: Vec<bool>,
    top_k: usize,
}

/// The decision for one frame. Reused across frames: [`Policy::decide`]
/// overwrites it without reallocating.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// 0..1 score per decision label (model label or label group), in order.
    pub scores: Vec<f32>,
    /// 0..1 score per model class, when label groups are used (else empty).
    pub class_scores: Vec<f32>,
    /// Indices of the k best labels, best first.
    pub top_k: Vec<usize>,
    /// Threshold of the top label (0..1).
    pub threshold: f32,
    /// The verdict.
    pub verdict: Verdict,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict::Rejected(RejectReason::BelowThreshold)
    }
}

impl Decision {
    /// Index of the best label (None before the first decision).
    pub fn top(&self) -> Option<usize> {
        self.top_k.first().copied()
    }

    /// Score of the best label, 0..1 (0 when there is none).
    pub fn top_score(&self) -> f32 {
        self.top()
            .and_then(|i| self.scores.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// The k best labels with their scores, best first.
    pub fn top_k_scores(&self, labels: &[String]) -> Vec<LabelScore> {
        self.top_k
            .iter()
            .filter_map(|&i| {
                Some(LabelScore {
                    label: labels.get(i)?.clone(),
                    score: *self.scores.get(i)?,
                })
            })
            .collect()
    }
}

/// User-side threshold settings (from the daemon config or the command line).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Threshold for labels without their own, 0..1.
    pub default_threshold: Option<f32>,
    /// Per-label thresholds, 0..1.
    pub thresholds: BTreeMap<String, f32>,
    /// Labels that may be published; `None` = all.
    pub publish_labels: Option<Vec<String>>,
    /// How many best labels to report (at least 1).
    pub top_k: usize,
    /// Label groups: (group name, model labels). When not empty, the decision
    /// is over the groups instead of the model's labels: a group's score is the
    /// sum of its members' softmax probabilities (the maximum of their sigmoid
    /// scores), and classes outside every group count as unknown. Thresholds
    /// and `publish_labels` then name groups.
    pub label_groups: Vec<(String, Vec<String>)>,
}

/// A label the user named is not one of the model's.
#[derive(Debug, thiserror::Error)]
#[error("label {label:?} is not a label of the model{hint}")]
pub struct UnknownLabel {
    /// The label as written.
    pub label: String,
    /// ", did you mean ..." or a pointer to the label list.
    pub hint: String,
}

impl Policy {
    /// Resolves thresholds and the publish list for `manifest`'s labels.
    ///
    /// # Errors
    /// [`UnknownLabel`] for a label in `overrides` that the model does not have
    /// (with close matches as a hint).
    pub fn new(manifest: &Manifest, overrides: &Overrides) -> Result<Policy, UnknownLabel> {
        let classes = &manifest.labels;
        let class_index = |l: &str| -> Result<usize, UnknownLabel> {
            classes
                .iter()
                .position(|x| x == l)
                .ok_or_else(|| unknown_label(l, classes))
        };
        let (labels, groups) = if overrides.label_groups.is_empty() {
            (classes.clone(), None)
        } else {
            let mut members = Vec::with_capacity(overrides.label_groups.len());
            for (_, m) in &overrides.label_groups {
                members.push(
                    m.iter()
                        .map(|l| class_index(l))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            let names = overrides
                .label_groups
                .iter()
                .map(|(g, _)| g.clone())
                .collect();
            (names, Some(members))
        };
        let labels: Vec<String> = labels;
        let index = |l: &str| -> Result<usize, UnknownLabel> {
            labels
                .iter()
                .position(|x| x == l)
                .ok_or_else(|| unknown_label(l, &labels))
        };
        let base = overrides
            .default_threshold
            .or(manifest.thresholds.default)
            .unwrap_or(FALLBACK_THRESHOLD);
        // The manifest's per-label thresholds are for its own labels, not for groups.
        let mut thresholds: Vec<f32> = labels
            .iter()
            .map(|l| match groups {
                None => manifest.thresholds.labels.get(l).copied().unwrap_or(base),
                Some(_) => base,
            })
            .collect();
        // The config's default beats the manifest's default but not its per-label values.
        for (l, t) in &overrides.thresholds {
            thresholds[index(l)?] = *t;
        }
        let publishable = match &overrides.publish_labels {
            None => vec![true; labels.len()],
            Some(list) => {
                let mut p = vec![false; labels.len()];
                for l in list {
                    p[index(l)?] = true;
                }
                p
            }
        };
        let top_k = overrides.top_k.clamp(1, labels.len().max(1));
        Ok(Policy {
            kind: manifest.output.kind,
            activation: manifest.output.activation,
            classes: classes.len(),
            labels,
            groups,
            thresholds,
            publishable,
            top_k,
        })
    }

    /// The decision labels, in score order: the model's labels, or the label
    /// group names when groups are configured.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Threshold of label `i` (0..1).
    pub fn threshold(&self, i: usize) -> f32 {
        self.thresholds[i]
    }

    /// Whether label `i` may be published.
    pub fn publishable(&self, i: usize) -> bool {
        self.publishable[i]
    }

    /// Decides on one frame from the model's raw scores output (`raw`, one
    /// value per label), writing into `d`.
    /// A wrong-sized output, or one holding NaN or +inf, is rejected as
    /// [`RejectReason::InvalidOutput`] with no top label.
    pub fn decide(&self, raw: &[f32], d: &mut Decision) {
        d.top_k.clear();
        d.threshold = 0.0;
        // NaN or +inf is a broken output; -inf is a legitimate masked logit (probability 0).
        if raw.len() != self.classes || raw.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            d.scores.clear();
            d.scores.resize(self.thresholds.len(), 0.0);
            d.verdict = Verdict::Rejected(RejectReason::InvalidOutput);
            return;
        }
        match &self.groups {
            None => score::to_scores(raw, self.kind, self.activation, &mut d.scores),
            Some(groups) => {
                score::to_scores(raw, self.kind, self.activation, &mut d.class_scores);
                d.scores.clear();
                let sigmoid = self.activation == Activation::Sigmoid;
                for members in groups {
                    let s = members.iter().map(|&i| d.class_scores[i]);
                    let g = if sigmoid {
                        s.fold(0.0, f32::max)
                    } else {
                        s.sum::<f32>().min(1.0)
                    };
                    d.scores.push(g);
                }
            }
        }
        top_k(&d.scores, self.top_k, &mut d.top_k);
        let Some(top) = d.top() else {
            d.verdict = Verdict::Rejected(RejectReason::InvalidOutput);
            return;
        };
        d.threshold = self.thresholds[top];
        d.verdict = if d.scores[top] < d.threshold {
            Verdict::Rejected(RejectReason::BelowThreshold)
        } else if !self.publishable[top] {
            Verdict::Rejected(RejectReason::LabelNotPublished)
        } else {
            Verdict::Detection
        };
    }
}

/// Checks a threshold is a finite score in 0..=1.
///
/// # Errors
/// A message saying what is allowed.
pub fn check_threshold(t: f32) -> Result<(), String> {
    if t.is_finite() && (0.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(format!("{t} is not a score; allowed 0.0..=1.0"))
    }
}

/// Builds the [`UnknownLabel`] error for `label`, with close matches among `labels`.
pub fn unknown_label(label: &str, labels: &[String]) -> UnknownLabel {
    let close = crate::text::suggestions(label, labels.iter().map(String::as_str), 5);
    let hint = if close.is_empty() {
        "; `camtrapd labels --model DIR` lists them".to_string()
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    UnknownLabel {
        label: label.to_string(),
        hint,
    }
}

/// Indices of the `k` largest scores, best first (ties: lower index first).
fn top_k(scores: &[f32], k: usize, out: &mut Vec<usize>) {
    out.clear();
    if k == 0 {
        return;
    }
    for (i, &s) in scores.iter().enumerate() {
        if out.len() < k {
            out.push(i);
        } else if s > scores[out[k - 1]] {
            out[k - 1] = i;
        } else {
            continue;
        }
        // Bubble the new entry into place.
        let mut j = out.len() - 1;
        while j > 0 && scores[out[j]] > scores[out[j - 1]] {
            out.swap(j, j - 1);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(activation: &str, thresholds: &str) -> Manifest {
        let input =
            "layout = \"NCHW\"\nwidth = 4\nheight = 4\ndatum_type = \"f32\"\nresize = \"squash\"";
        crate::model::manifest::test_manifest(
            "\"cat\", \"dog\", \"fox\"",
            input,
            activation,
            thresholds,
        )
    }

    fn ov(default: Option<f32>, per: &[(&str, f32)], publish: Option<&[&str]>) -> Overrides {
        Overrides {
            default_threshold: default,
            thresholds: per.iter().map(|(l, t)| (l.to_string(), *t)).collect(),
            publish_labels: publish.map(|p| p.iter().map(|s| s.to_string()).collect()),
            top_k: 2,
            label_groups: Vec::new(),
        }
    }

    #[test]
    fn threshold_precedence() {
        let m = manifest("softmax", "default = 0.3\nlabels = { dog = 0.8 }");
        let p = Policy::new(&m, &ov(None, &[], None)).unwrap();
        assert_eq!(
            [p.threshold(0), p.threshold(1), p.threshold(2)],
            [0.3, 0.8, 0.3]
        );
        let p = Policy::new(&m, &ov(Some(0.6), &[("fox", 0.9)], None)).unwrap();
        assert_eq!(
            [p.threshold(0), p.threshold(1), p.threshold(2)],
            [0.6, 0.8, 0.9]
        );
        let p = Policy::new(&manifest("softmax", ""), &ov(None, &[], None)).unwrap();
        assert_eq!(p.threshold(0), FALLBACK_THRESHOLD);
    }

    #[test]
    fn decision_rule() {
        let m = manifest("softmax", "");
        let p = Policy::new(&m, &ov(Some(0.5), &[], Some(&["cat"]))).unwrap();
        let mut d = Decision::default();
        // softmax([3, 0, 0]) = [0.9094, 0.0453, 0.0453]: confident cat, published.
        p.decide(&[3.0, 0.0, 0.0], &mut d);
        assert_eq!(d.verdict, Verdict::Detection);
        assert_eq!(d.top_k, vec![0, 1]);
        assert!((d.top_score() - 0.909_442_2).abs() < 1e-5);
        // Confident dog, but dog is not published.
        p.decide(&[0.0, 3.0, 0.0], &mut d);
        assert_eq!(
            d.verdict,
            Verdict::Rejected(RejectReason::LabelNotPublished)
        );
        // softmax([0.2, 0, 0]) top = 0.3786 < 0.5: rejected as below threshold.
        p.decide(&[0.2, 0.0, 0.0], &mut d);
        assert_eq!(d.verdict, Verdict::Rejected(RejectReason::BelowThreshold));
        assert_eq!(d.top(), Some(0));
        // Exactly at the threshold counts as reaching it.
        let p = Policy::new(&m, &ov(Some(0.5), &[], None)).unwrap();
        p.decide(&[0.0, 0.0, f32::NEG_INFINITY], &mut d);
        assert_eq!(d.top_score(), 0.5);
        assert_eq!(d.verdict, Verdict::Detection);
    }

    #[test]
    fn sigmoid_heads_can_reject_everything() {
        let m = manifest("sigmoid", "");
        let p = Policy::new(&m, &ov(Some(0.5), &[], None)).unwrap();
        let mut d = Decision::default();
        // All logits negative: every sigmoid < 0.5, "none of the labels".
        p.decide(&[-2.0, -3.0, -1.0], &mut d);
        assert_eq!(d.top(), Some(2));
        assert!((d.top_score() - 0.268_941_43).abs() < 1e-6);
        assert_eq!(d.verdict, Verdict::Rejected(RejectReason::BelowThreshold));
    }

    #[test]
    fn unknown_labels_are_errors_with_hints() {
        let m = manifest("softmax", "");
        let e = Policy::new(&m, &ov(None, &[("Cat", 0.5)], None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"Cat\" is not a label") && e.contains("did you mean \"cat\""),
            "{e}"
        );
        let e = Policy::new(&m, &ov(None, &[], Some(&["wolf"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("camtrapd labels"), "{e}");
    }

    fn groups(g: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        g.iter()
            .map(|(n, m)| (n.to_string(), m.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn label_groups_sum_member_probabilities() {
        let m = manifest("softmax", "labels = { dog = 0.9 }");
        let mut o = ov(Some(0.5), &[("canid", 0.6)], None);
        o.label_groups = groups(&[("canid", &["dog", "fox"])]);
        let p = Policy::new(&m, &o).unwrap();
        assert_eq!(p.labels(), &["canid".to_string()]);
        // Manifest per-label thresholds do not apply to groups; the config's do.
        assert_eq!(p.threshold(0), 0.6);
        let mut d = Decision::default();
        // softmax([0, 1, 1]) = [0.1554, 0.4223, 0.4223]: no single class reaches 0.5,
        // the group does (0.8446).
        p.decide(&[0.0, 1.0, 1.0], &mut d);
        assert!((d.scores[0] - 0.844_6).abs() < 1e-3, "{:?}", d.scores);
        assert_eq!(d.class_scores.len(), 3);
        assert_eq!((d.verdict, d.top()), (Verdict::Detection, Some(0)));
        // A cat (outside every group) leaves the group score low: rejected as unknown.
        p.decide(&[3.0, 0.0, 0.0], &mut d);
        assert!((d.scores[0] - 0.090_6).abs() < 1e-3, "{:?}", d.scores);
        assert_eq!(d.verdict, Verdict::Rejected(RejectReason::BelowThreshold));
        // Sigmoid heads: the group takes its best member.
        let p = Policy::new(&manifest("sigmoid", ""), &o).unwrap();
        p.decide(&[0.0, 2.0, -1.0], &mut d);
        assert!((d.scores[0] - 0.880_797).abs() < 1e-5, "{:?}", d.scores);
        // Members must be model labels; thresholds must name groups.
        o.label_groups = groups(&[("canid", &["dog", "wolf"])]);
        assert!(Policy::new(&m, &o)
            .unwrap_err()
            .to_string()
            .contains("\"wolf\""));
        o.label_groups = groups(&[("canid", &["dog"])]);
        o.thresholds = [("dog".to_string(), 0.5)].into_iter().collect();
        assert!(Policy::new(&m, &o)
            .unwrap_err()
            .to_string()
            .contains("\"dog\" is not a label"));
    }

    #[test]
    fn invalid_output_is_rejected_without_a_label() {
        let p = Policy::new(&manifest("softmax", ""), &ov(Some(0.0), &[], None)).unwrap();
        let mut d = Decision::default();
        for raw in [&[f32::NAN, 1.0, 0.0][..], &[1.0, 2.0][..], &[][..]] {
            p.decide(raw, &mut d);
            assert_eq!(
                d.verdict,
                Verdict::Rejected(RejectReason::InvalidOutput),
                "{raw:?}"
            );
            assert_eq!(d.top(), None);
            assert_eq!(d.top_score(), 0.0);
        }
        // A threshold of 0 still needs a real top label.
        p.decide(&[0.0, 0.0, 0.0], &mut d);
        assert_eq!((d.verdict, d.top()), (Verdict::Detection, Some(0)));
    }

    #[test]
    fn top_k_ties_keep_the_lower_index() {
        let mut out = Vec::new();
        top_k(&[0.5, 0.5, 0.5], 2, &mut out);
        assert_eq!(out, vec![0, 1]);
        top_k(&[0.1, 0.5, 0.5, 0.9], 2, &mut out);
        assert_eq!(out, vec![3, 1]);
    }

    #[test]
    fn top_k_orders_best_first() {
        let mut out = Vec::new();
        top_k(&[0.1, 0.5, 0.2, 0.9, 0.5], 3, &mut out);
        assert_eq!(out, vec![3, 1, 4]);
        top_k(&[0.3], 3, &mut out);
        assert_eq!(out, vec![0]);
    }
}
