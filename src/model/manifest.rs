//! The model bundle manifest, `model.toml`: what the ONNX graph expects as
//! input, what its outputs mean, its labels, default thresholds and where it
//! came from. See docs/models.md, "The manifest", for a commented example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::score_fn::{check_threshold_for, ScoreFn};

/// Parsed `model.toml`. Unknown fields are rejected so that typos surface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short model name, reported with every detection.
    pub name: String,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// Input tensor description.
    pub input: InputSpec,
    /// Output tensor description.
    pub output: OutputSpec,
    /// Default per-label thresholds (scores 0..1); the daemon config may override them.
    #[serde(default)]
    pub thresholds: ManifestThresholds,
    /// The kNN embedding bank for the `knn` score (optional).
    #[serde(default)]
    pub knn: Option<KnnSpec>,
    /// Origin of the model file.
    pub provenance: Provenance,
    /// Labels in output order: `labels[i]` names column `i` of the scores output.
    pub labels: Vec<String>,
}

/// Memory layout of the 4-D image input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    /// `[batch, channels, height, width]` (PyTorch exports).
    #[serde(alias = "nchw")]
    NCHW,
    /// `[batch, height, width, channels]` (TensorFlow/TFLite/AutoML exports via tf2onnx).
    #[serde(alias = "nhwc")]
    NHWC,
}

/// Element type of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputDatum {
    /// 32-bit float; normalisation applies.
    F32,
    /// Raw 0..255 pixel values (e.g. AutoML / TFLite exports); no normalisation.
    U8,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ColourOrder {
    /// Red, green, blue (most PyTorch and TensorFlow models).
    #[serde(alias = "rgb")]
    RGB,
    /// Blue, green, red (Caffe and OpenCV-trained models).
    #[serde(alias = "bgr")]
    BGR,
}

/// How a frame of arbitrary size becomes `width × height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Stretch the whole frame to the input size (aspect ratio not kept).
    Squash,
    /// Take the centred region with the input's aspect ratio, covering
    /// `crop_fraction` of the frame's shorter side, and resize it
    /// (torchvision's "resize 256, centre-crop 224" is `crop_fraction = 0.875`).
    CenterCrop,
    /// Fit the whole frame inside the input keeping the aspect ratio and pad
    /// the rest with `pad_value`.
    Letterbox,
}

/// Per-channel value: one number for all three channels, or three.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "a number, or a list of 3 numbers (one per channel)"
)]
pub enum PerChannel {
    /// Same value for R, G and B.
    One(f32),
    /// One value per channel, in the model's colour order.
    Three([f32; 3]),
}

impl PerChannel {
    /// The three per-channel values.
    pub fn values(self) -> [f32; 3] {
        match self {
            PerChannel::One(v) => [v; 3],
            PerChannel::Three(v) => v,
        }
    }
}

/// Input normalisation, applied to 0..255 pixel values: either
/// `(x - mean) / std` or `x * scale + offset`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    /// Per-channel mean, in 0..255 pixel units (e.g. 127 or [123.675, 116.28, 103.53]).
    pub mean: Option<PerChannel>,
    /// Per-channel standard deviation, in 0..255 pixel units (e.g. 128 or [58.395, 57.12, 57.375]).
    pub std: Option<PerChannel>,
    /// Multiplier (e.g. 0.003921569 = 1/255).
    pub scale: Option<PerChannel>,
    /// Added after `scale` (e.g. -1.0).
    pub offset: Option<PerChannel>,
}

/// Input tensor description (`[input]` in `model.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// ONNX input name, e.g. `input` or `serving_default_input:0`.
    pub name: String,
    /// NCHW or NHWC.
    pub layout: Layout,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// `f32` or `u8`.
    pub datum_type: InputDatum,
    /// `RGB` (default) or `BGR`.
    #[serde(default = "default_colour_order")]
    pub colour_order: ColourOrder,
    /// `squash`, `center-crop` or `letterbox`.
    pub resize: ResizeMode,
    /// For `center-crop`: fraction (0..1] of the shorter side kept; default 1.0.
    #[serde(default)]
    pub crop_fraction: Option<f32>,
    /// For `letterbox`: the padding grey level 0..255; default 0.
    #[serde(default)]
    pub pad_value: Option<u8>,
    /// Normalisation for `f32` inputs; must be absent for `u8` inputs.
    #[serde(default)]
    pub normalisation: Option<Normalisation>,
}

fn default_colour_order() -> ColourOrder {
    ColourOrder::RGB
}

/// What the scores output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Raw, unnormalised scores; `activation` turns them into 0..1 scores.
    Logits,
    /// Already 0..1 scores (the graph ends in a softmax or sigmoid). After a
    /// softmax they sum to at most 1: less when the graph leaves out a
    /// "nothing" class (`camtrapd train --loss softmax-nothing`).
    Probabilities,
}

/// How logits become 0..1 scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Softmax over all labels: scores sum to 1 (one label per frame).
    Softmax,
    /// Sigmoid per label (one-vs-rest heads): each score is independent, so
    /// "none of the labels" can be expressed by all scores being low.
    Sigmoid,
}

/// Output description (`[output]` in `model.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// ONNX output name holding the per-label scores, shape `[1, labels]`.
    pub name: String,
    /// `logits` or `probabilities`.
    pub kind: OutputKind,
    /// `softmax` or `sigmoid`: how the scores were (or are to be) normalised.
    pub activation: Activation,
    /// Optional ONNX output holding the embedding (penultimate features), shape `[1, D]`.
    #[serde(default)]
    pub embedding: Option<String>,
}

/// The kNN embedding bank (`[knn]`, see [`super::knn_bank`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnSpec {
    /// The bank file, relative to the bundle folder (`.npy`, `[n, D]` f32).
    pub bank: PathBuf,
    /// Hex SHA-256 of the bank file; checked at load.
    pub sha256: String,
    /// Which neighbour's distance is the score (1 = the nearest).
    pub k: usize,
}

/// Default thresholds shipped with the model (`[thresholds]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestThresholds {
    /// The score function the thresholds are for (default: the head's own
    /// 0..1 score, `msp` or `sigmoid`); they apply only when the decision
    /// uses it.
    #[serde(default)]
    pub score: Option<ScoreFn>,
    /// Threshold for labels without their own entry (in the score's units).
    #[serde(default)]
    pub default: Option<f32>,
    /// Per-label thresholds (in the score's units; e.g. calibrated to a target precision).
    #[serde(default)]
    pub labels: BTreeMap<String, f32>,
}

/// Where the model came from (`[provenance]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Where the weights and architecture come from, and how the file was made.
    pub source: String,
    /// Licence of the weights.
    pub licence: String,
    /// Hex SHA-256 of `model.onnx`; checked at load.
    pub sha256: String,
    /// How the model was quantised, if at all.
    #[serde(default)]
    pub quantisation: Option<String>,
    /// How the head was trained, for bundles written by `camtrapd train`.
    #[serde(default)]
    pub training: Option<TrainingProvenance>,
}

/// How `camtrapd train` made a bundle (`[provenance.training]`): enough to
/// rebuild it and to know what it was trained on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingProvenance {
    /// The command line that wrote the bundle.
    pub command: String,
    /// The training loss: `sigmoid`, `softmax-nothing` or `entropic`.
    pub loss: String,
    /// The backbone bundle's name.
    pub backbone: String,
    /// Hex SHA-256 of the backbone's `model.onnx`.
    pub backbone_sha256: String,
    /// The data set (folder or manifest CSV) as given.
    pub data: String,
    /// Hex SHA-256 of the manifest CSV the splits come from.
    pub data_sha256: String,
    /// The split the head was trained on.
    pub split: String,
    /// Seed of the initial weights and of the held-out split.
    pub seed: u64,
    /// Labelled and negative ("nothing") training images, and held-out images for early stopping.
    pub images: String,
    /// Epochs run and the epoch whose weights were kept.
    pub epochs: String,
    /// The L2 regularisation strength used.
    pub l2: f64,
    /// How the bundle decides: `evidence` (the head combined with second
    /// opinions of the backbone) or `head`; absent in older bundles (head).
    #[serde(default)]
    pub decision: Option<String>,
    /// The weights of the second opinions (`decision = "evidence"`).
    #[serde(default)]
    pub evidence: Option<EvidenceProvenance>,
    /// How the thresholds in `[thresholds]` were fitted: `held-out` (recall
    /// cap chosen on held-out species and labels, see `eval::unseen`) or
    /// `ordinary`; absent in older bundles (ordinary).
    #[serde(default)]
    pub calibration: Option<String>,
}

/// The fixed weights of a bundle's second opinions (see `train::evidence`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceProvenance {
    /// Weight of the head's logit.
    pub head_weight: f32,
    /// Weight of the nearest-photo cosine similarity.
    pub knn_weight: f32,
    /// Temperature of the backbone's ImageNet softmax.
    pub imagenet_temperature: f32,
    /// Offset of the combined logit.
    pub offset: f32,
}

/// Errors reading or checking a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read model manifest {path}: {error}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The TOML is malformed or has a wrong/unknown field (toml's message has line and column).
    #[error("invalid model manifest {path}, {message}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// toml's message, with line, column and the offending text.
        message: String,
    },
    /// The manifest parsed but a value is not allowed.
    #[error("invalid model manifest {path}: field `{field}`: {message}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// Dotted field name, e.g. `input.crop_fraction`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl Manifest {
    /// Reads and checks `path` (a `model.toml`).
    ///
    /// # Errors
    /// [`ManifestError::Read`], [`ManifestError::Parse`] (with line/column) or
    /// [`ManifestError::Invalid`] naming the field and what is allowed.
    pub fn from_path(path: &Path) -> Result<Manifest, ManifestError> {
        let text = crate::read::read_text(path).map_err(|error| ManifestError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_str(&text, path)
    }

    /// Parses manifest text; `path` is used in error messages only.
    ///
    /// # Errors
    /// As [`Manifest::from_path`], without `Read`.
    pub fn from_str(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            crate::toml_errors::toml_from_str(text).map_err(|e| ManifestError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        m.check(path)?;
        Ok(m)
    }

    fn check(&self, path: &Path) -> Result<(), ManifestError> {
        let bad = |field: &str, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        if self.labels.is_empty() {
            return Err(bad(
                "labels",
                "the list is empty; list the labels in output order".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.labels {
            if l.trim().is_empty() {
                return Err(bad("labels", "a label is empty".into()));
            }
            if !seen.insert(l.as_str()) {
                return Err(bad(
                    "labels",
                    format!("label {l:?} appears twice; labels must be unique"),
                ));
            }
        }
        let i = &self.input;
        for (field, v) in [("input.width", i.width), ("input.height", i.height)] {
            if v == 0 || v > 4096 {
                return Err(bad(
                    field,
                    format!("{v} is out of range; allowed 1..=4096 pixels"),
                ));
            }
        }
        if let Some(f) = i.crop_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(bad(
                    "input.crop_fraction",
                    format!("{f} is out of range; allowed (0, 1], e.g. 0.875"),
                ));
            }
            if i.resize != ResizeMode::CenterCrop {
                return Err(bad(
                    "input.crop_fraction",
                    "only applies with resize = \"center-crop\"".into(),
                ));
            }
        }
        if i.pad_value.is_some() && i.resize != ResizeMode::Letterbox {
            return Err(bad(
                "input.pad_value",
                "only applies with resize = \"letterbox\"".into(),
            ));
        }
        match (i.datum_type, &i.normalisation) {
            (InputDatum::U8, Some(_)) => {
                return Err(bad(
                    "input.normalisation",
                    "a u8 input takes raw 0..255 pixels; remove normalisation or use datum_type = \"f32\"".into(),
                ))
            }
            (InputDatum::F32, Some(n)) => {
                let mean_std = n.mean.is_some() || n.std.is_some();
                let scale_offset = n.scale.is_some() || n.offset.is_some();
                if mean_std && scale_offset {
                    return Err(bad(
                        "input.normalisation",
                        "give either mean/std or scale/offset, not both".into(),
                    ));
                }
                if mean_std && (n.mean.is_none() || n.std.is_none()) {
                    return Err(bad("input.normalisation", "mean and std go together; give both".into()));
                }
                if !mean_std && !scale_offset {
                    return Err(bad(
                        "input.normalisation",
                        "is empty; give mean and std, or scale (and offset), or remove it for raw 0..255 values".into(),
                    ));
                }
                for (field, v) in [("std", n.std), ("scale", n.scale)] {
                    if let Some(v) = v {
                        if v.values().iter().any(|s| !s.is_finite() || *s <= 0.0) {
                            return Err(bad(&format!("input.normalisation.{field}"), "must be finite and greater than 0".into()));
                        }
                    }
                }
                for (field, v) in [("mean", n.mean), ("offset", n.offset)] {
                    if let Some(v) = v {
                        if v.values().iter().any(|s| !s.is_finite()) {
                            return Err(bad(&format!("input.normalisation.{field}"), "must be finite".into()));
                        }
                    }
                }
            }
            (InputDatum::F32, None) => {}
            (InputDatum::U8, None) => {}
        }
        if self.output.embedding.as_deref() == Some(&self.output.name) {
            return Err(bad(
                "output.embedding",
                "must name a different output than output.name".into(),
            ));
        }
        let bounded = self.thresholds.score.is_none_or(|s| s.bounded());
        let check_threshold = |t: f32| check_threshold_for(t, bounded);
        if let Some(t) = self.thresholds.default {
            check_threshold(t).map_err(|m| bad("thresholds.default", m))?;
        }
        if let Some(k) = &self.knn {
            if self.output.embedding.is_none() {
                return Err(bad(
                    "knn",
                    "the kNN score needs the model's embedding: name it in output.embedding".into(),
                ));
            }
            if k.k == 0 {
                return Err(bad("knn.k", "must be at least 1".into()));
            }
            if k.sha256.len() != 64 || !k.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(
                    "knn.sha256",
                    "must be the 64 hex digits of `sha256sum` of the bank file".into(),
                ));
            }
        }
        for (label, t) in &self.thresholds.labels {
            if !self.labels.iter().any(|l| l == label) {
                return Err(bad(
                    &format!("thresholds.labels.{label:?}"),
                    format!("{label:?} is not one of the manifest's labels"),
                ));
            }
            check_threshold(*t).map_err(|m| bad(&format!("thresholds.labels.{label:?}"), m))?;
        }
        let sha = &self.provenance.sha256;
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(
                "provenance.sha256",
                "must be the 64 hex digits of `sha256sum model.onnx`".into(),
            ));
        }
        Ok(())
    }

    /// What the daemon feeds the model, in one line for the run log and
    /// `check-config`: input name, layout, datum type, shape, colour order,
    /// normalisation and resize, e.g. `"input": NCHW f32 1×3×224×224, RGB,
    /// (pixel - mean) / std with mean 127 and std 128, center-crop 0.875`.
    pub fn input_summary(&self) -> String {
        let i = &self.input;
        let shape = match i.layout {
            Layout::NCHW => format!("1×3×{}×{}", i.height, i.width),
            Layout::NHWC => format!("1×{}×{}×3", i.height, i.width),
        };
        let datum = match i.datum_type {
            InputDatum::F32 => "f32",
            InputDatum::U8 => "u8",
        };
        let show = |v: PerChannel| {
            let [a, b, c] = v.values();
            if a == b && b == c {
                format!("{a}")
            } else {
                format!("[{a}, {b}, {c}]")
            }
        };
        let normalisation = match &i.normalisation {
            None => "raw 0..255 pixel values (no normalisation)".to_string(),
            Some(n) => match (n.mean, n.std, n.scale, n.offset) {
                (Some(m), Some(s), _, _) => {
                    format!(
                        "(pixel - mean) / std with mean {} and std {}",
                        show(m),
                        show(s)
                    )
                }
                (_, _, scale, offset) => format!(
                    "pixel × scale + offset with scale {} and offset {}",
                    scale.map_or("1".into(), show),
                    offset.map_or("0".into(), show)
                ),
            },
        };
        let resize = match i.resize {
            ResizeMode::Squash => "squash".to_string(),
            ResizeMode::CenterCrop => {
                format!("center-crop {}", i.crop_fraction.unwrap_or(1.0))
            }
            ResizeMode::Letterbox => format!("letterbox (pad {})", i.pad_value.unwrap_or(0)),
        };
        format!(
            "{:?}: {:?} {datum} {shape}, {:?}, {normalisation}, {resize}",
            i.name, i.layout, i.colour_order
        )
    }

    /// Normalisation as per-channel `(scale, offset)` so that the tensor value is
    /// `pixel * scale + offset` for a 0..255 pixel (identity for `u8` inputs).
    pub fn scale_offset(&self) -> ([f32; 3], [f32; 3]) {
        match &self.input.normalisation {
            None => ([1.0; 3], [0.0; 3]),
            Some(n) => {
                if let (Some(mean), Some(std)) = (n.mean, n.std) {
                    let (m, s) = (mean.values(), std.values());
                    (
                        [1.0 / s[0], 1.0 / s[1], 1.0 / s[2]],
                        [-m[0] / s[0], -m[1] / s[1], -m[2] / s[2]],
                    )
                } else {
                    (
                        n.scale.map_or([1.0; 3], PerChannel::values),
                        n.offset.map_or([0.0; 3], PerChannel::values),
                    )
                }
            }
        }
    }
}

/// A small manifest for unit tests: `labels` (TOML array body), the
/// `[input]` lines after `name = "x"`, and the `[output]` activation.
#[cfg(test)]
pub(crate) fn test_manifest(
    labels: &str,
    input: &str,
    activation: &str,
    thresholds: &str,
) -> Manifest {
    let t = format!(
        "name = \"t\"\nlabels = [{labels}]\n[input]\nname = \"x\"\n{input}\n[output]\nname = \"y\"\nkind = \"logits\"\nactivation = \"{activation}\"\n[thresholds]\n{thresholds}\n[provenance]\nsource = \"s\"\nlicence = \"l\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    );
    Manifest::from_str(&t, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "tiny"
labels = ["cat", "dog"]
[input]
name = "input"
layout = "NCHW"
width = 224
height = 224
datum_type = "f32"
resize = "center-crop"
crop_fraction = 0.875
normalisation = { mean = 127.0, std = 128.0 }
[output]
name = "logits"
kind = "logits"
activation = "softmax"
[provenance]
source = "test"
licence = "CC0"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    fn parse(t: &str) -> Result<Manifest, ManifestError> {
        Manifest::from_str(t, Path::new("m/model.toml"))
    }

    #[test]
    fn good_manifest_parses_and_normalises() {
        let m = parse(GOOD).unwrap();
        let (s, o) = m.scale_offset();
        assert!((s[0] - 1.0 / 128.0).abs() < 1e-9);
        assert!((o[2] + 127.0 / 128.0).abs() < 1e-6);
        assert_eq!(m.input.colour_order, ColourOrder::RGB);
    }

    #[test]
    fn unknown_field_is_named_with_line() {
        let t = GOOD.replace("width = 224", "widht = 224");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("m/model.toml"), "{e}");
        assert!(e.contains("widht"), "{e}");
        assert!(e.contains("line 7"), "{e}");
    }

    #[test]
    fn bad_layout_lists_allowed_values() {
        let t = GOOD.replace("\"NCHW\"", "\"CHW\"");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("NCHW") && e.contains("NHWC"), "{e}");
    }

    #[test]
    fn u8_input_with_normalisation_is_refused() {
        let t = GOOD.replace("\"f32\"", "\"u8\"");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("input.normalisation"), "{e}");
    }

    #[test]
    fn duplicate_labels_and_bad_thresholds_are_refused() {
        let e = parse(&GOOD.replace("\"dog\"", "\"cat\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
        let t = format!("{GOOD}\n[thresholds]\nlabels = {{ cat = 1.5 }}\n");
        let e = parse(&t).unwrap_err().to_string();
        assert!(
            e.contains("thresholds.labels") && e.contains("0.0..=1.0"),
            "{e}"
        );
        let t = format!("{GOOD}\n[thresholds]\nlabels = {{ cow = 0.5 }}\n");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("\"cow\" is not one of"), "{e}");
    }

    #[test]
    fn bad_sha_is_refused() {
        let e = parse(&GOOD.replace(
            "0000000000000000000000000000000000000000000000000000000000000000",
            "abc",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("provenance.sha256"), "{e}");
    }
}
