//! The V4L2 camera source: USB (UVC) and CSI cameras on Linux, through the
//! `v4l` crate.
//!
//! * [`config`]: `[source] kind = "v4l2"` (device, format, size, fps,
//!   classification interval, warm-up, timeout).
//! * [`negotiate`]: what the camera offers and what to ask for; the format
//!   the driver returns is the one used.
//! * [`capture`]: the capture thread (mmap streaming, poll with a timeout,
//!   newest-frame slot, offline/online with reopen and back-off).
//! * [`mjpeg`]: MJPEG frames without Huffman tables (ITU-T T.81 Annex K.3),
//!   truncated frames.
//! * [`yuyv`]: YUYV → RGB8 (BT.601, limited range).
//!
//! Only the frame chosen for classification is decoded; frames the pipeline
//! had no time for are dropped and counted (`camera.dropped`).

pub mod capture;
pub mod config;
pub mod mjpeg;
pub mod negotiate;
pub mod yuyv;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use config::{FormatChoice, V4l2Config};

use super::{FrameSource, SourceError, SourceEvent};
use crate::decode::{DecodeError, DecodeLimits, DecodeTarget, Decoded};
use crate::frame::Frame;
use crate::motion::{Luma, MotionGate};
use crate::shutdown::Shutdown;
use crate::stats::CameraStats;
use capture::{Captured, Shared};
use negotiate::Pixel;

/// Decodes one captured buffer into RGB8 by its negotiated format (an MJPEG
/// frame shrunk while decoding as far as `target` allows).
///
/// # Errors
/// [`DecodeError`] (`truncated`, `corrupt`, `too_large`, ...); never panics.
pub fn decode_frame(
    c: &Captured,
    limits: &DecodeLimits,
    target: &DecodeTarget,
) -> Result<Decoded, DecodeError> {
    decode_frame_into(c, limits, target, Vec::new())
}

/// As [`decode_frame`], an MJPEG frame into `buf` (an earlier frame's pixel
/// buffer, reused).
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_frame_into(
    c: &Captured,
    limits: &DecodeLimits,
    target: &DecodeTarget,
    buf: Vec<u8>,
) -> Result<Decoded, DecodeError> {
    let f = &c.format;
    match f.pixel {
        Pixel::Mjpeg => mjpeg::decode_mjpeg_into(&c.bytes, limits, target, buf),
        Pixel::Yuyv => {
            if f.width > limits.max_dimension || f.height > limits.max_dimension {
                return Err(DecodeError::TooLarge {
                    width: f.width,
                    height: f.height,
                    limit: limits.max_dimension,
                });
            }
            // Only the part a centre-crop model reads, when nothing else
            // needs the rest (DecodeTarget::crop).
            let region = match target.input {
                Some(g) if target.crop && crate::decode::crop_enabled() => {
                    g.read_region(f.width, f.height, 0)
                }
                _ => None,
            };
            let (image, (x, y)) = yuyv::yuyv_to_rgb_region(
                &c.bytes,
                f.width,
                f.height,
                f.stride as usize,
                region,
                buf,
            )
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            Ok(Decoded {
                image,
                window: crate::decode::Window {
                    x,
                    y,
                    full_width: f.width,
                    full_height: f.height,
                },
            })
        }
    }
}

/// Frames from a V4L2 camera (see the module docs).
pub struct V4l2Source {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    interval: Duration,
    /// How long the capture thread may stay silent before the watchdog is
    /// no longer fed (a hung driver gets the daemon restarted).
    stale_after: Duration,
    limits: DecodeLimits,
    target: DecodeTarget,
    shutdown: Shutdown,
    device: String,
    description: String,
    seq: u64,
    undecodable: u64,
    /// MJPEG frames without Huffman tables, read with the standard ones
    /// (`camera.repaired`).
    repaired: u64,
    /// The pixel buffer of a processed frame, decoded into next.
    spare: Vec<u8>,
    /// The motion gate's luma buffer (a JPEG decoded at reduced scale).
    luma: Vec<u8>,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Source")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl V4l2Source {
    /// Opens the camera, negotiates the format and starts the capture
    /// thread. The camera must be there at start-up: a missing device, a
    /// permission problem or no fitting format refuses to start; later
    /// outages are ridden out.
    ///
    /// # Errors
    /// [`SourceError::Unavailable`] (exit code 75, retried by systemd) when
    /// the device node does not exist or no camera answers;
    /// [`SourceError::Invalid`] (exit code 78) for the rest, naming the
    /// device, the problem and the fix (for permissions: the user, its
    /// groups and `SupplementaryGroups=video`; for formats: what the camera
    /// offers).
    pub fn open(
        cfg: &V4l2Config,
        limits: DecodeLimits,
        shutdown: Shutdown,
    ) -> Result<V4l2Source, SourceError> {
        cfg.check()
            .map_err(|(field, m)| SourceError::Invalid(format!("source.{field}: {m}")))?;
        let first = capture::open(cfg).map_err(|e| {
            if e.is_absent() {
                SourceError::Unavailable(e.describe(&cfg.device))
            } else {
                SourceError::Invalid(e.describe(&cfg.device))
            }
        })?;
        let description = format!(
            "v4l2: {} ({}{}, warm-up {} frames)",
            cfg.device,
            first.1,
            if cfg.classify_interval().is_zero() {
                ", classifying every frame".to_string()
            } else {
                format!(
                    ", classifying the newest frame every {} s",
                    cfg.classify_interval_secs
                )
            },
            cfg.warmup_frames
        );
        let shared = Arc::new(Shared::new());
        let thread = {
            let shared = shared.clone();
            let cfg = cfg.clone();
            std::thread::Builder::new()
                .name("v4l2-capture".into())
                .spawn(move || capture::run(cfg, shared, first))
                .map_err(|e| SourceError::Invalid(format!("starting the capture thread: {e}")))?
        };
        Ok(V4l2Source {
            shared,
            thread: Some(thread),
            interval: cfg.classify_interval(),
            stale_after: cfg.timeout() * 2 + cfg.reconnect_max() + Duration::from_secs(5),
            limits,
            target: DecodeTarget::full(),
            shutdown,
            device: cfg.device.clone(),
            description,
            seq: 0,
            undecodable: 0,
            repaired: 0,
            spare: Vec::new(),
            luma: Vec::new(),
        })
    }
}

impl V4l2Source {
    /// Waits for the frame to classify next (the newest one, at the
    /// configured pace), or another event (shutdown, camera status).
    fn take(&mut self) -> Result<Captured, SourceEvent> {
        let mut st = self.shared.lock();
        loop {
            if self.shutdown.is_triggered() {
                return Err(SourceEvent::End);
            }
            if let Some(ev) = st.events.pop_front() {
                return Err(SourceEvent::Status {
                    online: ev.online,
                    detail: ev.detail,
                });
            }
            let now = Instant::now();
            if now >= st.due {
                if let Some(f) = st.latest.take() {
                    // Steady pace; after a slow frame, no burst to catch up.
                    st.due = st.due.max(now) + self.interval;
                    if self.interval.is_zero() {
                        st.due = now;
                    }
                    return Ok(f);
                }
            }
            if st.heartbeat.elapsed() < self.stale_after {
                self.shutdown.notifier().alive();
            }
            let wait = if now < st.due {
                (st.due - now).min(Duration::from_millis(50))
            } else {
                Duration::from_millis(50)
            };
            st = self
                .shared
                .cond
                .wait_timeout(st, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Asks `gate` (if any) about `frame` from its luma (a JPEG's at reduced
    /// DCT scale, a YUYV frame's Y samples in place), then decodes it for
    /// the model, and hands its buffer back to the capture thread.
    fn decode(&mut self, frame: Captured, gate: Option<&mut MotionGate>) -> SourceEvent {
        let t0 = Instant::now();
        let source_id = format!("{}#{}", self.device, frame.sequence);
        let seq = self.seq;
        self.seq += 1;
        let captured_at = frame.captured_at;
        if needs_standard_tables(&frame) {
            self.repaired += 1;
        }
        let mut target = self.target;
        let mut whole_gate = None;
        if let Some(gate) = gate {
            let f = &frame.format;
            let g = match f.pixel {
                Pixel::Mjpeg => {
                    gate.check_jpeg(&frame.bytes, &self.limits, &mut self.luma, captured_at)
                }
                // A buffer the conversion would refuse is decoded (and
                // reported) rather than gated.
                Pixel::Yuyv
                    if yuyv::check_buffer(&frame.bytes, f.width, f.height, f.stride as usize)
                        .is_err() =>
                {
                    None
                }
                Pixel::Yuyv => {
                    let luma = Luma {
                        data: &frame.bytes,
                        width: f.width,
                        height: f.height,
                        stride: f.stride as usize,
                        step: 2,
                        limited_range: true,
                    };
                    Some(gate.check_luma(&luma, f.width, f.height, captured_at))
                }
            };
            match g {
                Some(g) if !g.classify() => {
                    let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
                    self.give_back(frame);
                    return SourceEvent::Still {
                        source_id,
                        captured_at,
                        gate: g,
                        decode_ms,
                    };
                }
                Some(_) => {}
                // Not readable as luma: the gate reads the whole decoded frame.
                None => {
                    target.crop = false;
                    whole_gate = Some(gate);
                }
            }
        }
        let spare = std::mem::take(&mut self.spare);
        let result = decode_frame_into(&frame, &self.limits, &target, spare);
        self.give_back(frame);
        match result {
            Ok(Decoded { image, window }) => {
                let frame = Frame {
                    seq,
                    source_id,
                    captured_at,
                    image,
                    window,
                    decode_ms: t0.elapsed().as_secs_f64() * 1e3,
                };
                let Some(gate) = whole_gate else {
                    return SourceEvent::Frame(frame);
                };
                match super::gate_decoded(gate, frame) {
                    super::Gated::Classify(frame) => SourceEvent::Frame(frame),
                    super::Gated::Still(still, frame) => {
                        self.spare = frame.image.into_raw();
                        still
                    }
                }
            }
            Err(error) => {
                self.undecodable += 1;
                SourceEvent::Unreadable { source_id, error }
            }
        }
    }

    /// Hands a captured frame's buffer back to the capture thread for reuse.
    fn give_back(&self, frame: Captured) {
        let mut st = self.shared.lock();
        if st.spare.capacity() < frame.bytes.capacity() {
            st.spare = frame.bytes;
        }
    }
}

impl FrameSource for V4l2Source {
    fn set_decode_target(&mut self, target: DecodeTarget) {
        self.target = target;
    }

    fn recycle(&mut self, frame: Frame) {
        self.spare = frame.image.into_raw();
    }

    fn next_event(&mut self) -> SourceEvent {
        match self.take() {
            Ok(frame) => self.decode(frame, None),
            Err(event) => event,
        }
    }

    fn next_event_gated(&mut self, gate: &mut MotionGate) -> SourceEvent {
        match self.take() {
            Ok(frame) => self.decode(frame, Some(gate)),
            Err(event) => event,
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn camera_stats(&self) -> Option<CameraStats> {
        let mut s = self.shared.lock().stats.clone();
        s.corrupt += self.undecodable;
        s.repaired = self.repaired;
        Some(s)
    }
}

/// Whether `frame` is an MJPEG frame without Huffman tables (no DHT
/// segment), which many UVC webcams send: it is read with the standard
/// tables of ITU-T T.81 Annex K (libjpeg-turbo does so itself).
fn needs_standard_tables(frame: &Captured) -> bool {
    frame.format.pixel == Pixel::Mjpeg && !mjpeg::has_huffman_tables(&frame.bytes)
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cond.notify_all();
        if let Some(t) = self.thread.take() {
            // The thread notices within one poll timeout.
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(bytes: Vec<u8>, pixel: Pixel, w: u32, h: u32) -> Captured {
        Captured {
            bytes,
            format: negotiate::Negotiated {
                pixel,
                fourcc: if pixel == Pixel::Yuyv {
                    *b"YUYV"
                } else {
                    *b"MJPG"
                },
                width: w,
                height: h,
                stride: if pixel == Pixel::Yuyv { w * 2 } else { 0 },
                interval: None,
            },
            sequence: 7,
            captured_at: chrono::Utc::now(),
            at: Instant::now(),
        }
    }

    #[test]
    fn short_yuyv_buffers_and_truncated_mjpeg_are_unreadable_not_fatal() {
        let limits = DecodeLimits::default();
        let ok = captured([126, 128, 126, 128].repeat(4 * 2), Pixel::Yuyv, 8, 2);
        let img = decode_frame(&ok, &limits, &DecodeTarget::full())
            .unwrap()
            .image;
        assert_eq!(img.get_pixel(7, 1).0, [128, 128, 128]);
        let short = captured(vec![16; 10], Pixel::Yuyv, 8, 2);
        let e = decode_frame(&short, &limits, &DecodeTarget::full()).unwrap_err();
        assert_eq!(e.reason(), "corrupt");
        assert!(
            e.to_string()
                .contains("needs 32 bytes, the buffer holds 10"),
            "{e}"
        );
        let huge = captured(vec![], Pixel::Yuyv, 20000, 2);
        assert_eq!(
            decode_frame(&huge, &limits, &DecodeTarget::full())
                .unwrap_err()
                .reason(),
            "too_large"
        );
        let mjpeg = captured(vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00], Pixel::Mjpeg, 8, 2);
        assert_eq!(
            decode_frame(&mjpeg, &limits, &DecodeTarget::full())
                .unwrap_err()
                .reason(),
            "truncated"
        );
    }

    #[test]
    fn frames_without_huffman_tables_are_the_repaired_ones() {
        let bad = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad/");
        let bars = std::fs::read(format!("{bad}bars.jpg")).unwrap();
        let no_dht = std::fs::read(format!("{bad}bars_no_dht.jpg")).unwrap();
        assert!(!needs_standard_tables(&captured(
            bars.clone(),
            Pixel::Mjpeg,
            64,
            48
        )));
        let bare = captured(no_dht, Pixel::Mjpeg, 64, 48);
        assert!(needs_standard_tables(&bare));
        // Decoded with the standard tables, to the same size as the original.
        let img = decode_frame(&bare, &DecodeLimits::default(), &DecodeTarget::full())
            .unwrap()
            .image;
        assert_eq!(img.dimensions(), (64, 48));
        assert!(!needs_standard_tables(&captured(
            vec![16; 32],
            Pixel::Yuyv,
            8,
            2
        )));
    }
}
