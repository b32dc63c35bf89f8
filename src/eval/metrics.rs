//! Open-set metrics over per-image confidence scores (higher = more
//! confident that the image shows one of the model's labels).
//!
//! * [`auroc`]: area under the ROC curve of known (positive) vs unknown
//!   (negative) images; 1 = perfect separation, 0.5 = chance. Ties count half
//!   (the trapezoidal rule), as scikit-learn's `roc_auc_score`.
//! * [`fpr_at_tpr`]: the false-positive rate (share of unknown images
//!   accepted) at the first threshold that accepts at least the given share of
//!   known images, e.g. FPR@95%TPR (Hendrycks & Gimpel 2017; Liang et al. 2018).
//! * [`average_precision`]: area under the precision/recall curve with known
//!   images as positives (AUPR-In), computed as scikit-learn's
//!   `average_precision_score`.
//! * [`oscr`]: open-set classification rate (Dhamija, Günther & Boult 2018,
//!   "Reducing Network Agnostophobia"): area under the curve of the correct
//!   classification rate of known images against the false-positive rate of
//!   unknown images, over all thresholds.
//!
//! All functions take scores as `f32` (any range) and return `None` when a
//! side is empty (the metric is undefined). They are checked against values
//! computed by scikit-learn and numpy in `tests/data/metrics_reference.json`
//! (made by `scripts/metrics_reference.py`).

/// One operating point per distinct threshold, from the strictest (nothing
/// accepted) to the loosest (everything accepted): `(fpr, tpr, precision)`.
fn curve(pos: &[f32], neg: &[f32]) -> Option<Vec<(f64, f64, f64)>> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    let mut points = vec![(0.0, 0.0, 1.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        // Every sample with this score is accepted by the same threshold.
        while i < all.len() && all[i].0.total_cmp(&s).is_eq() {
            if all[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push((fp as f64 / nn, tp as f64 / np, tp as f64 / (tp + fp) as f64));
    }
    Some(points)
}

/// The ROC curve, known scores `pos` against unknown scores `neg`: one
/// `(false-positive rate, true-positive rate)` point per distinct threshold,
/// from `(0, 0)` to `(1, 1)`.
pub fn roc_points(pos: &[f32], neg: &[f32]) -> Option<Vec<(f64, f64)>> {
    Some(curve(pos, neg)?.into_iter().map(|p| (p.0, p.1)).collect())
}

/// Area under the ROC curve, known scores `pos` against unknown scores `neg`.
pub fn auroc(pos: &[f32], neg: &[f32]) -> Option<f64> {
    let c = curve(pos, neg)?;
    Some(
        c.windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum(),
    )
}

/// False-positive rate at the first threshold whose true-positive rate
/// reaches `tpr` (0..1), e.g. `fpr_at_tpr(known, unknown, 0.95)`.
pub fn fpr_at_tpr(pos: &[f32], neg: &[f32], tpr: f64) -> Option<f64> {
    let c = curve(pos, neg)?;
    c.iter().find(|p| p.1 >= tpr).map(|p| p.0)
}

/// Average precision with known images as positives (AUPR-In).
pub fn average_precision(pos: &[f32], neg: &[f32]) -> Option<f64> {
    let c = curve(pos, neg)?;
    Some(c.windows(2).map(|w| (w[1].1 - w[0].1) * w[1].2).sum())
}

/// Open-set classification rate: `known` holds each known image's score and
/// whether its top label was right; `unknown` the unknown images' scores.
pub fn oscr(known: &[(f32, bool)], unknown: &[f32]) -> Option<f64> {
    if known.is_empty() || unknown.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, Option<bool>)> = known
        .iter()
        .map(|&(s, ok)| (s, Some(ok)))
        .chain(unknown.iter().map(|&s| (s, None)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (nk, nu) = (known.len() as f64, unknown.len() as f64);
    let (mut correct, mut fp) = (0usize, 0usize);
    let (mut area, mut last) = (0.0, (0.0f64, 0.0f64));
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        while i < all.len() && all[i].0.total_cmp(&s).is_eq() {
            match all[i].1 {
                Some(true) => correct += 1,
                Some(false) => {}
                None => fp += 1,
            }
            i += 1;
        }
        let p = (fp as f64 / nu, correct as f64 / nk);
        area += (p.0 - last.0) * (p.1 + last.1) / 2.0;
        last = p;
    }
    Some(area)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        known: Vec<f32>,
        unknown: Vec<f32>,
        correct: Vec<bool>,
        auroc: f64,
        fpr_at_95_tpr: f64,
        aupr: f64,
        oscr: f64,
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        cases: Vec<Case>,
    }

    #[test]
    fn metrics_match_scikit_learn() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/metrics_reference.json"
        );
        let r: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(r.cases.len(), 4);
        for c in &r.cases {
            let close = |got: Option<f64>, want: f64, what: &str| {
                let got = got.unwrap_or_else(|| panic!("{}: {what} undefined", c.name));
                assert!(
                    (got - want).abs() < 1e-9,
                    "{}: {what} {got} vs reference {want}",
                    c.name
                );
            };
            close(auroc(&c.known, &c.unknown), c.auroc, "AUROC");
            close(
                fpr_at_tpr(&c.known, &c.unknown, 0.95),
                c.fpr_at_95_tpr,
                "FPR@95%TPR",
            );
            close(average_precision(&c.known, &c.unknown), c.aupr, "AUPR");
            let k: Vec<(f32, bool)> = c
                .known
                .iter()
                .copied()
                .zip(c.correct.iter().copied())
                .collect();
            close(oscr(&k, &c.unknown), c.oscr, "OSCR");
        }
    }

    #[test]
    fn empty_sides_are_undefined() {
        assert_eq!(auroc(&[], &[0.5]), None);
        assert_eq!(fpr_at_tpr(&[0.5], &[], 0.95), None);
        assert_eq!(oscr(&[], &[0.1]), None);
        // Hand-computed: one known above one unknown.
        assert_eq!(auroc(&[0.9], &[0.1]), Some(1.0));
        assert_eq!(auroc(&[0.5], &[0.5]), Some(0.5));
    }
}
