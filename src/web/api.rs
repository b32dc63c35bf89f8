//! `/api/...`: the dashboard's data as JSON (read-only).
//!
//! * `GET /api/status`: the status page's data ([`crate::live::Status`]) and
//!   review capture's counters;
//! * `GET /api/events`: the recent events, newest first;
//! * `GET /api/review`: the queued frames' sidecars, newest first (at most
//!   100), the sorted counts and the data set folder.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::live::{EventRow, Status};
use crate::review::store::Counters;
use crate::review::Sidecar;

/// Review capture's counters and queue.
#[derive(Debug, Serialize)]
pub struct ReviewStatus {
    /// Frames in the queue.
    pub queued: usize,
    /// Their bytes on disk.
    pub queue_bytes: u64,
    /// The quota in bytes.
    pub quota_bytes: u64,
    /// Frames kept.
    pub saved: u64,
    /// Frames dropped (writer busy).
    pub dropped: u64,
    /// Frames not written (disk full, ...).
    pub write_errors: u64,
    /// Frames deleted by the quota.
    pub deleted_quota: u64,
    /// Frames filed into the data set.
    pub sorted: u64,
    /// Frames skipped.
    pub skipped: u64,
}

/// `GET /api/status`.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    /// The status page's data.
    #[serde(flatten)]
    pub status: Status,
    /// Review capture (`null` when it is off).
    pub review: Option<ReviewStatus>,
}

/// `GET /api/review`.
#[derive(Debug, Serialize)]
pub struct ReviewResponse {
    /// The data set folder sorted frames go to.
    pub dataset: String,
    /// Images per data set folder.
    pub sorted: BTreeMap<String, u64>,
    /// Queued frames, newest first.
    pub frames: Vec<Sidecar>,
}

/// `GET /api/status`.
pub async fn status(State(st): State<AppState>) -> Json<StatusResponse> {
    let review = st.store.as_ref().map(|s| {
        let c = &s.counters;
        let (queued, queue_bytes) = s.usage();
        ReviewStatus {
            queued,
            queue_bytes,
            quota_bytes: s.quota_bytes(),
            saved: Counters::get(&c.saved),
            dropped: Counters::get(&c.dropped),
            write_errors: Counters::get(&c.write_errors),
            deleted_quota: Counters::get(&c.deleted_quota),
            sorted: Counters::get(&c.sorted),
            skipped: Counters::get(&c.skipped),
        }
    });
    Json(StatusResponse {
        status: st.live.status(),
        review,
    })
}

/// `GET /api/events`.
pub async fn events(State(st): State<AppState>) -> Json<Vec<EventRow>> {
    Json(st.live.events())
}

/// `GET /api/review`.
pub async fn review(State(st): State<AppState>) -> Json<Option<ReviewResponse>> {
    Json(st.store.as_ref().map(|s| ReviewResponse {
        dataset: s.dataset_dir().display().to_string(),
        sorted: s.sorted_counts(),
        frames: s.list(100),
    }))
}
