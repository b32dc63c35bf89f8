//! The per-frame detection: what sinks publish for each frame that passed the
//! decision. Serialised as one JSON object (see docs/mqtt.md, "Detections").

use serde::{Deserialize, Serialize};

/// One label and its 0..1 score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    /// Label name as in the model manifest.
    pub label: String,
    /// Score 0..1 (softmax probability or sigmoid output).
    pub score: f32,
}

/// Model identity reported with each detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRef {
    /// Manifest `name`.
    pub name: String,
    /// First 12 hex digits of the SHA-256 of `model.onnx`.
    pub sha256: String,
}

/// Per-stage latency of one frame, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Reading and decoding the image.
    pub decode: f64,
    /// Resize and normalise into the input tensor.
    pub preprocess: f64,
    /// Running the model.
    pub inference: f64,
    /// Scores, thresholds, top-k.
    pub decision: f64,
    /// Sum of the above.
    pub total: f64,
}

/// A confident detection of a publishable label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Unique id of this detection: a UUID version 7 (RFC 9562), which sorts
    /// by creation time. Lets consumers drop the duplicates QoS 1 allows.
    pub id: String,
    /// Camera id from the config (`camera_id`, default: the host name).
    pub camera: String,
    /// The detected label.
    pub label: String,
    /// Its confidence under `score_fn` (0..1 for `msp`, `msp_temp` and
    /// `sigmoid`; the score function's own units for the others).
    pub score: f32,
    /// The score function that computed `score` (and that `threshold` is in).
    pub score_fn: super::ScoreFn,
    /// The threshold it cleared (in `score_fn`'s units).
    pub threshold: f32,
    /// The k best labels, best first (including the detected one), with
    /// their 0..1 probabilities (softmax or sigmoid) whatever `score_fn` is.
    pub top_k: Vec<LabelScore>,
    /// Where the frame came from (file path, or device and frame number).
    pub source: String,
    /// Frame sequence number within the source.
    pub frame_seq: u64,
    /// Capture time, RFC 3339 UTC with milliseconds.
    pub captured_at: String,
    /// The model that made the decision.
    pub model: ModelRef,
    /// Per-stage latency in ms.
    pub latency_ms: Latency,
}
