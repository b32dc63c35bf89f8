//! `/metrics`: the counters of the stats line and the MQTT `stats` topic
//! ([`crate::stats::Snapshot`]) and of review capture, in the
//! OpenMetrics/Prometheus text format written by `prometheus-client`.
//!
//! Counters are named `camtrapd_<counter>_total` (e.g.
//! `camtrapd_frames_in_total`, `camtrapd_rejected_total{reason="below_threshold"}`);
//! `camtrapd_snapshot_uptime_seconds` identifies the snapshot they come from
//! (the same value as `stats.uptime_s` in `/api/status`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::review::store::Counters;
use crate::stats::Snapshot;

/// The values of one scrape.
#[derive(Debug)]
struct Values {
    online: bool,
    fps: f64,
    snap: Option<Snapshot>,
    review: Option<ReviewValues>,
}

#[derive(Debug)]
struct ReviewValues {
    counters: [(&'static str, &'static str, u64); 6],
    queued: u64,
    bytes: u64,
    quota: u64,
}

/// Counters without labels: (name without `_total`, help, value).
fn counters(
    enc: &mut DescriptorEncoder,
    list: &[(&str, &str, u64)],
) -> Result<(), std::fmt::Error> {
    for (name, help, v) in list {
        ConstCounter::new(*v).encode(enc.encode_descriptor(
            name,
            help,
            None,
            MetricType::Counter,
        )?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn family<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (k, v) in values {
        let labels = [(label, k)];
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Values {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut enc;
        gauge(
            e,
            "camtrapd_camera_online",
            "1 while frames arrive, 0 while the camera is offline",
            if self.online { 1.0 } else { 0.0 },
        )?;
        gauge(
            e,
            "camtrapd_frames_per_second",
            "Frames per second pulled from the source",
            self.fps,
        )?;
        if let Some(s) = &self.snap {
            gauge(
                e,
                "camtrapd_snapshot_uptime_seconds",
                "Uptime when these counters were taken (stats.uptime_s in /api/status)",
                s.uptime_s,
            )?;
            counters(
                e,
                &[
                    (
                        "camtrapd_frames_in",
                        "Frames pulled from the source",
                        s.frames_in,
                    ),
                    (
                        "camtrapd_classified",
                        "Frames classified by the model",
                        s.classified,
                    ),
                    ("camtrapd_detections", "Detections published", s.detections),
                    (
                        "camtrapd_frames_gated",
                        "Frames the motion gate kept from the model",
                        s.frames_gated,
                    ),
                    ("camtrapd_events", "Events started", s.events),
                    (
                        "camtrapd_sink_errors",
                        "Failed sink deliveries",
                        s.sink_errors,
                    ),
                ],
            )?;
            family(
                e,
                "camtrapd_rejected",
                "Rejected frames by reason",
                "reason",
                s.rejected.iter().map(|(k, v)| (*k, *v)),
            )?;
            family(
                e,
                "camtrapd_unreadable",
                "Unreadable frames by cause",
                "cause",
                s.unreadable.iter().map(|(k, v)| (*k, *v)),
            )?;
            for (name, v) in [
                ("camtrapd_inference_ms_p50", s.inference_ms_p50),
                ("camtrapd_inference_ms_p95", s.inference_ms_p95),
            ] {
                if let Some(v) = v {
                    gauge(
                        e,
                        name,
                        "Inference latency percentile over the last 1024 frames, ms",
                        f64::from(v),
                    )?;
                }
            }
            if let Some(c) = &s.camera {
                counters(
                    e,
                    &[
                        (
                            "camtrapd_camera_captured",
                            "Buffers dequeued from the camera",
                            c.captured,
                        ),
                        (
                            "camtrapd_camera_dropped",
                            "Camera frames replaced by a newer one while busy",
                            c.dropped,
                        ),
                        (
                            "camtrapd_camera_corrupt",
                            "Corrupt camera frames",
                            c.corrupt,
                        ),
                        (
                            "camtrapd_camera_warmup_skipped",
                            "Frames skipped after a stream start",
                            c.warmup_skipped,
                        ),
                        (
                            "camtrapd_camera_reconnects",
                            "Times the camera came back",
                            c.reconnects,
                        ),
                    ],
                )?;
            }
        }
        if let Some(r) = &self.review {
            counters(e, &r.counters)?;
            gauge(
                e,
                "camtrapd_review_queue_frames",
                "Frames in the review queue",
                r.queued as f64,
            )?;
            gauge(
                e,
                "camtrapd_review_queue_bytes",
                "Bytes of the review queue on disk",
                r.bytes as f64,
            )?;
            gauge(
                e,
                "camtrapd_review_quota_bytes",
                "The review queue's quota",
                r.quota as f64,
            )?;
        }
        Ok(())
    }
}

/// The metrics text of the dashboard's current state.
pub fn render(st: &AppState) -> String {
    let status = st.live.status();
    let review = st.store.as_ref().map(|s| {
        let c = &s.counters;
        let (queued, bytes) = s.usage();
        ReviewValues {
            counters: [
                (
                    "camtrapd_review_saved",
                    "Frames kept for review",
                    Counters::get(&c.saved),
                ),
                (
                    "camtrapd_review_dropped",
                    "Review frames dropped: the writer's queue was full",
                    Counters::get(&c.dropped),
                ),
                (
                    "camtrapd_review_write_errors",
                    "Review frames that could not be written",
                    Counters::get(&c.write_errors),
                ),
                (
                    "camtrapd_review_deleted_quota",
                    "Review frames deleted to stay under the quota",
                    Counters::get(&c.deleted_quota),
                ),
                (
                    "camtrapd_review_sorted",
                    "Review frames filed into the data set",
                    Counters::get(&c.sorted),
                ),
                (
                    "camtrapd_review_skipped",
                    "Review frames skipped",
                    Counters::get(&c.skipped),
                ),
            ],
            queued: queued as u64,
            bytes,
            quota: s.quota_bytes(),
        }
    });
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Values {
        online: status.online,
        fps: status.fps,
        snap: status.stats,
        review,
    }));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&st),
    )
        .into_response()
}
