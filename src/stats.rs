//! Counters and latency figures of a running pipeline: frames in,
//! classified, detections, rejections by reason, unreadable frames by cause,
//! sink failures, and inference latency percentiles.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::decision::RejectReason;

/// Number of recent inference latencies kept for percentiles.
const WINDOW: usize = 1024;

/// Pipeline counters. Cheap to update per frame (no allocation after the
/// latency window has filled once).
#[derive(Debug, Clone)]
pub struct Stats {
    started: Instant,
    /// Frames pulled from the source (readable or not).
    pub frames_in: u64,
    /// Frames that went through the model.
    pub classified: u64,
    /// Detections handed to the sinks.
    pub detections: u64,
    /// Frames the motion gate kept from the model (no motion, no heartbeat due).
    pub gated: u64,
    /// Events started (`new` messages).
    pub events: u64,
    /// Rejected frames by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Unreadable frames by cause (`truncated`, `corrupt`, ...).
    pub unreadable: BTreeMap<&'static str, u64>,
    /// Failed sink deliveries.
    pub sink_errors: u64,
    /// Camera counters (V4L2 sources only).
    pub camera: Option<CameraStats>,
    latencies: Vec<f32>,
    next: usize,
    scratch: Vec<f32>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            frames_in: 0,
            classified: 0,
            detections: 0,
            gated: 0,
            events: 0,
            rejected: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            sink_errors: 0,
            camera: None,
            latencies: Vec::with_capacity(WINDOW),
            next: 0,
            scratch: Vec::with_capacity(WINDOW),
        }
    }
}

/// A point-in-time copy of the counters, as logged and as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Seconds since start.
    pub uptime_s: f64,
    /// Frames pulled from the source.
    pub frames_in: u64,
    /// Frames classified.
    pub classified: u64,
    /// Detections published.
    pub detections: u64,
    /// Frames skipped by the motion gate.
    pub frames_gated: u64,
    /// Events started.
    pub events: u64,
    /// Rejections by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Unreadable frames by cause.
    pub unreadable: BTreeMap<&'static str, u64>,
    /// Failed sink deliveries.
    pub sink_errors: u64,
    /// Median inference latency, ms (over the last 1024 frames).
    pub inference_ms_p50: Option<f32>,
    /// 95th percentile inference latency, ms.
    pub inference_ms_p95: Option<f32>,
    /// Camera counters (V4L2 sources only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraStats>,
}

/// Counters of a camera source, kept by its capture thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CameraStats {
    /// Whether frames currently arrive.
    pub online: bool,
    /// Buffers dequeued from the driver (including warm-up and corrupt ones).
    pub captured: u64,
    /// Frames that were due for classification but replaced by a newer one
    /// while the pipeline was busy (the backlog that is never classified).
    pub dropped: u64,
    /// Frames flagged as corrupt by the driver (`V4L2_BUF_FLAG_ERROR`),
    /// empty, or undecodable (truncated MJPEG, short YUYV).
    pub corrupt: u64,
    /// Frames skipped after a stream start (`warmup_frames`).
    pub warmup_skipped: u64,
    /// MJPEG frames sent without Huffman tables (as many UVC webcams do),
    /// read with the standard tables of ITU-T T.81 Annex K.
    pub repaired: u64,
    /// Times the camera came back after being offline.
    pub reconnects: u64,
}

impl Stats {
    /// Fresh counters; uptime starts now.
    pub fn new() -> Stats {
        Stats::default()
    }

    /// Counts a rejection.
    pub fn reject(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_insert(0) += 1;
    }

    /// Number of frames rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get(&reason).copied().unwrap_or(0)
    }

    /// Counts an unreadable frame and its cause.
    pub fn unreadable(&mut self, cause: &'static str) {
        *self.unreadable.entry(cause).or_insert(0) += 1;
        self.reject(RejectReason::Unreadable);
    }

    /// Records one inference latency in ms.
    pub fn record_inference_ms(&mut self, ms: f64) {
        if self.latencies.len() < WINDOW {
            self.latencies.push(ms as f32);
        } else {
            self.latencies[self.next] = ms as f32;
        }
        self.next = (self.next + 1) % WINDOW;
    }

    fn percentile(&mut self, p: f32) -> Option<f32> {
        if self.latencies.is_empty() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.latencies);
        self.scratch.sort_by(f32::total_cmp);
        let i =
            ((p * (self.scratch.len() - 1) as f32).round() as usize).min(self.scratch.len() - 1);
        Some(self.scratch[i])
    }

    /// A copy of the counters with latency percentiles.
    pub fn snapshot(&mut self) -> Snapshot {
        Snapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            frames_in: self.frames_in,
            classified: self.classified,
            detections: self.detections,
            frames_gated: self.gated,
            events: self.events,
            rejected: self
                .rejected
                .iter()
                .map(|(r, n)| (r.as_str(), *n))
                .collect(),
            unreadable: self.unreadable.clone(),
            sink_errors: self.sink_errors,
            inference_ms_p50: self.percentile(0.5),
            inference_ms_p95: self.percentile(0.95),
            camera: self.camera.clone(),
        }
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frames {} classified {} detections {} rejected {{",
            self.frames_in, self.classified, self.detections
        )?;
        for (i, (r, n)) in self.rejected.iter().enumerate() {
            write!(f, "{}{r}: {n}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, "}}")?;
        if !self.unreadable.is_empty() {
            write!(f, " unreadable {{")?;
            for (i, (r, n)) in self.unreadable.iter().enumerate() {
                write!(f, "{}{r}: {n}", if i > 0 { ", " } else { "" })?;
            }
            write!(f, "}}")?;
        }
        if self.events > 0 {
            write!(f, " events {}", self.events)?;
        }
        if self.frames_gated > 0 {
            write!(f, " gated (no motion) {}", self.frames_gated)?;
        }
        if self.sink_errors > 0 {
            write!(f, " sink_errors {}", self.sink_errors)?;
        }
        if let (Some(p50), Some(p95)) = (self.inference_ms_p50, self.inference_ms_p95) {
            write!(f, " inference p50 {p50:.1} ms p95 {p95:.1} ms")?;
        }
        if let Some(c) = &self.camera {
            write!(
                f,
                " camera {{{}, captured: {}, dropped: {}, corrupt: {}, warmup_skipped: {}, repaired: {}, reconnects: {}}}",
                if c.online { "online" } else { "offline" },
                c.captured,
                c.dropped,
                c.corrupt,
                c.warmup_skipped,
                c.repaired,
                c.reconnects
            )?;
        }
        write!(f, " uptime {:.0} s", self.uptime_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let mut s = Stats::new();
        s.frames_in = 5;
        s.reject(RejectReason::BelowThreshold);
        s.reject(RejectReason::BelowThreshold);
        s.unreadable("truncated");
        for ms in 1..=100 {
            s.record_inference_ms(f64::from(ms));
        }
        let snap = s.snapshot();
        assert_eq!(snap.rejected.get("below_threshold"), Some(&2));
        assert_eq!(snap.rejected.get("unreadable"), Some(&1));
        assert_eq!(snap.unreadable.get("truncated"), Some(&1));
        assert_eq!(snap.inference_ms_p50, Some(51.0));
        assert_eq!(snap.inference_ms_p95, Some(95.0));
        let line = snap.to_string();
        assert!(
            line.contains("below_threshold: 2") && line.contains("truncated: 1"),
            "{line}"
        );
        assert!(!line.contains("camera"), "{line}");
        assert!(serde_json::to_value(&snap).unwrap().get("camera").is_none());
    }

    #[test]
    fn camera_counters_show_in_the_line_and_the_json() {
        let mut s = Stats::new();
        s.camera = Some(CameraStats {
            online: true,
            captured: 120,
            dropped: 3,
            corrupt: 1,
            warmup_skipped: 5,
            repaired: 110,
            reconnects: 2,
        });
        let snap = s.snapshot();
        let line = snap.to_string();
        assert!(
            line.contains("camera {online, captured: 120, dropped: 3, corrupt: 1, warmup_skipped: 5, repaired: 110, reconnects: 2}"),
            "{line}"
        );
        let j = serde_json::to_value(&snap).unwrap();
        assert_eq!(j["camera"]["dropped"], 3);
        assert_eq!(j["camera"]["repaired"], 110);
        assert_eq!(j["camera"]["online"], true);
    }
}
