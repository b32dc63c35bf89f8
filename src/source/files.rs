//! The `files` frame source: a single image, a folder (walked recursively in
//! sorted order), or a glob pattern; optional pacing (frames per second) and
//! looping. Unreadable files are reported as such, never fatal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{FrameSource, SourceError, SourceEvent};
use crate::decode::{decode_bytes_for, read_file, DecodeLimits, DecodeTarget, Decoded};
use crate::frame::Frame;
use crate::motion::MotionGate;
use crate::shutdown::Shutdown;

/// File extensions picked up when walking a folder (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif"];

/// `[source]` with `kind = "files"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// A file, a folder, or a glob pattern such as `/data/*.jpg`. Relative
    /// paths are relative to the config file's folder.
    pub path: String,
    /// Frames per second to emit (e.g. 1.0 to simulate a camera); absent = as fast as possible.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Start again from the first file after the last one.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
}

/// Lists the image files named by `path`: the file itself, the image files
/// under a folder (recursive, sorted), or the image files matching a glob
/// pattern such as `frames/**/*.jpg` (sorted). Folders and patterns are
/// walked with symlink-loop detection; only files with an image extension
/// ([`IMAGE_EXTENSIONS`]) are taken from them.
///
/// # Errors
/// [`SourceError::NotFound`] when nothing exists there, [`SourceError::NotAFile`]
/// for a device or other special file, [`SourceError::NoImages`] when a folder
/// or pattern holds no image file, [`SourceError::BadPattern`].
pub fn list_images(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let s = path.to_string_lossy();
    if s.is_empty() {
        return Err(SourceError::Invalid(
            "the path is empty; name a file, a folder or a glob pattern".into(),
        ));
    }
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        walk(path, usize::MAX, &mut files, |_| true);
    } else if path.exists() {
        return Err(SourceError::NotAFile(path.to_path_buf()));
    } else if s.contains(['*', '?', '[']) {
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        let pattern = glob::Pattern::new(&s)
            .map_err(|e| SourceError::BadPattern(s.to_string(), e.to_string()))?;
        // Walk from the pattern's literal prefix (the folders before the first wildcard).
        let mut root = PathBuf::new();
        let components: Vec<_> = path.components().collect();
        let literal = components
            .iter()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .count();
        for c in &components[..literal] {
            root.push(c);
        }
        // Without `**` a match lies exactly this many levels below the root.
        let depth = if s.contains("**") {
            usize::MAX
        } else {
            components.len() - literal
        };
        if root.as_os_str().is_empty() {
            root.push(".");
        }
        if root.is_dir() {
            let prefix_dot = !path.starts_with(".") && root == Path::new(".");
            walk(&root, depth, &mut files, |p| {
                let p = if prefix_dot {
                    p.strip_prefix("./").unwrap_or(p)
                } else {
                    p
                };
                pattern.matches_path_with(p, opts)
            });
        }
    } else {
        return Err(SourceError::NotFound(path.to_path_buf()));
    }
    if files.is_empty() {
        return Err(SourceError::NoImages(path.to_path_buf()));
    }
    Ok(files)
}

/// Collects image files under `root` (sorted, following symlinks, skipping
/// loops and unreadable entries with a warning) that satisfy `keep`.
fn walk(root: &Path, max_depth: usize, files: &mut Vec<PathBuf>, keep: impl Fn(&Path) -> bool) {
    for entry in walkdir::WalkDir::new(root)
        .max_depth(max_depth)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) && keep(e.path()) => {
                files.push(e.into_path())
            }
            Ok(_) => {}
            Err(e) => log::warn!(
                "skipping {}: {e}",
                e.path()
                    .map_or(root.display().to_string(), |p| p.display().to_string())
            ),
        }
    }
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Smallest and largest accepted `fps`.
pub const FPS_RANGE: (f64, f64) = (0.001, 1000.0);

/// The frame interval for `fps`, or why it is out of range.
///
/// # Errors
/// A message naming the allowed range.
pub fn fps_interval(fps: f64) -> Result<Duration, String> {
    let (lo, hi) = FPS_RANGE;
    if fps.is_finite() && (lo..=hi).contains(&fps) {
        Duration::try_from_secs_f64(1.0 / fps).map_err(|e| e.to_string())
    } else {
        // 0 and ordinary numbers as written; 1e-300 or 1e300 in exponent form.
        let shown = if fps == 0.0 || (1e-3..1e6).contains(&fps.abs()) {
            format!("{fps}")
        } else {
            format!("{fps:e}")
        };
        Err(format!("{shown} is out of range; allowed {lo} ..= {hi} frames per second, or leave fps out for as fast as possible"))
    }
}

/// Frames from image files.
#[derive(Debug)]
pub struct FilesSource {
    files: Vec<PathBuf>,
    next: usize,
    seq: u64,
    interval: Option<Duration>,
    due: Option<Instant>,
    repeat: bool,
    limits: DecodeLimits,
    target: DecodeTarget,
    shutdown: Shutdown,
    description: String,
    /// The motion gate's luma buffer (a JPEG decoded at reduced scale).
    luma: Vec<u8>,
}

impl FilesSource {
    /// Opens the source; `base` resolves a relative `path`.
    ///
    /// # Errors
    /// As [`list_images`]; [`SourceError::Invalid`] for a non-positive `fps`.
    pub fn open(
        cfg: &FilesConfig,
        base: &Path,
        limits: DecodeLimits,
        shutdown: Shutdown,
    ) -> Result<FilesSource, SourceError> {
        let path = base.join(&cfg.path);
        let interval = match cfg.fps {
            None => None,
            Some(f) => Some(fps_interval(f).map_err(SourceError::Invalid)?),
        };
        let files = list_images(&path)?;
        let description = format!(
            "files: {} ({} images{})",
            path.display(),
            files.len(),
            if cfg.repeat { ", looping" } else { "" }
        );
        Ok(FilesSource {
            files,
            next: 0,
            seq: 0,
            interval,
            due: None,
            repeat: cfg.repeat,
            limits,
            target: DecodeTarget::full(),
            shutdown,
            description,
            luma: Vec::new(),
        })
    }

    /// Opens explicit paths (files, folders or globs), for `camtrapd classify`.
    ///
    /// # Errors
    /// As [`list_images`], for the first path that fails.
    pub fn from_paths(
        paths: &[PathBuf],
        limits: DecodeLimits,
        shutdown: Shutdown,
    ) -> Result<FilesSource, SourceError> {
        let mut files = Vec::new();
        for p in paths {
            files.extend(list_images(p)?);
        }
        let description = format!("{} image files", files.len());
        Ok(FilesSource {
            files,
            next: 0,
            seq: 0,
            interval: None,
            due: None,
            repeat: false,
            limits,
            target: DecodeTarget::full(),
            shutdown,
            description,
            luma: Vec::new(),
        })
    }

    /// Number of files in one pass.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no file (never true for an opened source).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FilesSource {
    /// The next file, paced, asking `gate` (if any) first: a JPEG's luma
    /// at reduced DCT scale ([`MotionGate::check_jpeg`]), other files on
    /// their whole decoded frame.
    fn next(&mut self, gate: Option<&mut MotionGate>) -> SourceEvent {
        if self.files.is_empty() {
            return SourceEvent::Lost(format!("no readable image left in {}", self.description));
        }
        if self.next >= self.files.len() {
            if !self.repeat {
                return SourceEvent::End;
            }
            self.next = 0;
        }
        if let Some(interval) = self.interval {
            let now = Instant::now();
            let due = self.due.unwrap_or(now);
            if due > now && !self.shutdown.sleep(due - now) {
                return SourceEvent::End;
            }
            // Keep a steady rate; if we fell behind, do not burst to catch up.
            self.due = Some(due.max(now) + interval);
        }
        let path = &self.files[self.next];
        self.next += 1;
        let seq = self.seq;
        self.seq += 1;
        let captured_at = chrono::Utc::now();
        let t0 = Instant::now();
        let source_id = path.display().to_string();
        let ms = |t0: Instant| t0.elapsed().as_secs_f64() * 1e3;
        let mut target = self.target;
        let bytes = read_file(path, &self.limits);
        let mut whole_gate = None;
        if let (Some(gate), Ok(bytes)) = (gate, &bytes) {
            match gate.check_jpeg(bytes, &self.limits, &mut self.luma, captured_at) {
                Some(g) if !g.classify() => {
                    return SourceEvent::Still {
                        source_id,
                        captured_at,
                        gate: g,
                        decode_ms: ms(t0),
                    }
                }
                Some(_) => {}
                None => {
                    // Not a JPEG the gate can read as luma: it reads the
                    // whole decoded frame.
                    target.crop = false;
                    whole_gate = Some(gate);
                }
            }
        }
        match bytes.and_then(|b| decode_bytes_for(&b, &self.limits, &target)) {
            Ok(Decoded { image, window }) => {
                let frame = Frame {
                    seq,
                    source_id,
                    captured_at,
                    image,
                    window,
                    decode_ms: ms(t0),
                };
                let Some(gate) = whole_gate else {
                    return SourceEvent::Frame(frame);
                };
                match super::gate_decoded(gate, frame) {
                    super::Gated::Classify(frame) => SourceEvent::Frame(frame),
                    super::Gated::Still(still, _) => still,
                }
            }
            Err(error) => {
                if self.repeat {
                    // Looping: report a bad file once, then leave it out of later passes.
                    self.next -= 1;
                    self.files.remove(self.next);
                }
                SourceEvent::Unreadable { source_id, error }
            }
        }
    }
}

impl FrameSource for FilesSource {
    fn set_decode_target(&mut self, target: DecodeTarget) {
        self.target = target;
    }

    fn next_event(&mut self) -> SourceEvent {
        self.next(None)
    }

    fn next_event_gated(&mut self, gate: &mut MotionGate) -> SourceEvent {
        self.next(Some(gate))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn globs_walk_once_through_symlink_loops_and_filter_extensions() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        touch(&d.join("a.jpg"), b"x");
        touch(&d.join("sub/b.JPG"), b"x");
        touch(&d.join("sub/notes.txt"), b"x");
        std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(d, d.join("sub/abs")).unwrap();
        let all = list_images(&d.join("**/*")).unwrap();
        assert_eq!(all, vec![d.join("a.jpg"), d.join("sub/b.JPG")]);
        let top = list_images(&d.join("*.jpg")).unwrap();
        assert_eq!(top, vec![d.join("a.jpg")]);
        // The folder walk gives the same files.
        assert_eq!(list_images(d).unwrap(), all);
        assert!(matches!(
            list_images(&d.join("*.png")),
            Err(SourceError::NoImages(_))
        ));
        assert!(matches!(
            list_images(Path::new("/dev/null")),
            Err(SourceError::NotAFile(_))
        ));
        assert!(matches!(
            list_images(&d.join("missing")),
            Err(SourceError::NotFound(_))
        ));
    }

    #[test]
    fn looping_over_unreadable_files_ends_instead_of_spinning() {
        let t = tempfile::tempdir().unwrap();
        touch(&t.path().join("a.jpg"), b"not a jpeg");
        touch(&t.path().join("b.jpg"), b"");
        let cfg = FilesConfig {
            path: t.path().display().to_string(),
            fps: None,
            repeat: true,
        };
        let mut s = FilesSource::open(
            &cfg,
            Path::new("."),
            DecodeLimits::default(),
            Shutdown::new(),
        )
        .unwrap();
        let mut events = Vec::new();
        loop {
            match s.next_event() {
                SourceEvent::End => panic!("a looping source does not end"),
                SourceEvent::Lost(why) => {
                    assert!(why.contains("no readable image left"), "{why}");
                    break;
                }
                SourceEvent::Unreadable { error, .. } => events.push(error.reason()),
                SourceEvent::Frame(_) => panic!("no frame expected"),
                SourceEvent::Status { .. } => panic!("files have no camera status"),
                SourceEvent::Still { .. } => panic!("no motion gate here"),
            }
            assert!(events.len() < 10, "spinning: {events:?}");
        }
        assert_eq!(events, vec!["unknown_format", "empty"]);
    }

    #[test]
    fn fps_range() {
        assert_eq!(fps_interval(2.0).unwrap(), Duration::from_millis(500));
        for bad in [0.0, -1.0, 1e-300, f64::NAN, 5000.0] {
            assert!(
                fps_interval(bad)
                    .unwrap_err()
                    .contains("allowed 0.001 ..= 1000"),
                "{bad}"
            );
        }
    }
}
