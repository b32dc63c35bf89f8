//! The thresholds file written by `camtrapd calibrate` and named by the
//! daemon config (`[decision] thresholds_file`).
//!
//! Thresholds are in the units of one score function (0..1 for `msp`,
//! `msp_temp` and `sigmoid`; raw logits for `max_logit`; and so on), so the
//! file records that score function, and everything else the numbers depend
//! on: the model (SHA-256 of `model.onnx`), the label groups, the fitted
//! temperature (`msp_temp`) and the kNN bank and k (`knn`). At start-up the
//! daemon refuses a file that does not match what it would run, naming the
//! file and the fix, instead of silently applying thresholds of one score to
//! another.
//!
//! ```toml
//! score = "max_logit"
//! model_sha256 = "f3c69668..."
//! label_groups_sha256 = "5d1c..."   # absent when the labels are the model's own
//! default = 7.9                     # labels without their own threshold
//! [labels]
//! elephant = 8.43
//! [calibration]                     # how the numbers were found (information only)
//! target_precision = 0.95
//! ...
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::score::ScoreFn;

/// The thresholds file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsFile {
    /// The score function the thresholds are in units of.
    pub score: ScoreFn,
    /// Hex SHA-256 of the `model.onnx` they were calibrated for.
    pub model_sha256: String,
    /// Fingerprint of the label groups ([`groups_fingerprint`]); absent
    /// when the decision labels are the model's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_groups_sha256: Option<String>,
    /// The fitted temperature, for `msp_temp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// k of the kNN score, for `knn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_k: Option<usize>,
    /// SHA-256 of the kNN bank file, for `knn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_bank_sha256: Option<String>,
    /// Threshold for labels without their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<f64>,
    /// Per-label thresholds.
    #[serde(default)]
    pub labels: BTreeMap<String, f64>,
    /// How the thresholds were found (information only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationInfo>,
}

/// How a thresholds file was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationInfo {
    /// The precision every label was calibrated to reach.
    pub target_precision: f64,
    /// The calibration data set (folder or manifest), as given.
    pub data: String,
    /// The split used (empty: every image).
    pub split: String,
    /// Known images used.
    pub known_images: usize,
    /// Unknown images used (other animals, empty frames).
    pub unknown_images: usize,
    /// When (RFC 3339, UTC).
    pub created: String,
    /// camtrapd version.
    pub camtrapd: String,
    /// Held-out calibration: the recall cap chosen on folds that hide one
    /// species or label at a time, and the unseen-species estimate
    /// (absent: ordinary calibration, or a file from an older camtrapd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOutInfo>,
    /// Per label: what the threshold achieves on the calibration data.
    #[serde(default)]
    pub per_label: BTreeMap<String, LabelCalibration>,
}

/// How held-out calibration went (see [`crate::eval::unseen`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutInfo {
    /// `held-out` (the recall cap was chosen on held-out folds) or
    /// `ordinary` (too few species and labels to hold any out).
    pub method: String,
    /// Each label keeps at most this share of its calibration photos (1: no cap).
    pub recall_cap: f64,
    /// Precision on the held-out folds at the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_precision: Option<f64>,
    /// Folds used.
    pub folds: usize,
    /// How the fold models were made.
    pub how: String,
    /// Unseen animals published (estimated): mean share over the folds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_animals_published: Option<f64>,
    /// Lowest fold share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_min: Option<f64>,
    /// Highest fold share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_max: Option<f64>,
}

/// What one label's threshold achieves on the calibration data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCalibration {
    /// Whether the target precision was reached.
    pub reached: bool,
    /// Precision at the threshold (absent when nothing is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Recall at the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Known images of the label.
    pub support: usize,
    /// How the threshold was fitted: `precision`, `recall-cap` or `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_by: Option<String>,
}

/// The loaded thresholds file and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    /// The file, for messages.
    pub path: PathBuf,
    /// Its content.
    pub file: ThresholdsFile,
}

/// A thresholds file that cannot be read or does not fit the decision.
#[derive(Debug, thiserror::Error)]
#[error("thresholds file {path}: {message}")]
pub struct ThresholdsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub message: String,
}

impl Calibrated {
    /// Reads a thresholds file.
    ///
    /// # Errors
    /// [`ThresholdsError`] for a missing or malformed file (with line and column).
    pub fn load(path: &Path) -> Result<Calibrated, ThresholdsError> {
        let err = |message: String| ThresholdsError {
            path: path.to_path_buf(),
            message,
        };
        let text = crate::read::read_text(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                err(format!(
                    "{e}; write it with `camtrapd calibrate --out {}`",
                    path.display()
                ))
            } else {
                err(e.to_string())
            }
        })?;
        let file: ThresholdsFile =
            crate::toml_errors::toml_from_str(&text).map_err(|e| err(e.to_string()))?;
        for (what, v) in file
            .labels
            .iter()
            .map(|(l, v)| (format!("labels.{l:?}"), *v))
            .chain(file.default.map(|v| ("default".to_string(), v)))
        {
            if !v.is_finite() || (file.score.bounded() && !(0.0..=1.0).contains(&v)) {
                return Err(err(format!(
                    "`{what}` = {v} is not a {} threshold (allowed: {})",
                    file.score,
                    if file.score.bounded() {
                        "0.0..=1.0"
                    } else {
                        "a finite number"
                    }
                )));
            }
        }
        Ok(Calibrated {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes the file with a comment header saying what it is.
    ///
    /// # Errors
    /// The I/O error, or a serialisation error as `InvalidData`.
    pub fn save(path: &Path, file: &ThresholdsFile, header: &str) -> std::io::Result<()> {
        let body = toml::to_string_pretty(file)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut text = String::new();
        for line in header.lines() {
            text.push_str("# ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&body);
        std::fs::write(path, text)
    }
}

/// A float as written in a thresholds file: the shortest decimal that reads
/// back as the same f32 (so `0.731` rather than `0.7310000061988831`).
pub fn f32_for_file(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(f64::from(v))
}

/// Fingerprint of label groups (group names and members, in order):
/// thresholds calibrated for one grouping do not fit another. `None` when
/// there are no groups.
pub fn groups_fingerprint(groups: &[(String, Vec<String>)]) -> Option<String> {
    if groups.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for (g, members) in groups {
        h.update(g.as_bytes());
        h.update([0]);
        for m in members {
            h.update(m.as_bytes());
            h.update([1]);
        }
        h.update([2]);
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ThresholdsFile {
        ThresholdsFile {
            score: ScoreFn::MaxLogit,
            model_sha256: "ab".repeat(32),
            label_groups_sha256: groups_fingerprint(&[("elephant".into(), vec!["tusker".into()])]),
            temperature: None,
            knn_k: None,
            knn_bank_sha256: None,
            default: Some(f32_for_file(7.9)),
            labels: [("African elephant".to_string(), f32_for_file(8.43))]
                .into_iter()
                .collect(),
            calibration: Some(CalibrationInfo {
                target_precision: 0.95,
                data: "zoo12/manifest.csv".into(),
                split: "calib".into(),
                known_images: 10,
                unknown_images: 5,
                created: "2026-11-29T12:00:00Z".into(),
                camtrapd: "0.1.0".into(),
                held_out: None,
                per_label: [(
                    "African elephant".to_string(),
                    LabelCalibration {
                        reached: true,
                        precision: Some(1.0),
                        recall: Some(0.5),
                        support: 4,
                        fitted_by: None,
                    },
                )]
                .into_iter()
                .collect(),
            }),
        }
    }

    #[test]
    fn round_trip_and_readable_numbers() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("thresholds.toml");
        Calibrated::save(&p, &sample(), "written by a test\nsecond line").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# written by a test\n# second line\n"),
            "{text}"
        );
        assert!(text.contains("\"African elephant\" = 8.43"), "{text}");
        assert!(text.contains("score = \"max_logit\""), "{text}");
        assert_eq!(Calibrated::load(&p).unwrap().file, sample());
    }

    #[test]
    fn bad_files_are_named_with_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("thresholds.toml");
        let e = Calibrated::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("thresholds.toml") && e.contains("camtrapd calibrate"),
            "{e}"
        );
        std::fs::write(
            &p,
            format!(
                "score = \"softmax\"\nmodel_sha256 = \"{}\"\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        let e = Calibrated::load(&p).unwrap_err().to_string();
        assert!(e.contains("softmax") && e.contains("max_logit"), "{e}");
        std::fs::write(
            &p,
            format!(
                "score = \"msp\"\nmodel_sha256 = \"{}\"\n[labels]\ncat = 3.5\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        let e = Calibrated::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("`labels.\"cat\"` = 3.5 is not a msp threshold"),
            "{e}"
        );
    }

    #[test]
    fn fingerprints_change_with_members() {
        let a = groups_fingerprint(&[("e".into(), vec!["a".into(), "b".into()])]);
        let b = groups_fingerprint(&[("e".into(), vec!["a".into()]), ("b".into(), vec![])]);
        assert_ne!(a, b);
        assert_eq!(groups_fingerprint(&[]), None);
        assert_eq!(f32_for_file(0.731), 0.731);
    }
}
