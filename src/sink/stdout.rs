//! The `stdout` sink: one JSON object per detection, one per line (JSON Lines).

use std::io::Write;

use serde::Deserialize;

use super::{Sink, SinkError};
use crate::decision::Detection;
use crate::frame::Frame;

/// `[[sinks]]` with `kind = "stdout"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Pretty-print (multi-line) instead of one line per detection.
    #[serde(default)]
    pub pretty: bool,
}

/// Writes detections to standard output.
#[derive(Debug)]
pub struct StdoutSink {
    pretty: bool,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A sink writing to this process's stdout.
    pub fn new(cfg: &StdoutConfig) -> StdoutSink {
        StdoutSink {
            pretty: cfg.pretty,
            buf: Vec::with_capacity(1024),
        }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn publish(&mut self, d: &Detection, _frame: &Frame) -> Result<(), SinkError> {
        self.buf.clear();
        if self.pretty {
            serde_json::to_writer_pretty(&mut self.buf, d)?;
        } else {
            serde_json::to_writer(&mut self.buf, d)?;
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
