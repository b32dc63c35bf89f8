//! A frame: one decoded image on its way through the pipeline, with where and
//! when it was captured.

use chrono::{DateTime, Utc};
use image::RgbImage;

use crate::decode::Window;

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Sequence number within the source, from 0.
    pub seq: u64,
    /// Where the frame came from: a file path, or a device and frame number.
    pub source_id: String,
    /// When the frame was captured (for files: when it was read), UTC.
    pub captured_at: DateTime<Utc>,
    /// The pixels, RGB8, any size: the whole frame, or only the part the
    /// model reads ([`crate::decode::DecodeTarget::crop`]).
    pub image: RgbImage,
    /// Where `image` lies in the whole frame ([`Window::whole`] unless the
    /// decoder cropped it).
    pub window: Window,
    /// Time spent reading and decoding the frame, in ms (with the motion
    /// gate on, including the gate's own read of the frame).
    pub decode_ms: f64,
}
