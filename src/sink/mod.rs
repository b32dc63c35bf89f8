//! Sinks: where detections go.
//!
//! A sink implements [`Sink`]; the pipeline hands it every per-frame
//! detection (and the frame, for snapshots), every event message (`new`,
//! `update`, `end`; see [`crate::decision::events`]) with the event's best
//! frame, and, every `[stats] interval_secs`, the counters. Each sink's
//! `messages` setting ([`Messages`]) says which of the two it passes on.
//! Sinks: [`stdout`] (JSON Lines) and [`mqtt`] (topics, retained
//! availability, Home Assistant discovery, on-disk spool).

pub mod mqtt;
pub mod stdout;

use std::path::PathBuf;

use serde::Deserialize;

use image::RgbImage;

use crate::decision::{Detection, EventMessage};
use crate::frame::Frame;
use crate::stats::Snapshot;

/// One `[[sinks]]` entry in the config: `kind` selects the sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkConfig {
    /// JSON Lines on standard output: `kind = "stdout"`, see [`stdout::StdoutConfig`].
    Stdout(stdout::StdoutConfig),
    /// MQTT: `kind = "mqtt"`, see [`mqtt::MqttConfig`].
    Mqtt(Box<mqtt::MqttConfig>),
}

/// Which messages a sink passes on (its `messages` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Messages {
    /// Event messages only (`new`/`update`/`end`, one event per visit).
    Events,
    /// Per-frame detections only (one message per detected frame).
    Detections,
    /// Both.
    Both,
}

impl Messages {
    /// Whether per-frame detections are passed on.
    pub fn detections(self) -> bool {
        matches!(self, Messages::Detections | Messages::Both)
    }

    /// Whether event messages are passed on.
    pub fn events(self) -> bool {
        matches!(self, Messages::Events | Messages::Both)
    }
}

/// What sinks need to know about the daemon they serve.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The camera id (`camera_id`, default the host name).
    pub camera: String,
    /// Labels that may be published (event types for Home Assistant).
    pub publishable_labels: Vec<String>,
    /// The model's manifest name.
    pub model_name: String,
    /// The config file's folder, against which relative paths resolve.
    pub base_dir: PathBuf,
}

/// Errors delivering a detection or starting a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed (e.g. disk full behind a redirected stdout).
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The destination is gone for good (e.g. the process reading stdout exited).
    #[error("closed: {0}")]
    Closed(String),
    /// The detection could not be serialised.
    #[error("serialisation failed: {0}")]
    Json(#[from] serde_json::Error),
    /// A setting cannot be used (unreadable password or certificate file);
    /// the daemon refuses to start (exit 78).
    #[error("{0}")]
    Config(String),
    /// The on-disk spool cannot be opened (exit 73).
    #[error(transparent)]
    Spool(#[from] mqtt::spool::SpoolError),
}

/// A destination for detections.
pub trait Sink: Send {
    /// Short name for logs, e.g. `stdout`.
    fn name(&self) -> &str;
    /// Delivers one detection of `frame` (the frame is there for snapshots).
    ///
    /// # Errors
    /// [`SinkError`] when it could not be delivered; the pipeline logs and
    /// counts it ([`SinkError::Closed`] stops the daemon, exit 74).
    fn publish(&mut self, d: &Detection, frame: &Frame) -> Result<(), SinkError>;
    /// Delivers one event message; `best` is the event's best frame (for
    /// its snapshot), `None` for `end` messages. The default ignores events.
    ///
    /// # Errors
    /// As [`Sink::publish`].
    fn publish_event(
        &mut self,
        _e: &EventMessage,
        _best: Option<&RgbImage>,
    ) -> Result<(), SinkError> {
        Ok(())
    }
    /// Receives the pipeline's counters every `[stats] interval_secs`.
    fn stats(&mut self, _snapshot: &Snapshot) {}
    /// The longest side, in pixels, this sink needs of a frame's image
    /// (e.g. the snapshot size); 0 when it does not use the pixels. Bounds
    /// how small frames are decoded ([`crate::decode::DecodeTarget`]).
    fn image_side(&self) -> u32 {
        0
    }
    /// The camera went offline (`online = false`, with the reason in
    /// `detail`) or came back. Default: nothing (the pipeline logs it).
    fn source_status(&mut self, _online: bool, _detail: &str) {}
    /// Delivers anything buffered and closes; called once at shutdown.
    ///
    /// # Errors
    /// As [`Sink::publish`].
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Checks what [`open_all`] would need (password, CA, certificate and key
/// files) without starting anything or touching the spool, and describes
/// each sink in one line (for `camtrapd check-config`).
///
/// # Errors
/// [`SinkError::Config`] naming the setting and the fix.
pub fn check_all(cfgs: &[SinkConfig], ctx: &SinkContext) -> Result<Vec<String>, SinkError> {
    let mut nth = 0;
    cfgs.iter()
        .map(|c| match c {
            SinkConfig::Stdout(_) => Ok("stdout (JSON Lines)".to_string()),
            SinkConfig::Mqtt(m) => {
                nth += 1;
                mqtt::MqttSink::check(m, ctx, nth)
            }
        })
        .collect()
}

/// Builds the sinks listed in the config.
///
/// # Errors
/// [`SinkError::Config`] or [`SinkError::Spool`] when a sink cannot start.
pub fn open_all(cfgs: &[SinkConfig], ctx: &SinkContext) -> Result<Vec<Box<dyn Sink>>, SinkError> {
    let mut nth = 0;
    cfgs.iter()
        .map(|c| -> Result<Box<dyn Sink>, SinkError> {
            Ok(match c {
                SinkConfig::Stdout(s) => Box::new(stdout::StdoutSink::new(s)),
                SinkConfig::Mqtt(m) => {
                    nth += 1;
                    Box::new(mqtt::MqttSink::open(m, ctx, nth)?)
                }
            })
        })
        .collect()
}
