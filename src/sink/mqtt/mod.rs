//! The MQTT sink: events and confident detections reach subscribers (Home
//! Assistant, Node-RED, scripts), and none are lost while the broker is down.
//!
//! Topics, with `<prefix>` = `topic_prefix` (default `camtrapd`) and
//! `<camera>` = `camera_id` (default: the host name):
//!
//! | topic | payload | QoS | retained |
//! |---|---|---|---|
//! | `<prefix>/<camera>/events` | event messages `new`/`update`/`end`, JSON (`messages = "events"`, the default, or `"both"`) | 1 | no |
//! | `<prefix>/<camera>/detection` | one detection per detected frame, JSON (as the stdout sink; `messages = "detections"` or `"both"`) | 1 | no |
//! | `<prefix>/<camera>/availability` | `online` / `offline` (also the last will) | 1 | yes |
//! | `<prefix>/<camera>/snapshot` | JPEG of an event's best frame with `new`/`update`, and of each published detection (`snapshots = true`) | 0 | no |
//! | `<prefix>/<camera>/stats` | counters, every `[stats] interval_secs` | 0 | no |
//! | `<prefix>/<camera>/camera_status` | the camera (V4L2 source): `{"state":"online"\|"offline","detail":..,"at":..}` on every change | 1 | yes |
//!
//! Parts: [`config`] (settings and checks), [`spool`] (on-disk
//! store-and-forward), `outbox` (the thread that spools and publishes),
//! `link` (the thread that runs rumqttc's event loop and reconnects),
//! `discovery` (Home Assistant), `tls` (rustls).

pub mod config;
mod discovery;
mod link;
mod outbox;
pub mod spool;
mod tls;

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::RgbImage;

pub use config::{HomeAssistantConfig, MqttConfig, TlsConfig};

use super::{Sink, SinkContext, SinkError};
use crate::decision::{Detection, EventMessage};
use crate::frame::Frame;
use crate::stats::Snapshot;

/// Queue between the pipeline and the outbox thread (detections, snapshots,
/// stats and connection events).
const QUEUE: usize = 1024;

/// The topics of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    /// `<prefix>/<camera>/events`
    pub events: String,
    /// `<prefix>/<camera>/detection`
    pub detection: String,
    /// `<prefix>/<camera>/availability`
    pub availability: String,
    /// `<prefix>/<camera>/snapshot`
    pub snapshot: String,
    /// `<prefix>/<camera>/stats`
    pub stats: String,
    /// `<prefix>/<camera>/camera_status`: the camera going offline or coming back.
    pub camera_status: String,
}

impl Topics {
    /// The topics for `camera` under `prefix`.
    pub fn new(prefix: &str, camera: &str) -> Topics {
        let t = |leaf: &str| format!("{prefix}/{camera}/{leaf}");
        Topics {
            events: t("events"),
            detection: t("detection"),
            availability: t("availability"),
            snapshot: t("snapshot"),
            stats: t("stats"),
            camera_status: t("camera_status"),
        }
    }
}

/// Messages to the outbox thread.
pub(crate) enum Msg {
    /// A spool record: a detection's JSON, or [`outbox::EVENT_TAG`] and an
    /// event message's JSON.
    Detection(Vec<u8>),
    Snapshot(Vec<u8>),
    Stats(Box<Snapshot>),
    CameraStatus(Vec<u8>),
    Close(outbox::Close),
    Link(link::LinkEvent),
}

/// Publishes detections over MQTT through an on-disk spool (see the module docs).
pub struct MqttSink {
    tx: SyncSender<Msg>,
    spooled: Receiver<()>,
    outbox: Option<JoinHandle<()>>,
    link: Option<JoinHandle<()>>,
    link_stop: Arc<AtomicBool>,
    messages: crate::sink::Messages,
    snapshots: bool,
    snapshot_max_size: u32,
    max_payload: usize,
    drain: Duration,
    buf: Vec<u8>,
    snapshots_dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for MqttSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSink").finish_non_exhaustive()
    }
}

impl MqttSink {
    /// Checks the settings that need files (password, TLS) and describes the
    /// sink, without connecting or opening the spool.
    ///
    /// # Errors
    /// [`SinkError::Config`] naming the setting and the fix.
    pub fn check(cfg: &MqttConfig, ctx: &SinkContext, nth: usize) -> Result<String, SinkError> {
        let r = Resolved::new(cfg, ctx, nth)?;
        spool::check_dir(&r.spool_path)?;
        let topics = match cfg.messages {
            crate::sink::Messages::Events => r.topics.events.clone(),
            crate::sink::Messages::Detections => r.topics.detection.clone(),
            crate::sink::Messages::Both => {
                format!("{} and {}", r.topics.events, r.topics.detection)
            }
        };
        Ok(format!(
            "mqtt {} as {:?}: {} (spool {}{})",
            r.broker,
            r.options.client_id(),
            topics,
            r.spool_path.display(),
            if cfg.home_assistant.discovery {
                ", Home Assistant discovery"
            } else {
                ""
            }
        ))
    }

    /// Opens the spool and starts the outbox and connection threads. Does
    /// not wait for the broker: detections are spooled until it answers.
    ///
    /// # Errors
    /// [`SinkError::Config`] for unreadable password, CA, certificate or key
    /// files; [`SinkError::Spool`] when the spool cannot be opened.
    pub fn open(cfg: &MqttConfig, ctx: &SinkContext, nth: usize) -> Result<MqttSink, SinkError> {
        let Resolved {
            topics,
            options,
            broker,
            spool_path,
        } = Resolved::new(cfg, ctx, nth)?;
        let client_id = options.client_id();
        let spool = spool::Spool::open(&spool_path, cfg.spool_max_bytes())?;
        if !spool.is_empty() {
            log::info!(
                "mqtt: {} message(s) from an earlier run wait in {} and will be delivered first",
                spool.len(),
                spool_path.display()
            );
        }
        let ha = &cfg.home_assistant;
        let discovery = if ha.discovery {
            discovery::messages(
                &ha.discovery_prefix,
                &topics,
                &discovery::DeviceInfo {
                    camera: ctx.camera.clone(),
                    model_name: ctx.model_name.clone(),
                    labels: ctx.publishable_labels.clone(),
                    snapshots: cfg.snapshots,
                    events: cfg.messages.events(),
                },
            )
        } else {
            Vec::new()
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let link_stop = Arc::new(AtomicBool::new(false));
        let (spooled_tx, spooled) = mpsc::sync_channel(1);
        let snapshots_dropped = Arc::new(AtomicU64::new(0));
        let mut ob = outbox::Outbox::new(
            spool,
            topics,
            ctx.camera.clone(),
            discovery,
            link_stop.clone(),
            spooled_tx,
            snapshots_dropped.clone(),
        );
        ob.max_incoming = cfg.max_incoming_size;
        let outbox = std::thread::Builder::new()
            .name("mqtt-outbox".into())
            .spawn(move || ob.run(rx))
            .map_err(SinkError::Io)?;
        let settings = link::LinkSettings {
            options,
            broker: broker.clone(),
            reconnect_max: Duration::from_secs(cfg.reconnect_max_secs),
            ha_status_topic: ha
                .discovery
                .then(|| format!("{}/status", ha.discovery_prefix)),
            max_incoming: cfg.max_incoming_size,
        };
        let ltx = tx.clone();
        let stop = link_stop.clone();
        let link = std::thread::Builder::new()
            .name("mqtt-link".into())
            .spawn(move || link::run(settings, ltx, stop))
            .map_err(SinkError::Io)?;
        log::info!(
            "mqtt: publishing to {broker} as {client_id:?}, spool {}",
            spool_path.display()
        );
        Ok(MqttSink {
            tx,
            spooled,
            outbox: Some(outbox),
            link: Some(link),
            link_stop,
            messages: cfg.messages,
            snapshots: cfg.snapshots,
            snapshot_max_size: cfg.snapshot_max_size,
            // Room for the fixed header and the topic.
            max_payload: cfg.max_packet_size.saturating_sub(512),
            drain: Duration::from_secs_f64(cfg.shutdown_timeout_secs),
            buf: Vec::with_capacity(2048),
            snapshots_dropped,
        })
    }

    /// Hands the spool record in `buf` to the outbox and waits for the spool
    /// write (fsync), never for the network: once this returns, the message
    /// survives a crash or power cut.
    fn spool_buf(&mut self) -> Result<(), SinkError> {
        self.tx
            .send(Msg::Detection(self.buf.clone()))
            .map_err(|_| SinkError::Closed("the MQTT outbox thread stopped".into()))?;
        match self.spooled.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SinkError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the spool took over 30 s to store a message (is the disk failing?)",
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(SinkError::Closed("the MQTT outbox thread stopped".into()))
            }
        }
    }

    /// Queues a best-effort snapshot JPEG (dropped and counted when the queue is full).
    fn send_snapshot(&mut self, image: &RgbImage) -> Result<(), SinkError> {
        match self.snapshot(image) {
            Some(jpeg) => match self.tx.try_send(Msg::Snapshot(jpeg)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.snapshots_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(SinkError::Closed("the MQTT outbox thread stopped".into()))
                }
            },
            None => {
                self.snapshots_dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "mqtt: snapshot dropped: larger than max_packet_size even at reduced size"
                );
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, image: &RgbImage) -> Option<Vec<u8>> {
        let mut size = self.snapshot_max_size;
        for _ in 0..4 {
            match encode_jpeg(image, size) {
                Ok(j) if j.len() <= self.max_payload => return Some(j),
                Ok(j) => {
                    log::debug!(
                        "mqtt: snapshot of {} bytes over the packet limit, shrinking",
                        j.len()
                    );
                    size /= 2;
                }
                Err(e) => {
                    log::warn!("mqtt: snapshot not encoded: {e}");
                    return None;
                }
            }
        }
        None
    }
}

/// What `check` and `open` derive from the settings: topics, rumqttc
/// options (reads password and TLS files), the broker URL for messages and
/// the spool file of the `nth` (1-based) mqtt sink
/// (`<state_dir>/mqtt-<camera>.redb`, then `mqtt-<camera>-2.redb`, ...).
struct Resolved {
    topics: Topics,
    options: rumqttc::MqttOptions,
    broker: String,
    spool_path: std::path::PathBuf,
}

impl Resolved {
    fn new(cfg: &MqttConfig, ctx: &SinkContext, nth: usize) -> Result<Resolved, SinkError> {
        let topics = Topics::new(&cfg.topic_prefix, &ctx.camera);
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("camtrapd-{}", ctx.camera));
        let options = link::options(cfg, &client_id, &topics.availability, &ctx.base_dir)
            .map_err(|m| SinkError::Config(format!("kind = \"mqtt\": {m}")))?;
        let broker = format!(
            "{}://{}:{}",
            if cfg.tls.is_some() { "mqtts" } else { "mqtt" },
            cfg.host.trim(),
            cfg.port()
        );
        let dir = cfg.state_dir(&ctx.base_dir);
        let spool_path = if nth <= 1 {
            dir.join(format!("mqtt-{}.redb", ctx.camera))
        } else {
            dir.join(format!("mqtt-{}-{nth}.redb", ctx.camera))
        };
        Ok(Resolved {
            topics,
            options,
            broker,
            spool_path,
        })
    }
}

/// Encodes `image` as JPEG (quality 80), scaled so its longer side is at
/// most `max_side` pixels.
fn encode_jpeg(image: &RgbImage, max_side: u32) -> Result<Vec<u8>, image::ImageError> {
    let (w, h) = image.dimensions();
    let long = w.max(h).max(1);
    let mut out = Cursor::new(Vec::new());
    let enc = |img: &RgbImage, out: &mut Cursor<Vec<u8>>| {
        image::codecs::jpeg::JpegEncoder::new_with_quality(out, 80).encode_image(img)
    };
    if long > max_side {
        let s = f64::from(max_side) / f64::from(long);
        let nw = ((f64::from(w) * s).round() as u32).max(1);
        let nh = ((f64::from(h) * s).round() as u32).max(1);
        let small = image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle);
        enc(&small, &mut out)?;
    } else {
        enc(image, &mut out)?;
    }
    Ok(out.into_inner())
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn publish(&mut self, d: &Detection, frame: &Frame) -> Result<(), SinkError> {
        if !self.messages.detections() {
            return Ok(());
        }
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, d)?;
        self.spool_buf()?;
        if self.snapshots {
            self.send_snapshot(&frame.image)?;
        }
        Ok(())
    }

    fn publish_event(
        &mut self,
        e: &EventMessage,
        best: Option<&RgbImage>,
    ) -> Result<(), SinkError> {
        if !self.messages.events() {
            return Ok(());
        }
        self.buf.clear();
        self.buf.push(outbox::EVENT_TAG);
        serde_json::to_writer(&mut self.buf, e)?;
        self.spool_buf()?;
        // With detections published too, every detected frame has had its
        // snapshot, the event's best frame among them: sent once, not again
        // for the event (issue 21).
        if let (true, false, Some(img)) = (self.snapshots, self.messages.detections(), best) {
            self.send_snapshot(img)?;
        }
        Ok(())
    }

    fn image_side(&self) -> u32 {
        if self.snapshots {
            self.snapshot_max_size
        } else {
            0
        }
    }

    fn stats(&mut self, snapshot: &Snapshot) {
        let _ = self.tx.try_send(Msg::Stats(Box::new(snapshot.clone())));
    }

    fn source_status(&mut self, online: bool, detail: &str) {
        #[derive(serde::Serialize)]
        struct Status<'a> {
            state: &'a str,
            detail: &'a str,
            at: String,
        }
        let body = serde_json::to_vec(&Status {
            state: if online { "online" } else { "offline" },
            detail,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        if let Ok(body) = body {
            if self.tx.try_send(Msg::CameraStatus(body)).is_err() {
                log::warn!("mqtt: camera status not queued (the outbox is full or stopped)");
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let Some(outbox) = self.outbox.take() else {
            return Ok(());
        };
        let (reply, done) = mpsc::channel();
        let deadline = Instant::now() + self.drain;
        let sent = self
            .tx
            .send(Msg::Close(outbox::Close { deadline, reply }))
            .is_ok();
        let report = if sent {
            done.recv_timeout(self.drain + Duration::from_secs(5)).ok()
        } else {
            None
        };
        self.link_stop.store(true, Ordering::SeqCst);
        if report.is_some() {
            let _ = outbox.join();
        }
        if let Some(link) = self.link.take() {
            // The link thread ends once the client is gone; do not wait for a
            // connection attempt to a dead broker.
            let end = Instant::now() + Duration::from_secs(1);
            while !link.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            if link.is_finished() {
                let _ = link.join();
            }
        }
        match report {
            Some(r) => {
                if r.undelivered > 0 {
                    log::warn!(
                        "mqtt: {} message(s) not yet acknowledged by the broker stay in the spool and are delivered on the next start",
                        r.undelivered
                    );
                }
                if r.lost_in_memory > 0 {
                    log::error!(
                        "mqtt: {} message(s) held in memory because the spool could not be written are lost (the broker did not take them before shutdown)",
                        r.lost_in_memory
                    );
                }
                if r.offline_published {
                    log::info!("mqtt: published offline and disconnected");
                }
                Ok(())
            }
            None => Err(SinkError::Closed(
                "the MQTT outbox did not finish in time".into(),
            )),
        }
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.link_stop.store(true, Ordering::SeqCst);
    }
}
