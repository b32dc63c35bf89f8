//! Frame sources: where frames come from.
//!
//! A source implements [`FrameSource`]; the pipeline pulls one
//! [`SourceEvent`] at a time: [`files`] (stills from disk) and [`v4l2`]
//! (USB and CSI cameras).

pub mod files;
pub mod v4l2;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::decode::{DecodeError, DecodeLimits, DecodeTarget};
use crate::frame::Frame;
use crate::motion::{Gate, MotionGate};
use crate::shutdown::Shutdown;

/// `[source]` in the config: `kind` selects the source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    /// Image files: `kind = "files"`, see [`files::FilesConfig`].
    Files(files::FilesConfig),
    /// A V4L2 camera: `kind = "v4l2"`, see [`v4l2::V4l2Config`].
    V4l2(v4l2::V4l2Config),
}

/// What a source yields on each pull.
#[derive(Debug)]
pub enum SourceEvent {
    /// A decoded frame.
    Frame(Frame),
    /// A frame that could not be read or decoded; the source carries on.
    Unreadable {
        /// File path or frame id.
        source_id: String,
        /// Why.
        error: DecodeError,
    },
    /// A frame the motion gate skipped ([`FrameSource::next_event_gated`]):
    /// it was decoded only as far as the gate needed, not for the model.
    Still {
        /// File path or frame id.
        source_id: String,
        /// When the frame was captured, UTC.
        captured_at: chrono::DateTime<chrono::Utc>,
        /// What the gate decided (the changed fraction of the unmasked area).
        gate: Gate,
        /// Time spent reading the frame, decoding what the gate needed and
        /// gating, in ms.
        decode_ms: f64,
    },
    /// The source is exhausted (or shutdown was requested while waiting).
    End,
    /// The source cannot deliver frames any more (e.g. a looping folder whose
    /// files all became unreadable); the daemon stops with exit code 66.
    Lost(String),
    /// The camera went offline (no frame within the timeout, unplugged) or
    /// came back; the source keeps trying on its own.
    Status {
        /// Whether frames arrive again.
        online: bool,
        /// What happened, e.g. "no frame within 5.0 s" or "YUYV 640x480 at 30.000 fps".
        detail: String,
    },
}

/// A source of frames.
pub trait FrameSource: Send {
    /// Blocks until the next event. Must not panic on bad input.
    fn next_event(&mut self) -> SourceEvent;
    /// One line describing the source, for logs.
    fn describe(&self) -> String;
    /// Camera counters (captured, dropped, corrupt, warm-up, reconnects),
    /// for sources that have a camera.
    fn camera_stats(&self) -> Option<crate::stats::CameraStats> {
        None
    }
    /// Sets how small JPEG frames may be decoded (see [`DecodeTarget`]);
    /// sources start with [`DecodeTarget::full`]. The pipeline sets it from
    /// its model and sinks before the first frame and after a reload.
    fn set_decode_target(&mut self, _target: DecodeTarget) {}
    /// As [`FrameSource::next_event`], with `gate` asked first whether the
    /// frame is worth classifying. A frame it skips comes back as
    /// [`SourceEvent::Still`], decoded only as far as the gate needs: a
    /// JPEG's luma at 1/8–1/4 of its size ([`MotionGate::check_jpeg`]), a
    /// YUYV frame's Y samples where they lie. A frame it lets through is
    /// decoded for the model as `next_event` would (cropped as far as the
    /// decode target allows: the gate has seen the whole frame already).
    ///
    /// The default decodes every frame as `next_event` does and gates on
    /// its pixels; a source whose decode target may crop
    /// ([`DecodeTarget::crop`]) must override it, as the gate must see the
    /// whole frame.
    fn next_event_gated(&mut self, gate: &mut MotionGate) -> SourceEvent {
        match self.next_event() {
            SourceEvent::Frame(f) => match gate_decoded(gate, f) {
                Gated::Classify(f) => SourceEvent::Frame(f),
                Gated::Still(still, f) => {
                    self.recycle(f);
                    still
                }
            },
            other => other,
        }
    }
    /// Takes back a processed frame, so that its pixel buffer is decoded
    /// into next (no allocation per frame). The camera source keeps it; the
    /// default drops it.
    fn recycle(&mut self, _frame: Frame) {}
}

/// What [`gate_decoded`] decided for a frame decoded whole.
#[derive(Debug)]
pub enum Gated {
    /// Classify the frame.
    Classify(Frame),
    /// The gate skipped it: return the [`SourceEvent::Still`]; the frame
    /// comes back for its pixel buffer, which the source may keep for the
    /// next decode.
    Still(SourceEvent, Frame),
}

/// Asks `gate` about a frame decoded whole (when the gate cannot read less
/// of it). The gate's time is added to the `decode_ms` of a skipped frame.
pub fn gate_decoded(gate: &mut MotionGate, frame: Frame) -> Gated {
    let t0 = std::time::Instant::now();
    let g = gate.check(&frame.image, frame.captured_at);
    if g.classify() {
        return Gated::Classify(frame);
    }
    let still = SourceEvent::Still {
        source_id: frame.source_id.clone(),
        captured_at: frame.captured_at,
        gate: g,
        decode_ms: frame.decode_ms + t0.elapsed().as_secs_f64() * 1e3,
    };
    Gated::Still(still, frame)
}

/// Errors opening a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Nothing exists at the path.
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    /// Something exists at the path but it is neither a regular file nor a folder.
    #[error("{0}: not a regular file or folder (a camera device needs a camera source, not kind = \"files\")")]
    NotAFile(PathBuf),
    /// A folder or pattern without any image file.
    #[error("{0}: no image files found (looked for .{exts})", exts = files::IMAGE_EXTENSIONS.join(", ."))]
    NoImages(PathBuf),
    /// A malformed glob pattern.
    #[error("bad file pattern {0:?}: {1}")]
    BadPattern(String, String),
    /// A setting is out of range, or the configured camera cannot be used
    /// (permission denied, no fitting format): fixing the config or the
    /// system is needed, a restart will not help (exit code 78).
    #[error("{0}")]
    Invalid(String),
    /// The configured camera is not there (no such device node, or no camera
    /// answers): it may appear later, e.g. a USB camera that enumerates late
    /// at boot, so the daemon exits with 75 and systemd retries.
    #[error("{0}")]
    Unavailable(String),
}

/// Opens the source described by `cfg`; relative paths are resolved against `base`.
///
/// # Errors
/// [`SourceError`] when the source cannot start.
pub fn open(
    cfg: &SourceConfig,
    base: &Path,
    limits: DecodeLimits,
    shutdown: Shutdown,
) -> Result<Box<dyn FrameSource>, SourceError> {
    match cfg {
        SourceConfig::Files(f) => Ok(Box::new(files::FilesSource::open(
            f, base, limits, shutdown,
        )?)),
        SourceConfig::V4l2(c) => Ok(Box::new(v4l2::V4l2Source::open(c, limits, shutdown)?)),
    }
}
