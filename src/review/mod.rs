//! Review capture: the frames worth a second look, kept on disk for the
//! dashboard's review queue ([`crate::web`]) and sorted there into a data
//! set that `camtrapd train` reads.
//!
//! Which frames are kept ([`Selector`], per classified frame):
//!
//! * the best frame of every event (replaced in place when a later frame of
//!   the event scores higher), and every detection frame that has not (yet)
//!   become an event: the frames where the model said "animal";
//! * near misses: rejected frames whose top score lies less than
//!   `near_miss_margin` below its label's threshold;
//! * a sample of the other rejected frames: 1 in `sample_every`, plus one
//!   whenever `sample_minutes` have passed since the last sample, so that an
//!   empty scene is represented too.
//!
//! Each frame is a JPEG with a JSON sidecar ([`Sidecar`]) in the queue
//! folder, named by an id (a UUID v7, which sorts by time). It is written
//! off the frame path ([`capture`]): a bounded queue to a writer thread
//! that drops and counts when the queue is full; a full disk is logged once
//! and never stalls the pipeline. The queue folder is kept under a quota,
//! oldest first ([`store`]).

pub mod capture;
pub mod store;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, LabelScore, RejectReason, ScoreFn, Verdict};

/// `[review]` in the config: review capture (off unless `enabled = true`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// Keep frames for review. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// The review folder: the queue is `<folder>/queue`, the sorted data
    /// set `<folder>/sorted` unless `dataset` says otherwise. Relative to
    /// the config file's folder. Default `review`.
    #[serde(default = "default_folder")]
    pub folder: PathBuf,
    /// Where sorted frames go, in the layout `camtrapd train` reads
    /// (`<dataset>/<label>/`, `nothing_animals/`, `nothing_empty/`).
    /// Default `<folder>/sorted`.
    #[serde(default)]
    pub dataset: Option<PathBuf>,
    /// Disk quota of the queue in MB (10^6 bytes): the oldest frames are
    /// deleted first. Sorted frames do not count. Default 500.
    #[serde(default = "default_quota")]
    pub quota_mb: u64,
    /// A rejected frame whose top score is at most this far below its
    /// label's threshold is a near miss (in the score function's units).
    /// Default 0.15.
    #[serde(default = "default_margin")]
    pub near_miss_margin: f32,
    /// Keep 1 in this many of the other rejected frames (0: none). Default 100.
    #[serde(default = "default_every")]
    pub sample_every: u64,
    /// And one of them whenever this many minutes have passed since the
    /// last one (0: no timed sample). Default 10.
    #[serde(default = "default_minutes")]
    pub sample_minutes: f64,
    /// Longest side of the kept JPEGs in pixels (64..=4096). Frames are
    /// decoded at least this large while review capture is on. Default 800.
    #[serde(default = "default_side")]
    pub image_side: u32,
    /// Frames waiting for the writer thread; more are dropped and counted
    /// (1..=256). Default 8.
    #[serde(default = "default_queue")]
    pub queue_len: usize,
}

fn default_folder() -> PathBuf {
    PathBuf::from("review")
}
fn default_quota() -> u64 {
    500
}
fn default_margin() -> f32 {
    0.15
}
fn default_every() -> u64 {
    100
}
fn default_minutes() -> f64 {
    10.0
}
fn default_side() -> u32 {
    800
}
fn default_queue() -> usize {
    8
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            enabled: false,
            folder: default_folder(),
            dataset: None,
            quota_mb: default_quota(),
            near_miss_margin: default_margin(),
            sample_every: default_every(),
            sample_minutes: default_minutes(),
            image_side: default_side(),
            queue_len: default_queue(),
        }
    }
}

impl ReviewConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// `(field, message)` for the first setting out of range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.quota_mb == 0 {
            return Err((
                "review.quota_mb",
                "0 would delete every frame at once; use at least 1 (MB), or enabled = false"
                    .into(),
            ));
        }
        if !(self.near_miss_margin.is_finite() && self.near_miss_margin >= 0.0) {
            return Err((
                "review.near_miss_margin",
                format!(
                    "{} is out of range: use 0 or more (in the score function's units)",
                    self.near_miss_margin
                ),
            ));
        }
        if !(self.sample_minutes.is_finite() && (0.0..=10080.0).contains(&self.sample_minutes)) {
            return Err((
                "review.sample_minutes",
                format!("{} is out of range: use 0..=10080", self.sample_minutes),
            ));
        }
        if !(64..=4096).contains(&self.image_side) {
            return Err((
                "review.image_side",
                format!("{} is out of range: use 64..=4096 pixels", self.image_side),
            ));
        }
        if !(1..=256).contains(&self.queue_len) {
            return Err((
                "review.queue_len",
                format!("{} is out of range: use 1..=256", self.queue_len),
            ));
        }
        Ok(())
    }
}

/// Why a frame was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The best frame of an event.
    Event,
    /// A detection frame outside any event.
    Detection,
    /// A rejected frame just below its label's threshold.
    NearMiss,
    /// A sampled rejected frame.
    Sample,
}

impl Kind {
    /// `event`, `detection`, `near_miss` or `sample`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Detection => "detection",
            Kind::NearMiss => "near_miss",
            Kind::Sample => "sample",
        }
    }
}

/// The model of a kept frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidecarModel {
    /// Manifest name.
    pub name: String,
    /// SHA-256 of model.onnx (hex, whole).
    pub sha256: String,
}

/// The JSON sidecar of a kept frame (`<id>.json` next to `<id>.jpg`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// The frame's id (a UUID v7; the event id for an event's best frame).
    pub id: String,
    /// Why it was kept.
    pub kind: Kind,
    /// Capture time, RFC 3339 UTC.
    pub captured_at: String,
    /// Camera id.
    pub camera: String,
    /// Where the frame came from (file path, or device and frame number).
    pub source: String,
    /// Its sequence number within the source.
    pub frame_seq: u64,
    /// The model that classified it.
    pub model: SidecarModel,
    /// The score function of `score` and `threshold`.
    pub score_fn: ScoreFn,
    /// The best labels, best first, with their 0..1 scores.
    pub top_k: Vec<LabelScore>,
    /// `detection` or `rejected`.
    pub verdict: String,
    /// Why it was rejected (`below_threshold`, `label_not_published`, ...).
    pub reason: Option<String>,
    /// The top label's score under `score_fn`.
    pub score: f32,
    /// The top label's threshold.
    pub threshold: f32,
    /// The event it belongs to.
    pub event_id: Option<String>,
}

/// Decides, frame by frame, which frames are kept (see the module docs).
#[derive(Debug)]
pub struct Selector {
    margin: f32,
    every: u64,
    interval: Option<Duration>,
    rejected_seen: u64,
    last_sample: Option<Instant>,
}

impl Selector {
    /// A selector for `cfg`.
    pub fn new(cfg: &ReviewConfig) -> Selector {
        Selector {
            margin: cfg.near_miss_margin,
            every: cfg.sample_every,
            interval: (cfg.sample_minutes > 0.0)
                .then(|| Duration::from_secs_f64(cfg.sample_minutes * 60.0)),
            rejected_seen: 0,
            last_sample: None,
        }
    }

    /// Whether to keep a classified frame, and as what. `in_event`: its
    /// detection belongs to an open event (whose best frame is kept
    /// instead). `now` is a monotonic clock reading.
    pub fn select(&mut self, d: &Decision, in_event: bool, now: Instant) -> Option<Kind> {
        match d.verdict {
            Verdict::Detection => (!in_event).then_some(Kind::Detection),
            Verdict::Rejected(RejectReason::Unreadable | RejectReason::InvalidOutput) => None,
            Verdict::Rejected(reason) => {
                if reason == RejectReason::BelowThreshold
                    && d.top().is_some()
                    && d.confidence < d.threshold
                    && d.threshold - d.confidence <= self.margin
                {
                    return Some(Kind::NearMiss);
                }
                self.rejected_seen += 1;
                let nth = self.every > 0 && self.rejected_seen.is_multiple_of(self.every);
                let timed = match (self.interval, self.last_sample) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(i), Some(last)) => now.duration_since(last) >= i,
                };
                if nth || timed {
                    self.last_sample = Some(now);
                    Some(Kind::Sample)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(verdict: Verdict, confidence: f32, threshold: f32) -> Decision {
        Decision {
            scores: vec![confidence, 0.0],
            top_k: vec![0, 1],
            confidence,
            threshold,
            verdict,
            ..Decision::default()
        }
    }

    #[test]
    fn keeps_detections_near_misses_and_a_sample() {
        let cfg = ReviewConfig {
            near_miss_margin: 0.1,
            sample_every: 3,
            sample_minutes: 1.0,
            ..ReviewConfig::default()
        };
        let mut s = Selector::new(&cfg);
        let t0 = Instant::now();
        let below = Verdict::Rejected(RejectReason::BelowThreshold);
        assert_eq!(
            s.select(&decision(Verdict::Detection, 0.9, 0.5), false, t0),
            Some(Kind::Detection)
        );
        // Inside an open event: its best frame is kept instead.
        assert_eq!(
            s.select(&decision(Verdict::Detection, 0.9, 0.5), true, t0),
            None
        );
        // 0.45 is 0.05 below 0.5: a near miss; 0.35 is not.
        assert_eq!(
            s.select(&decision(below, 0.45, 0.5), false, t0),
            Some(Kind::NearMiss)
        );
        // The first other rejection is the timed sample, then 1 in 3.
        let far = decision(below, 0.1, 0.5);
        let got: Vec<Option<Kind>> = (0..6).map(|_| s.select(&far, false, t0)).collect();
        assert_eq!(
            got,
            [
                Some(Kind::Sample),
                None,
                Some(Kind::Sample),
                None,
                None,
                Some(Kind::Sample)
            ]
        );
        // A minute later the timed sample is due again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(s.select(&far, false, later), Some(Kind::Sample));
        assert_eq!(s.select(&far, false, later), None);
        // Unreadable frames are never kept.
        let unreadable = decision(Verdict::Rejected(RejectReason::Unreadable), 0.0, 0.5);
        assert_eq!(s.select(&unreadable, false, later), None);
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let bad = |c: ReviewConfig| c.check().unwrap_err().0;
        assert_eq!(
            bad(ReviewConfig {
                quota_mb: 0,
                ..ReviewConfig::default()
            }),
            "review.quota_mb"
        );
        assert_eq!(
            bad(ReviewConfig {
                image_side: 10,
                ..ReviewConfig::default()
            }),
            "review.image_side"
        );
        assert_eq!(
            bad(ReviewConfig {
                queue_len: 0,
                ..ReviewConfig::default()
            }),
            "review.queue_len"
        );
        assert!(ReviewConfig::default().check().is_ok());
    }
}
