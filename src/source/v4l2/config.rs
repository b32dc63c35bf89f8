//! `[source]` with `kind = "v4l2"`: which camera, which pixel format and
//! size, how often to classify, and how to ride out a camera that stalls or
//! is unplugged.

use std::time::Duration;

use serde::Deserialize;

/// The pixel format asked of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum FormatChoice {
    /// MJPEG if the camera offers it at the requested size (USB 2 cameras
    /// can only send large frames at a useful rate compressed), else YUYV.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// Motion JPEG (`MJPG`, or `JPEG` as some drivers call it).
    #[serde(rename = "MJPG")]
    Mjpg,
    /// YUV 4:2:2, packed Y0 U Y1 V (`YUYV`).
    #[serde(rename = "YUYV")]
    Yuyv,
}

impl std::fmt::Display for FormatChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FormatChoice::Auto => "auto",
            FormatChoice::Mjpg => "MJPG",
            FormatChoice::Yuyv => "YUYV",
        })
    }
}

/// `[source]` with `kind = "v4l2"`.
///
/// ```toml
/// [source]
/// kind = "v4l2"
/// device = "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0"
/// format = "auto"              # "auto" | "MJPG" | "YUYV"
/// width = 1280
/// height = 720
/// fps = 15                     # the camera's frame rate
/// classify_interval_secs = 1.0 # classify the newest frame once a second
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Config {
    /// The device node: `/dev/video0`, or a stable `/dev/v4l/by-id/...` or
    /// `/dev/v4l/by-path/...` link (recommended: `/dev/videoN` numbers can
    /// change between boots).
    #[serde(default = "default_device")]
    pub device: String,
    /// Pixel format (default `auto`).
    #[serde(default)]
    pub format: FormatChoice,
    /// Requested frame width in pixels (default 640); the camera may offer
    /// only other sizes, then the nearest one is used (logged).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Requested frame height in pixels (default 480).
    #[serde(default = "default_height")]
    pub height: u32,
    /// Frame rate asked of the camera, frames per second; absent = the
    /// driver's default. The driver picks the nearest rate it supports.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Seconds between classified frames (default 1.0): the newest frame is
    /// classified once per interval, the frames in between are not decoded.
    /// 0 = classify every frame the pipeline can keep up with.
    #[serde(default = "default_classify_interval")]
    pub classify_interval_secs: f64,
    /// Frames skipped after each stream start (default 5): cameras often send
    /// black, green or over-exposed frames while their exposure settles.
    #[serde(default = "default_warmup")]
    pub warmup_frames: u32,
    /// Seconds without a frame after which the camera counts as offline and
    /// is closed and reopened (default 5).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Longest wait between reopen attempts while the camera is offline, in
    /// seconds (default 30; the wait doubles from 1 s up to this).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: f64,
    /// Number of mmap buffers the driver fills in turn (default 4, 2..=32).
    #[serde(default = "default_buffers")]
    pub buffers: u32,
}

fn default_device() -> String {
    "/dev/video0".into()
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_classify_interval() -> f64 {
    1.0
}
fn default_warmup() -> u32 {
    5
}
fn default_timeout() -> f64 {
    5.0
}
fn default_reconnect_max() -> f64 {
    30.0
}
fn default_buffers() -> u32 {
    4
}

impl Default for V4l2Config {
    fn default() -> Self {
        V4l2Config {
            device: default_device(),
            format: FormatChoice::Auto,
            width: default_width(),
            height: default_height(),
            fps: None,
            classify_interval_secs: default_classify_interval(),
            warmup_frames: default_warmup(),
            timeout_secs: default_timeout(),
            reconnect_max_secs: default_reconnect_max(),
            buffers: default_buffers(),
        }
    }
}

/// Seconds as a duration, if finite and within `lo..=hi`.
fn secs(v: f64, lo: f64, hi: f64) -> Option<Duration> {
    (v.is_finite() && (lo..=hi).contains(&v))
        .then(|| Duration::try_from_secs_f64(v).ok())
        .flatten()
}

impl V4l2Config {
    /// Checks ranges; returns the field (relative to `[source]`) and a
    /// message naming what is allowed.
    ///
    /// # Errors
    /// `(field, message)` for the first bad setting.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.device.trim().is_empty() {
            return Err((
                "device",
                "is empty; name the camera's device, e.g. \"/dev/video0\" (`camtrapd devices` lists them)".into(),
            ));
        }
        for (field, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=16384).contains(&v) {
                return Err((
                    field,
                    format!("{v} is out of range; allowed 16..=16384 pixels"),
                ));
            }
        }
        if self.format == FormatChoice::Yuyv && self.width % 2 == 1 {
            return Err((
                "width",
                format!(
                    "{} is odd; YUYV carries two pixels per 4 bytes, so the width must be even",
                    self.width
                ),
            ));
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && (0.1..=1000.0).contains(&fps)) {
                return Err(("fps", format!("{fps} is out of range; allowed 0.1 ..= 1000 frames per second, or leave it out for the camera's default")));
            }
        }
        if secs(self.classify_interval_secs, 0.0, 86_400.0).is_none() {
            return Err((
                "classify_interval_secs",
                format!(
                    "{} is out of range; allowed 0 (every frame) ..= 86400 seconds",
                    self.classify_interval_secs
                ),
            ));
        }
        if secs(self.timeout_secs, 0.1, 3600.0).is_none() {
            return Err((
                "timeout_secs",
                format!(
                    "{} is out of range; allowed 0.1 ..= 3600 seconds",
                    self.timeout_secs
                ),
            ));
        }
        if secs(self.reconnect_max_secs, 1.0, 3600.0).is_none() {
            return Err((
                "reconnect_max_secs",
                format!(
                    "{} is out of range; allowed 1 ..= 3600 seconds",
                    self.reconnect_max_secs
                ),
            ));
        }
        if !(2..=32).contains(&self.buffers) {
            return Err((
                "buffers",
                format!("{} is out of range; allowed 2..=32", self.buffers),
            ));
        }
        if self.warmup_frames > 1000 {
            return Err((
                "warmup_frames",
                format!("{} is out of range; allowed 0..=1000", self.warmup_frames),
            ));
        }
        Ok(())
    }

    /// [`V4l2Config::classify_interval_secs`] as a duration (checked by [`V4l2Config::check`]).
    pub fn classify_interval(&self) -> Duration {
        secs(self.classify_interval_secs, 0.0, 86_400.0).unwrap_or(Duration::from_secs(1))
    }

    /// [`V4l2Config::timeout_secs`] as a duration.
    pub fn timeout(&self) -> Duration {
        secs(self.timeout_secs, 0.1, 3600.0).unwrap_or(Duration::from_secs(5))
    }

    /// [`V4l2Config::reconnect_max_secs`] as a duration.
    pub fn reconnect_max(&self) -> Duration {
        secs(self.reconnect_max_secs, 1.0, 3600.0).unwrap_or(Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let c = V4l2Config::default();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.classify_interval(), Duration::from_secs(1));
        let odd = V4l2Config {
            format: FormatChoice::Yuyv,
            width: 641,
            ..V4l2Config::default()
        };
        assert_eq!(odd.check().unwrap_err().0, "width");
        let neg = V4l2Config {
            classify_interval_secs: -1.0,
            ..V4l2Config::default()
        };
        assert_eq!(neg.check().unwrap_err().0, "classify_interval_secs");
        let nan = V4l2Config {
            timeout_secs: f64::NAN,
            ..V4l2Config::default()
        };
        assert_eq!(nan.check().unwrap_err().0, "timeout_secs");
        let every = V4l2Config {
            classify_interval_secs: 0.0,
            ..V4l2Config::default()
        };
        assert_eq!(every.classify_interval(), Duration::ZERO);
    }

    #[test]
    fn format_names_are_the_fourccs() {
        #[derive(Deserialize)]
        struct W {
            format: FormatChoice,
        }
        for (s, f) in [
            ("auto", FormatChoice::Auto),
            ("MJPG", FormatChoice::Mjpg),
            ("YUYV", FormatChoice::Yuyv),
        ] {
            let w: W = toml::from_str(&format!("format = {s:?}")).unwrap();
            assert_eq!(w.format, f);
            assert_eq!(f.to_string(), s);
        }
        assert!(toml::from_str::<W>("format = \"H264\"").is_err());
    }
}
