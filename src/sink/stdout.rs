//! The `stdout` sink: one JSON object per detection (or event message, with
//! `messages = "events"` or `"both"`), one per line (JSON Lines).

use std::io::Write;

use serde::Deserialize;

use image::RgbImage;

use super::{Messages, Sink, SinkError};
use crate::decision::{Detection, EventMessage};
use crate::frame::Frame;

/// `[[sinks]]` with `kind = "stdout"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Pretty-print (multi-line) instead of one line per detection.
    #[serde(default)]
    pub pretty: bool,
    /// What to print: `"detections"` (default: one line per detected
    /// frame), `"events"` (event messages, with a `type` field) or `"both"`.
    #[serde(default = "default_messages")]
    pub messages: Messages,
}

fn default_messages() -> Messages {
    Messages::Detections
}

impl Default for StdoutConfig {
    fn default() -> Self {
        StdoutConfig {
            pretty: false,
            messages: default_messages(),
        }
    }
}

/// Writes detections to standard output.
#[derive(Debug)]
pub struct StdoutSink {
    pretty: bool,
    messages: Messages,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A sink writing to this process's stdout.
    pub fn new(cfg: &StdoutConfig) -> StdoutSink {
        StdoutSink {
            pretty: cfg.pretty,
            messages: cfg.messages,
            buf: Vec::with_capacity(1024),
        }
    }

    fn write<T: serde::Serialize>(&mut self, v: &T) -> Result<(), SinkError> {
        self.buf.clear();
        if self.pretty {
            serde_json::to_writer_pretty(&mut self.buf, v)?;
        } else {
            serde_json::to_writer(&mut self.buf, v)?;
        }
        self.buf.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|()| out.flush())
            .map_err(|e| {
                // stdout cannot buffer: any failure (closed pipe, full disk) is final.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    SinkError::Closed("stdout was closed (the process reading it exited)".into())
                } else {
                    SinkError::Closed(format!("writing to stdout failed: {e}"))
                }
            })
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn publish(&mut self, d: &Detection, _frame: &Frame) -> Result<(), SinkError> {
        if self.messages.detections() {
            self.write(d)
        } else {
            Ok(())
        }
    }

    fn publish_event(
        &mut self,
        e: &EventMessage,
        _best: Option<&RgbImage>,
    ) -> Result<(), SinkError> {
        if self.messages.events() {
            self.write(e)
        } else {
            Ok(())
        }
    }
}
