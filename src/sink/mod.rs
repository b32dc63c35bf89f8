//! Sinks: where detections go.
//!
//! A sink implements [`Sink`]; the pipeline hands it every detection. Today:
//! [`stdout`] (JSON Lines). MQTT plugs in as another [`SinkConfig`] variant.

pub mod stdout;

use serde::Deserialize;

use crate::decision::Detection;

/// One `[[sinks]]` entry in the config: `kind` selects the sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkConfig {
    /// JSON Lines on standard output: `kind = "stdout"`, see [`stdout::StdoutConfig`].
    Stdout(stdout::StdoutConfig),
}

/// Errors delivering a detection.
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
}

/// A destination for detections.
pub trait Sink: Send {
    /// Short name for logs, e.g. `stdout`.
    fn name(&self) -> &str;
    /// Delivers one detection.
    ///
    /// # Errors
    /// [`SinkError`] when it could not be delivered; the pipeline logs and counts it.
    fn publish(&mut self, d: &Detection) -> Result<(), SinkError>;
    /// Delivers anything buffered; called at shutdown.
    ///
    /// # Errors
    /// As [`Sink::publish`].
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Builds the sinks listed in the config.
pub fn open_all(cfgs: &[SinkConfig]) -> Vec<Box<dyn Sink>> {
    cfgs.iter()
        .map(|c| -> Box<dyn Sink> {
            match c {
                SinkConfig::Stdout(s) => Box::new(stdout::StdoutSink::new(s)),
            }
        })
        .collect()
}
