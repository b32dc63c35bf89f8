//! What the running daemon shows its dashboard: the latest counters, the
//! camera's state, the model and its thresholds, the recent events with
//! their thumbnails and the latest frame.
//!
//! The pipeline writes it ([`crate::pipeline::Pipeline::set_dashboard`]); the web
//! server ([`crate::web`]) reads it. Neither waits for the other: the
//! pipeline only uses `try_lock` and skips an update when the server holds
//! the lock (it is held only to copy a few fields), and images are encoded
//! to JPEG by the review writer thread ([`crate::review::capture`]), never
//! on the frame path.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::decision::{EventKind, EventMessage, ScoreFn};
use crate::stats::Snapshot;

/// How many recent events the dashboard keeps (with thumbnails).
pub const EVENTS_KEPT: usize = 50;

/// The model in use, as the status page and `/api/status` show it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ModelInfo {
    /// Manifest name.
    pub name: String,
    /// SHA-256 of model.onnx (hex).
    pub sha256: String,
    /// The score function of the decision.
    pub score_fn: Option<ScoreFn>,
    /// The decision labels with their thresholds (in the score's units)
    /// and whether they are published.
    pub labels: Vec<LabelInfo>,
    /// The calibrated thresholds file, if one is used.
    pub thresholds_file: Option<String>,
    /// When this model was loaded (RFC 3339 UTC).
    pub loaded_at: String,
}

/// One decision label.
#[derive(Debug, Clone, Serialize)]
pub struct LabelInfo {
    /// The label.
    pub label: String,
    /// Its threshold.
    pub threshold: f32,
    /// Whether it may be published.
    pub published: bool,
}

/// One event as the events page lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    /// The event id (UUID v7).
    pub id: String,
    /// The label.
    pub label: String,
    /// The best score so far.
    pub score: f32,
    /// Capture time of its first detection frame.
    pub start_time: String,
    /// Capture time of its last detection frame so far.
    pub last_seen: String,
    /// When it ended (`None` while it is open).
    pub end_time: Option<String>,
    /// Detection frames so far.
    pub frames: u64,
}

/// The state the dashboard reads (copied out under a short lock).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    /// The camera id.
    pub camera: String,
    /// Whether frames arrive (camera online; a files source is online until it ends).
    pub online: bool,
    /// Why the camera is offline, or what it is.
    pub source_detail: String,
    /// The latest counters (the same as the stats line and the MQTT `stats` topic).
    pub stats: Option<Snapshot>,
    /// Frames per second pulled from the source over the last update interval.
    pub fps: f64,
    /// The model and its thresholds.
    pub model: ModelInfo,
    /// Bundles loaded since start by a reload (SIGHUP).
    pub reloads: u64,
    /// Capture time of the latest frame image (for the status page).
    pub latest_frame_at: Option<String>,
}

/// The dashboard's shared state: see the module docs.
#[derive(Debug, Default)]
pub struct Live {
    status: Mutex<Status>,
    events: Mutex<VecDeque<EventRow>>,
    images: Mutex<Images>,
    /// Updates the pipeline skipped because the server held the lock.
    pub skipped_updates: AtomicU64,
}

/// Encoded JPEGs: the latest frame and the events' thumbnails.
#[derive(Debug, Default)]
struct Images {
    latest: Option<Arc<Vec<u8>>>,
    thumbs: VecDeque<(String, Arc<Vec<u8>>)>,
}

impl Live {
    /// Empty state for camera `camera`.
    pub fn new(camera: &str) -> Arc<Live> {
        let live = Live::default();
        if let Ok(mut s) = live.status.lock() {
            s.camera = camera.to_string();
            s.online = true;
        }
        Arc::new(live)
    }

    /// Runs `f` on the status unless the server holds the lock (then the
    /// update is skipped and counted: the frame path never waits).
    pub fn try_update(&self, f: impl FnOnce(&mut Status)) {
        match self.status.try_lock() {
            Ok(mut s) => f(&mut s),
            Err(_) => {
                self.skipped_updates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Runs `f` on the status, waiting for the lock (for rare updates
    /// such as a model reload, which must not be lost).
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// A copy of the status.
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Records an event message (newest first, at most [`EVENTS_KEPT`]).
    pub fn event(&self, m: &EventMessage) {
        let Ok(mut events) = self.events.lock() else {
            return;
        };
        let row = EventRow {
            id: m.id.clone(),
            label: m.label.clone(),
            score: m.score,
            start_time: m.start_time.clone(),
            last_seen: m.last_seen.clone(),
            end_time: if m.kind == EventKind::End {
                m.end_time.clone()
            } else {
                None
            },
            frames: m.frames,
        };
        match events.iter_mut().find(|e| e.id == m.id) {
            Some(e) => *e = row,
            None => {
                events.push_front(row);
                events.truncate(EVENTS_KEPT);
            }
        }
    }

    /// The recent events, newest first.
    pub fn events(&self) -> Vec<EventRow> {
        self.events
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores the latest frame's JPEG (from the writer thread).
    pub fn set_latest_jpeg(&self, jpeg: Vec<u8>, captured_at: String) {
        if let Ok(mut i) = self.images.lock() {
            i.latest = Some(Arc::new(jpeg));
        }
        self.update(|s| s.latest_frame_at = Some(captured_at));
    }

    /// The latest frame's JPEG.
    pub fn latest_jpeg(&self) -> Option<Arc<Vec<u8>>> {
        self.images.lock().ok().and_then(|i| i.latest.clone())
    }

    /// Stores an event's thumbnail (from the writer thread), replacing its
    /// older one; at most [`EVENTS_KEPT`] are kept.
    pub fn set_thumb(&self, event_id: &str, jpeg: Vec<u8>) {
        if let Ok(mut i) = self.images.lock() {
            i.thumbs.retain(|(id, _)| id != event_id);
            i.thumbs.push_front((event_id.to_string(), Arc::new(jpeg)));
            i.thumbs.truncate(EVENTS_KEPT);
        }
    }

    /// An event's thumbnail, by event id.
    pub fn thumb(&self, event_id: &str) -> Option<Arc<Vec<u8>>> {
        self.images.lock().ok().and_then(|i| {
            i.thumbs
                .iter()
                .find(|(id, _)| id == event_id)
                .map(|(_, j)| j.clone())
        })
    }
}
