//! The open-set decision: does a classified frame become a detection?
//!
//! A classifier always answers with one of its labels, even for an empty
//! frame or an animal it was never trained on. The decision therefore
//! publishes a frame only when
//!
//! 1. its top label's 0..1 score reaches that label's threshold, and
//! 2. that label is allowed for publishing (`publish_labels`).
//!
//! Everything else is rejected with a counted [`RejectReason`].
//!
//! The score is computed by one [`ScoreFn`] (MSP, max-logit, energy, kNN,
//! ...; see [`score`]); thresholds are in that score's units. They are
//! resolved per label, first match wins: the config's per-label threshold,
//! the thresholds file's (`camtrapd calibrate`), the model manifest's, the
//! config's `default_threshold`, the thresholds file's `default`, the
//! manifest's `thresholds.default`, and finally, for the 0..1 scores only,
//! [`FALLBACK_THRESHOLD`]. Thresholds of one score function are never applied
//! to another: [`Policy::with_model`] refuses the mismatch.

pub mod detection;
pub mod events;
/// The kNN embedding bank, a file of the model bundle: see
/// [`crate::model::knn_bank`] (the `knn` score reads it).
pub use crate::model::knn_bank as knn;
pub mod score;
pub mod thresholds;

use std::collections::BTreeMap;

use serde::Serialize;

use std::sync::Arc;

use crate::model::manifest::Manifest;
pub use crate::model::score_fn::{check_threshold, check_threshold_for};
pub use detection::{Detection, LabelScore, Latency, ModelRef};
pub use events::{EventKind, EventMessage, EventTracker, EventsConfig};
pub use knn::KnnBank;
pub use score::{ScoreFn, Scorer};
pub use thresholds::{Calibrated, ThresholdsError, ThresholdsFile};

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
    scorer: Scorer,
    /// Number of model classes (length of the raw output).
    classes: usize,
    /// Decision labels: the model's labels, or the label group names.
    labels: Vec<String>,
    /// Where the thresholds came from, for `check-config`.
    thresholds_source: Option<std::path::PathBuf>,
    thresholds: Vec<f32>,
    publishable: Vec<bool>,
    top_k: usize,
}

/// The decision for one frame. Reused across frames: [`Policy::decide`]
/// overwrites it without reallocating.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// 0..1 score per decision label (model label or label group), in order:
    /// probabilities (softmax, or sigmoid for one-vs-rest heads), whatever
    /// the score function.
    pub scores: Vec<f32>,
    /// 0..1 score per model class, when label groups are used (else empty).
    pub class_scores: Vec<f32>,
    /// Indices of the k best labels, best first.
    pub top_k: Vec<usize>,
    /// The top label's confidence under the policy's score function (in
    /// that function's units; the same as its `scores` entry for `msp`).
    pub confidence: f32,
    /// Threshold of the top label (in the score function's units).
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

    /// Confidence of the best label under the score function (0 when there
    /// is none).
    pub fn top_score(&self) -> f32 {
        if self.top().is_some() {
            self.confidence
        } else {
            0.0
        }
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
    /// The score function; `None`: the thresholds file's, else the head's
    /// own 0..1 score ([`ScoreFn::head_default`]).
    pub score_fn: Option<ScoreFn>,
    /// Calibrated thresholds (the config's `thresholds_file`).
    pub calibrated: Option<Calibrated>,
    /// Threshold for labels without their own (in the score's units).
    pub default_threshold: Option<f32>,
    /// Per-label thresholds (in the score's units).
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

/// Why the decision settings cannot be used with this model.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A label that the model (or the label groups) does not have.
    #[error(transparent)]
    Label(#[from] UnknownLabel),
    /// The thresholds file does not fit (score function, model, groups, ...).
    #[error(transparent)]
    Thresholds(#[from] ThresholdsError),
    /// The score function cannot be used, or has no thresholds.
    #[error("{0}")]
    Score(String),
}

impl Policy {
    /// Resolves the score function, thresholds and publish list for
    /// `manifest`'s labels, without model-file checks (no kNN bank, the
    /// model's SHA-256 not compared with a thresholds file's).
    ///
    /// # Errors
    /// As [`Policy::with_model`].
    pub fn new(manifest: &Manifest, overrides: &Overrides) -> Result<Policy, PolicyError> {
        Policy::with_model(manifest, overrides, None, None)
    }

    /// Resolves the score function, thresholds and publish list for a loaded
    /// model: `sha256` of its `model.onnx` and its kNN bank, if any.
    ///
    /// # Errors
    /// [`PolicyError::Label`] for a label in `overrides` that the model does
    /// not have (with close matches as a hint); [`PolicyError::Thresholds`]
    /// for a thresholds file made for another score function, model, label
    /// grouping, temperature or kNN bank; [`PolicyError::Score`] for a score
    /// function the model cannot compute, or one in its own units (not 0..1)
    /// with labels that have no threshold.
    pub fn with_model(
        manifest: &Manifest,
        overrides: &Overrides,
        sha256: Option<&str>,
        bank: Option<Arc<KnnBank>>,
    ) -> Result<Policy, PolicyError> {
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
        let out = &manifest.output;
        let cal = overrides.calibrated.as_ref();
        let score_fn = overrides
            .score_fn
            .or(cal.map(|c| c.file.score))
            .unwrap_or(ScoreFn::head_default(out.activation));
        if let Some(why) = score_fn.unavailable(out.kind, out.activation, bank.is_some()) {
            return Err(PolicyError::Score(format!(
                "score = \"{score_fn}\" cannot be used with model {}: {why}",
                manifest.name
            )));
        }
        let mut temperature = 1.0f32;
        if let Some(c) = cal {
            check_calibrated(
                c,
                score_fn,
                sha256,
                &overrides.label_groups,
                bank.as_deref(),
            )?;
            if score_fn == ScoreFn::MspTemp {
                temperature = c.file.temperature.unwrap_or(1.0) as f32;
            }
        } else if score_fn == ScoreFn::MspTemp {
            return Err(PolicyError::Score(
                "score = \"msp_temp\" needs a temperature fitted on your images: run `camtrapd calibrate --score msp_temp ...` and name the file it writes in [decision] thresholds_file".into(),
            ));
        }
        // The manifest's thresholds are for its own score function and labels.
        let manifest_score = manifest
            .thresholds
            .score
            .unwrap_or(ScoreFn::head_default(out.activation));
        let manifest_applies = manifest_score == score_fn;
        let base = overrides
            .default_threshold
            .or(cal.and_then(|c| c.file.default.map(|v| v as f32)))
            .or(manifest.thresholds.default.filter(|_| manifest_applies))
            .or(score_fn.bounded().then_some(FALLBACK_THRESHOLD));
        let mut thresholds: Vec<Option<f32>> = labels
            .iter()
            .map(|l| {
                cal.and_then(|c| c.file.labels.get(l).map(|v| *v as f32))
                    .or(match groups {
                        None if manifest_applies => manifest.thresholds.labels.get(l).copied(),
                        _ => None,
                    })
                    .or(base)
            })
            .collect();
        if let Some(c) = cal {
            for l in c.file.labels.keys() {
                index(l).map_err(|e| ThresholdsError {
                    path: c.path.clone(),
                    message: format!(
                        "{e}; the labels changed since calibration: run `camtrapd calibrate` again"
                    ),
                })?;
            }
        }
        for (l, t) in &overrides.thresholds {
            thresholds[index(l)?] = Some(*t);
        }
        let missing: Vec<&str> = thresholds
            .iter()
            .zip(&labels)
            .filter(|(t, _)| t.is_none())
            .map(|(_, l)| l.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(PolicyError::Score(format!(
                "score = \"{score_fn}\" is not a 0..1 score, so there is no default threshold; {} label(s) have none ({}{}): run `camtrapd calibrate --score {score_fn} ...` and name its file in [decision] thresholds_file, or set [decision] default_threshold in the score's units",
                missing.len(),
                missing.iter().take(3).map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", "),
                if missing.len() > 3 { ", ..." } else { "" }
            )));
        }
        let thresholds: Vec<f32> = thresholds.into_iter().map(|t| t.unwrap_or(0.0)).collect();
        if score_fn.bounded() {
            if let Some((l, t)) = labels
                .iter()
                .zip(&thresholds)
                .find(|(_, t)| check_threshold(**t).is_err())
            {
                return Err(PolicyError::Score(format!(
                    "threshold {t} for {l:?} is not a {score_fn} score; allowed 0.0..=1.0"
                )));
            }
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
        let bank = if score_fn == ScoreFn::Knn { bank } else { None };
        Ok(Policy {
            scorer: Scorer::new(
                score_fn,
                out.kind,
                out.activation,
                groups,
                temperature,
                bank,
            ),
            classes: classes.len(),
            labels,
            thresholds_source: cal.map(|c| c.path.clone()),
            thresholds,
            publishable,
            top_k,
        })
    }

    /// The score function.
    pub fn score_fn(&self) -> ScoreFn {
        self.scorer.score_fn()
    }

    /// The scorer (score function with its groups, temperature and bank).
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// The thresholds file in use, if any.
    pub fn thresholds_source(&self) -> Option<&std::path::Path> {
        self.thresholds_source.as_deref()
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

    /// The highest confidence each decision label can reach when every
    /// value of the model's raw output lies in `lo..=hi`: that label's
    /// classes at `hi`, all others at `lo` (softmax, sigmoid, group sums,
    /// logits and energy all grow with a label's own outputs and shrink with
    /// the others'). `None` for `knn`, whose confidence comes from the
    /// embedding.
    pub fn reachable(&self, lo: f32, hi: f32) -> Option<Vec<f32>> {
        if self.score_fn() == ScoreFn::Knn {
            return None;
        }
        let members: Vec<Vec<usize>> = match self.scorer.groups() {
            Some(g) => g.to_vec(),
            None => (0..self.classes).map(|j| vec![j]).collect(),
        };
        let (mut class_buf, mut scores) = (Vec::new(), Vec::new());
        let mut raw = vec![lo; self.classes];
        Some(
            members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    raw.iter_mut().for_each(|v| *v = lo);
                    for &j in m {
                        if let Some(v) = raw.get_mut(j) {
                            *v = hi;
                        }
                    }
                    self.scorer.label_scores(&raw, &mut class_buf, &mut scores);
                    self.scorer
                        .confidence(&raw, None, &scores, i)
                        .unwrap_or(f32::NEG_INFINITY)
                })
                .collect(),
        )
    }

    /// Decides on one frame from the model's raw scores output (`raw`, one
    /// value per model class) and its embedding (for `knn`), writing into `d`.
    /// A wrong-sized output, or one holding NaN or +inf, is rejected as
    /// [`RejectReason::InvalidOutput`] with no top label.
    pub fn decide(&self, raw: &[f32], embedding: Option<&[f32]>, d: &mut Decision) {
        d.top_k.clear();
        d.threshold = 0.0;
        d.confidence = 0.0;
        // NaN or +inf is a broken output; -inf is a legitimate masked logit (probability 0).
        if raw.len() != self.classes || raw.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            d.scores.clear();
            d.scores.resize(self.thresholds.len(), 0.0);
            d.verdict = Verdict::Rejected(RejectReason::InvalidOutput);
            return;
        }
        d.class_scores.clear();
        self.scorer
            .label_scores(raw, &mut d.class_scores, &mut d.scores);
        top_k(&d.scores, self.top_k, &mut d.top_k);
        let conf = d
            .top()
            .and_then(|top| self.scorer.confidence(raw, embedding, &d.scores, top))
            .filter(|c| !c.is_nan());
        let (Some(top), Some(conf)) = (d.top(), conf) else {
            d.top_k.clear();
            d.verdict = Verdict::Rejected(RejectReason::InvalidOutput);
            return;
        };
        d.confidence = conf;
        d.threshold = self.thresholds[top];
        d.verdict = if conf < d.threshold {
            Verdict::Rejected(RejectReason::BelowThreshold)
        } else if !self.publishable[top] {
            Verdict::Rejected(RejectReason::LabelNotPublished)
        } else {
            Verdict::Detection
        };
    }
}

/// Checks a thresholds file against the decision it would feed.
fn check_calibrated(
    c: &Calibrated,
    score_fn: ScoreFn,
    sha256: Option<&str>,
    groups: &[(String, Vec<String>)],
    bank: Option<&KnnBank>,
) -> Result<(), ThresholdsError> {
    let err = |message: String| ThresholdsError {
        path: c.path.clone(),
        message,
    };
    let f = &c.file;
    if f.score != score_fn {
        return Err(err(format!(
            "holds thresholds for score \"{}\", but the decision uses score \"{score_fn}\"; thresholds of one score function mean nothing for another: set [decision] score = \"{}\" (or remove the line), or calibrate for {score_fn} with `camtrapd calibrate --score {score_fn} ...`",
            f.score, f.score
        )));
    }
    if let Some(sha) = sha256 {
        if !f.model_sha256.eq_ignore_ascii_case(sha) {
            return Err(err(format!(
                "was calibrated for another model (model.onnx sha256 {}…, this one is {}…); run `camtrapd calibrate` again for this model",
                f.model_sha256.get(..12).unwrap_or(&f.model_sha256),
                sha.get(..12).unwrap_or(sha)
            )));
        }
    }
    if f.label_groups_sha256 != thresholds::groups_fingerprint(groups) {
        return Err(err(
            "was calibrated for other label groups (or without them); [decision.label_groups] changed since: run `camtrapd calibrate` again".into(),
        ));
    }
    match score_fn {
        ScoreFn::MspTemp if !f.temperature.is_some_and(|t| t.is_finite() && t > 0.0) => {
            return Err(err("score msp_temp needs `temperature` (a positive number); run `camtrapd calibrate --score msp_temp` again".into()));
        }
        ScoreFn::Knn => {
            if let Some(b) = bank {
                if f.knn_k != Some(b.k()) || f.knn_bank_sha256.as_deref() != Some(b.sha256()) {
                    return Err(err(format!(
                        "was calibrated with another kNN bank or k (file: k = {:?}, bank {}; model bundle: k = {}, bank {}); run `camtrapd calibrate --score knn` again",
                        f.knn_k,
                        f.knn_bank_sha256.as_deref().map_or("none", |s| s.get(..12).unwrap_or(s)),
                        b.k(),
                        b.sha256().get(..12).unwrap_or(b.sha256())
                    )));
                }
            }
        }
        _ => {}
    }
    Ok(())
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
            score_fn: None,
            calibrated: None,
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
        p.decide(&[3.0, 0.0, 0.0], None, &mut d);
        assert_eq!(d.verdict, Verdict::Detection);
        assert_eq!(d.top_k, vec![0, 1]);
        assert!((d.top_score() - 0.909_442_2).abs() < 1e-5);
        // Confident dog, but dog is not published.
        p.decide(&[0.0, 3.0, 0.0], None, &mut d);
        assert_eq!(
            d.verdict,
            Verdict::Rejected(RejectReason::LabelNotPublished)
        );
        // softmax([0.2, 0, 0]) top = 0.3786 < 0.5: rejected as below threshold.
        p.decide(&[0.2, 0.0, 0.0], None, &mut d);
        assert_eq!(d.verdict, Verdict::Rejected(RejectReason::BelowThreshold));
        assert_eq!(d.top(), Some(0));
        // Exactly at the threshold counts as reaching it.
        let p = Policy::new(&m, &ov(Some(0.5), &[], None)).unwrap();
        p.decide(&[0.0, 0.0, f32::NEG_INFINITY], None, &mut d);
        assert_eq!(d.top_score(), 0.5);
        assert_eq!(d.verdict, Verdict::Detection);
    }

    #[test]
    fn sigmoid_heads_can_reject_everything() {
        let m = manifest("sigmoid", "");
        let p = Policy::new(&m, &ov(Some(0.5), &[], None)).unwrap();
        let mut d = Decision::default();
        // All logits negative: every sigmoid < 0.5, "none of the labels".
        p.decide(&[-2.0, -3.0, -1.0], None, &mut d);
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
        p.decide(&[0.0, 1.0, 1.0], None, &mut d);
        assert!((d.scores[0] - 0.844_6).abs() < 1e-3, "{:?}", d.scores);
        assert_eq!(d.class_scores.len(), 3);
        assert_eq!((d.verdict, d.top()), (Verdict::Detection, Some(0)));
        // A cat (outside every group) leaves the group score low: rejected as unknown.
        p.decide(&[3.0, 0.0, 0.0], None, &mut d);
        assert!((d.scores[0] - 0.090_6).abs() < 1e-3, "{:?}", d.scores);
        assert_eq!(d.verdict, Verdict::Rejected(RejectReason::BelowThreshold));
        // Sigmoid heads: the group takes its best member.
        let p = Policy::new(&manifest("sigmoid", ""), &o).unwrap();
        p.decide(&[0.0, 2.0, -1.0], None, &mut d);
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
            p.decide(raw, None, &mut d);
            assert_eq!(
                d.verdict,
                Verdict::Rejected(RejectReason::InvalidOutput),
                "{raw:?}"
            );
            assert_eq!(d.top(), None);
            assert_eq!(d.top_score(), 0.0);
        }
        // A threshold of 0 still needs a real top label.
        p.decide(&[0.0, 0.0, 0.0], None, &mut d);
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

    fn calibrated(score: ScoreFn, labels: &[(&str, f64)], default: Option<f64>) -> Calibrated {
        Calibrated {
            path: "/etc/camtrapd/thresholds.toml".into(),
            file: ThresholdsFile {
                score,
                model_sha256: "ab".repeat(32),
                label_groups_sha256: None,
                temperature: Some(2.0),
                knn_k: None,
                knn_bank_sha256: None,
                default,
                labels: labels.iter().map(|(l, t)| (l.to_string(), *t)).collect(),
                calibration: None,
            },
        }
    }

    #[test]
    fn thresholds_file_sets_score_and_thresholds() {
        let m = manifest("softmax", "default = 0.3");
        let mut o = ov(None, &[("fox", 9.0)], None);
        o.calibrated = Some(calibrated(ScoreFn::MaxLogit, &[("dog", 2.5)], Some(1.5)));
        let sha = "ab".repeat(32);
        let p = Policy::with_model(&m, &o, Some(&sha), None).unwrap();
        assert_eq!(p.score_fn(), ScoreFn::MaxLogit);
        // Config per label > file per label > file default; the manifest's 0.3 is for msp.
        assert_eq!(
            [p.threshold(0), p.threshold(1), p.threshold(2)],
            [1.5, 2.5, 9.0]
        );
        let mut d = Decision::default();
        p.decide(&[0.5, 3.0, 0.0], None, &mut d);
        assert_eq!(
            (d.verdict, d.confidence, d.threshold),
            (Verdict::Detection, 3.0, 2.5)
        );
        assert!(
            (d.scores[1] - 0.883_492).abs() < 1e-5,
            "top_k stays a probability: {:?}",
            d.scores
        );
        p.decide(&[0.5, 2.0, 0.0], None, &mut d);
        assert_eq!(d.verdict, Verdict::Rejected(RejectReason::BelowThreshold));
        // Another model: refused.
        let e = Policy::with_model(&m, &o, Some(&"cd".repeat(32)), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("thresholds.toml") && e.contains("another model"),
            "{e}"
        );
        // Temperature from the file for msp_temp.
        o.calibrated = Some(calibrated(ScoreFn::MspTemp, &[], Some(0.5)));
        o.thresholds.clear();
        let p = Policy::with_model(&m, &o, Some(&sha), None).unwrap();
        assert_eq!(p.scorer().temperature(), 2.0);
    }

    #[test]
    fn thresholds_of_one_score_are_never_used_for_another() {
        let m = manifest("softmax", "");
        let mut o = ov(None, &[], None);
        o.calibrated = Some(calibrated(ScoreFn::Msp, &[("dog", 0.7)], None));
        o.score_fn = Some(ScoreFn::Energy);
        let e = Policy::new(&m, &o).unwrap_err().to_string();
        assert!(
            e.contains("/etc/camtrapd/thresholds.toml")
                && e.contains(
                    "holds thresholds for score \"msp\", but the decision uses score \"energy\""
                )
                && e.contains("camtrapd calibrate --score energy"),
            "{e}"
        );
        // An unbounded score without thresholds: no silent 0.5.
        o.calibrated = None;
        let e = Policy::new(&m, &o).unwrap_err().to_string();
        assert!(
            e.contains("no default threshold") && e.contains("\"cat\""),
            "{e}"
        );
        o.default_threshold = Some(4.0);
        assert_eq!(Policy::new(&m, &o).unwrap().threshold(0), 4.0);
        // Scores the head cannot give, and msp_temp without a fitted temperature.
        o.score_fn = Some(ScoreFn::Sigmoid);
        assert!(Policy::new(&m, &o)
            .unwrap_err()
            .to_string()
            .contains("one-vs-rest"));
        o.score_fn = Some(ScoreFn::MspTemp);
        assert!(Policy::new(&m, &o)
            .unwrap_err()
            .to_string()
            .contains("temperature"));
        o.score_fn = Some(ScoreFn::Knn);
        assert!(Policy::new(&m, &o)
            .unwrap_err()
            .to_string()
            .contains("camtrapd bank"));
    }
}
