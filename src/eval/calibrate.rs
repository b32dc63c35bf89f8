//! Per-label threshold calibration to a target precision.
//!
//! For each label, the images whose top label it is are candidates; at a
//! threshold `t`, those scoring at least `t` would be published. Precision
//! is the share of them that truly show the label (unknown images, empty
//! frames and other labels' images count against it); recall is the share
//! of the label's images (its support) that would be published. The
//! calibrated threshold is the lowest one whose precision reaches the
//! target, which gives the most recall among those that do. It is written
//! halfway between the lowest accepted score and the highest rejected score
//! of the label below it (the lowest accepted score when nothing below it
//! is rejected), so that it does not sit exactly on one calibration image.
//!
//! When no threshold reaches the target, the one with the best precision is
//! used (ties: the lowest), and the label is flagged; a label with
//! candidates but no true positive at all gets a threshold above every
//! candidate (nothing would be published). A label that is never the top
//! label gets no threshold of its own and falls back to the pooled one
//! ([`calibrate_pooled`]), found the same way over all images at once.
//! Checked against a brute-force numpy implementation in
//! `tests/data/score_reference.json` (`scripts/score_reference.py`).

use crate::decision::Scorer;

use super::outputs::Outputs;

/// Per image: its top label and its confidence under one score function.
#[derive(Debug, Clone, Default)]
pub struct Scored {
    /// Top (decision) label per image.
    pub top: Vec<usize>,
    /// Confidence per image (NaN when it cannot be computed).
    pub score: Vec<f32>,
}

/// Scores every image's outputs with `scorer`.
pub fn score_all(scorer: &Scorer, outputs: &[&Outputs]) -> Scored {
    let (mut buf, mut labels) = (Vec::new(), Vec::new());
    let mut s = Scored::default();
    for o in outputs {
        scorer.label_scores(&o.scores, &mut buf, &mut labels);
        // The first best label on ties, as the daemon's top-k.
        let top = labels
            .iter()
            .enumerate()
            .fold(None::<(usize, f32)>, |best, (i, &v)| match best {
                Some((_, b)) if b >= v => best,
                _ => Some((i, v)),
            })
            .map_or(0, |(i, _)| i);
        let emb = (!o.embedding.is_empty()).then_some(o.embedding.as_slice());
        let conf = scorer
            .confidence(&o.scores, emb, &labels, top)
            .unwrap_or(f32::NAN);
        s.top.push(top);
        s.score.push(conf);
    }
    s
}

/// The calibrated threshold of one label and what it achieves.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelThreshold {
    /// The threshold (`None`: the label was never the top label).
    pub threshold: Option<f32>,
    /// Whether the target precision was reached.
    pub reached: bool,
    /// Precision at the threshold (`None` when nothing is accepted).
    pub precision: Option<f64>,
    /// Recall at the threshold (`None` without support).
    pub recall: Option<f64>,
    /// Images of the label.
    pub support: usize,
    /// Images accepted as the label at the threshold.
    pub accepted: usize,
    /// Of those, how many truly show it.
    pub true_positives: usize,
}

/// Finds the threshold among `cands` (score, is-correct) reaching `target`.
fn search(mut cands: Vec<(f32, bool)>, support: usize, target: f64) -> LabelThreshold {
    let recall = |tp: usize| (support > 0).then(|| tp as f64 / support as f64);
    if cands.is_empty() {
        return LabelThreshold {
            threshold: None,
            reached: false,
            precision: None,
            recall: recall(0),
            support,
            accepted: 0,
            true_positives: 0,
        };
    }
    cands.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = cands.len();
    let total_tp = cands.iter().filter(|c| c.1).count();
    // Walk distinct scores upwards: at index i, everything from i on is accepted.
    let (mut tp, mut i) = (total_tp, 0);
    let mut best: Option<(f64, usize, usize)> = None; // (precision, start index, tp)
    while i < n {
        let accepted = n - i;
        let p = tp as f64 / accepted as f64;
        if p >= target {
            return finish(&cands, i, tp, support, true);
        }
        if best.is_none_or(|b| p > b.0) {
            best = Some((p, i, tp));
        }
        let s = cands[i].0;
        while i < n && cands[i].0.total_cmp(&s).is_eq() {
            if cands[i].1 {
                tp -= 1;
            }
            i += 1;
        }
    }
    match best {
        Some((p, start, tp)) if p > 0.0 => finish(&cands, start, tp, support, false),
        _ => {
            // No true positive at any threshold: publish nothing.
            let max = cands[n - 1].0;
            let above = max + (max.abs() * 1e-6).max(1e-6);
            LabelThreshold {
                threshold: Some(above),
                reached: false,
                precision: None,
                recall: recall(0),
                support,
                accepted: 0,
                true_positives: 0,
            }
        }
    }
}

fn finish(
    cands: &[(f32, bool)],
    start: usize,
    tp: usize,
    support: usize,
    reached: bool,
) -> LabelThreshold {
    let lowest = cands[start].0;
    let threshold = match start.checked_sub(1).map(|j| cands[j].0) {
        Some(below) => {
            let mid = ((f64::from(lowest) + f64::from(below)) / 2.0) as f32;
            if mid > below && mid <= lowest {
                mid
            } else {
                lowest
            }
        }
        None => lowest,
    };
    let accepted = cands.len() - start;
    LabelThreshold {
        threshold: Some(threshold),
        reached,
        precision: Some(tp as f64 / accepted as f64),
        recall: (support > 0).then(|| tp as f64 / support as f64),
        support,
        accepted,
        true_positives: tp,
    }
}

/// Per-label thresholds reaching `target` precision: `truth[i]` is image
/// `i`'s true label (`None`: unknown or empty), `s` its top label and
/// confidence. Images whose confidence is NaN are left out.
pub fn calibrate_labels(
    n_labels: usize,
    truth: &[Option<usize>],
    s: &Scored,
    target: f64,
) -> Vec<LabelThreshold> {
    (0..n_labels)
        .map(|c| {
            let support = truth.iter().filter(|t| **t == Some(c)).count();
            let cands = s
                .top
                .iter()
                .zip(&s.score)
                .zip(truth)
                .filter(|((top, sc), _)| **top == c && !sc.is_nan())
                .map(|((_, sc), t)| (*sc, *t == Some(c)))
                .collect();
            search(cands, support, target)
        })
        .collect()
}

/// One threshold for all labels at once (for labels without their own):
/// an accepted image is correct when its top label is its true label.
pub fn calibrate_pooled(truth: &[Option<usize>], s: &Scored, target: f64) -> LabelThreshold {
    let support = truth.iter().filter(|t| t.is_some()).count();
    let cands = s
        .top
        .iter()
        .zip(&s.score)
        .zip(truth)
        .filter(|((_, sc), _)| !sc.is_nan())
        .map(|((top, sc), t)| (*sc, *t == Some(*top)))
        .collect();
    search(cands, support, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Want {
        reached: bool,
        support: usize,
        threshold: Option<f64>,
        precision: Option<f64>,
        recall: Option<f64>,
        accepted: Option<usize>,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        target: f64,
        #[serde(rename = "true")]
        truth: Vec<i64>,
        pred: Vec<usize>,
        score: Vec<f32>,
        labels: std::collections::BTreeMap<String, Want>,
    }

    #[test]
    fn thresholds_match_the_numpy_brute_force() {
        let r = crate::decision::score::tests::reference_json();
        let c: Case = serde_json::from_value(r["calibration"].clone()).unwrap();
        let truth: Vec<Option<usize>> = c.truth.iter().map(|&t| usize::try_from(t).ok()).collect();
        let s = Scored {
            top: c.pred.clone(),
            score: c.score.clone(),
        };
        let got = calibrate_labels(3, &truth, &s, c.target);
        for (l, want) in &c.labels {
            let g = &got[l.parse::<usize>().unwrap()];
            assert_eq!(
                (g.reached, g.support),
                (want.reached, want.support),
                "label {l}"
            );
            if want.reached {
                let t = f64::from(g.threshold.unwrap());
                assert!(
                    (t - want.threshold.unwrap()).abs() < 1e-6,
                    "label {l}: {t} vs {:?}",
                    want.threshold
                );
                assert_eq!(g.precision, want.precision, "label {l}");
                assert_eq!(g.recall, want.recall, "label {l}");
                assert_eq!(Some(g.accepted), want.accepted, "label {l}");
            }
        }
        // Label 2 takes every unknown confidently (0.999): the target is out of
        // reach, and the best precision is used instead.
        let g = &got[2];
        assert!(!g.reached && g.precision.unwrap() < c.target, "{g:?}");
    }

    #[test]
    fn hand_made_cases() {
        // Label 0: scores 0.9 (right), 0.8 (unknown), 0.7 (right), 0.6 (right).
        let truth = [Some(0), None, Some(0), Some(0), Some(1)];
        let s = Scored {
            top: vec![0, 0, 0, 0, 1],
            score: vec![0.9, 0.8, 0.7, 0.6, 0.5],
        };
        let t = calibrate_labels(3, &truth, &s, 0.75);
        // All four: precision 3/4 = 0.75, reached at the lowest score.
        assert_eq!(
            (t[0].threshold, t[0].reached, t[0].accepted),
            (Some(0.6), true, 4)
        );
        let t = calibrate_labels(3, &truth, &s, 0.9);
        // Only 0.9 reaches 1.0: halfway between 0.9 and 0.8.
        assert_eq!((t[0].threshold, t[0].recall), (Some(0.85), Some(1.0 / 3.0)));
        // Label 1: one right image; label 2: never the top label.
        assert_eq!((t[1].threshold, t[1].precision), (Some(0.5), Some(1.0)));
        assert_eq!((t[2].threshold, t[2].support), (None, 0));
        // Only wrong candidates: a threshold above all of them.
        let s2 = Scored {
            top: vec![1, 1],
            score: vec![3.0, 2.0],
        };
        let t = calibrate_labels(2, &[None, None], &s2, 0.9);
        assert!(t[1].threshold.unwrap() > 3.0 && !t[1].reached);
        let pooled = calibrate_pooled(&truth, &s, 0.75);
        assert_eq!((pooled.threshold, pooled.accepted), (Some(0.5), 5));
    }
}
