//! The writer thread: everything the dashboard needs encoded as JPEG is
//! handed to it through a bounded queue, so that the frame path only ever
//! copies an image (and not even that when the queue is full: the frame is
//! dropped and counted).
//!
//! It writes kept review frames into the [`Store`], and encodes the latest
//! frame and the events' thumbnails for [`Live`]. A write error (a full
//! disk) is counted every time and logged once (again at most once a
//! minute, after a write has worked in between).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use image::RgbImage;

use super::store::Store;
use super::Sidecar;
use crate::live::Live;

/// Longest side of the latest frame on the status page.
const LATEST_SIDE: u32 = 640;
/// Longest side of an event's thumbnail.
const THUMB_SIDE: u32 = 240;
/// At most one write failure a minute is logged.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// JPEG quality of everything written.
const QUALITY: u8 = 85;

/// One piece of work for the writer thread.
#[derive(Debug)]
pub enum Job {
    /// A kept review frame.
    Save {
        /// Its sidecar.
        sidecar: Box<Sidecar>,
        /// Its pixels.
        image: RgbImage,
    },
    /// The latest frame, for the status page.
    Latest {
        /// Its pixels.
        image: RgbImage,
        /// Its capture time.
        captured_at: String,
    },
    /// An event's best frame so far, for the events page.
    Thumb {
        /// The event id.
        event_id: String,
        /// Its pixels.
        image: RgbImage,
    },
}

/// The pipeline's end of the queue (see the module docs).
#[derive(Debug, Clone)]
pub struct Capture {
    tx: SyncSender<Job>,
    pending: Arc<AtomicUsize>,
    cap: usize,
    store: Option<Arc<Store>>,
    side: u32,
}

impl Capture {
    /// Starts the writer thread with a queue of `cap` jobs. Review frames go
    /// to `store` (none: review capture is off, only the dashboard's images
    /// are encoded), resized to `side` pixels at most; images for the
    /// dashboard go to `live`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(
        store: Option<Arc<Store>>,
        live: Option<Arc<Live>>,
        cap: usize,
        side: u32,
    ) -> std::io::Result<Capture> {
        let (tx, rx) = sync_channel(cap.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let (p, s) = (pending.clone(), store.clone());
        std::thread::Builder::new()
            .name("review-writer".into())
            .spawn(move || writer(rx, p, s, live, side))?;
        Ok(Capture {
            tx,
            pending,
            cap: cap.max(1),
            store,
            side,
        })
    }

    /// The review store, when review capture is on.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// Longest side of the images this writer needs (for decoding frames
    /// large enough): the review side with review capture on, else 0.
    pub fn image_side(&self) -> u32 {
        if self.store.is_some() {
            self.side
        } else {
            0
        }
    }

    /// Hands a job to the writer unless its queue is full; `job` (which
    /// copies the image) is only called when there is room. Returns whether
    /// it was queued; a dropped review frame is counted.
    pub fn offer(&self, job: impl FnOnce() -> Job) -> bool {
        if self.pending.load(Ordering::Acquire) >= self.cap {
            self.dropped();
            return false;
        }
        let job = job();
        let is_save = matches!(job, Job::Save { .. });
        self.pending.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                if is_save {
                    self.dropped();
                }
                false
            }
        }
    }

    fn dropped(&self) {
        if let Some(s) = &self.store {
            s.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The image shrunk so that its longest side is at most `side` (a copy).
fn shrink(image: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    if w.max(h) <= side || w == 0 || h == 0 {
        return image.clone();
    }
    let scale = f64::from(side) / f64::from(w.max(h));
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle)
}

/// JPEG bytes of `image` shrunk to `side`.
pub fn jpeg(image: &RgbImage, side: u32) -> Result<Vec<u8>, image::ImageError> {
    let small = shrink(image, side);
    let mut out = Vec::with_capacity(64 * 1024);
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY);
    small.write_with_encoder(enc)?;
    Ok(out)
}

fn writer(
    rx: Receiver<Job>,
    pending: Arc<AtomicUsize>,
    store: Option<Arc<Store>>,
    live: Option<Arc<Live>>,
    side: u32,
) {
    // Logged: the first failure, then at most one failure a minute (and
    // one "again" after each logged failure); every failure is counted.
    let mut failing = false;
    let mut last_logged: Option<std::time::Instant> = None;
    for job in rx {
        match job {
            Job::Save { sidecar, image } => {
                let Some(store) = &store else { continue };
                let r = jpeg(&image, side)
                    .map_err(std::io::Error::other)
                    .and_then(|j| store.insert(&sidecar, &j));
                match r {
                    Ok(()) if failing => {
                        failing = false;
                        log::info!(
                            "review: writing frames to {} again",
                            store.queue_dir().display()
                        );
                    }
                    Ok(()) => {}
                    Err(e) => {
                        store.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                        if !failing && last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                            failing = true;
                            last_logged = Some(std::time::Instant::now());
                            log::error!(
                                "review: cannot write frames to {}: {e}; frames are dropped (and counted) until it works again, detections go on",
                                store.queue_dir().display()
                            );
                        }
                    }
                }
            }
            Job::Latest { image, captured_at } => {
                if let (Some(live), Ok(j)) = (&live, jpeg(&image, LATEST_SIDE)) {
                    live.set_latest_jpeg(j, captured_at);
                }
            }
            Job::Thumb { event_id, image } => {
                if let (Some(live), Ok(j)) = (&live, jpeg(&image, THUMB_SIDE)) {
                    live.set_thumb(&event_id, j);
                }
            }
        }
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}
