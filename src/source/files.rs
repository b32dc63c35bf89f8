//! The `files` frame source: a single image, a folder (walked recursively in
//! sorted order), or a glob pattern; optional pacing (frames per second) and
//! looping. Unreadable files are reported as such, never fatal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{FrameSource, SourceError, SourceEvent};
use crate::decode::{decode_file, DecodeLimits};
use crate::frame::Frame;
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
/// under a folder (recursive, sorted), or the matches of a glob (sorted).
///
/// # Errors
/// [`SourceError::NotFound`] when nothing exists there, [`SourceError::NoImages`]
/// when a folder or pattern holds no image file, [`SourceError::BadPattern`].
pub fn list_images(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let s = path.to_string_lossy();
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        for entry in walkdir::WalkDir::new(path)
            .follow_links(true)
            .sort_by_file_name()
        {
            match entry {
                Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
                    files.push(e.into_path())
                }
                Ok(_) => {}
                Err(e) => log::warn!(
                    "skipping {}: {e}",
                    e.path().map_or(s.to_string(), |p| p.display().to_string())
                ),
            }
        }
        if files.is_empty() {
            return Err(SourceError::NoImages(path.to_path_buf()));
        }
    } else if s.contains(['*', '?', '[']) {
        let paths =
            glob::glob(&s).map_err(|e| SourceError::BadPattern(s.to_string(), e.to_string()))?;
        for p in paths.flatten() {
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(SourceError::NoImages(path.to_path_buf()));
        }
    } else {
        return Err(SourceError::NotFound(path.to_path_buf()));
    }
    Ok(files)
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
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
    shutdown: Shutdown,
    description: String,
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
            Some(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => {
                Some(Duration::from_secs_f64(1.0 / f))
            }
            Some(f) => {
                return Err(SourceError::Invalid(format!(
                    "source.fps = {f}: allowed 0 < fps <= 1000, or leave it out"
                )))
            }
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
            shutdown,
            description,
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
            shutdown,
            description,
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

impl FrameSource for FilesSource {
    fn next_event(&mut self) -> SourceEvent {
        if self.next >= self.files.len() {
            if !self.repeat || self.files.is_empty() {
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
        match decode_file(path, &self.limits) {
            Ok(image) => SourceEvent::Frame(Frame {
                seq,
                source_id,
                captured_at,
                image,
                decode_ms: t0.elapsed().as_secs_f64() * 1e3,
            }),
            Err(error) => SourceEvent::Unreadable { source_id, error },
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
