//! Motion gating: run the model only when something in the frame changed.
//!
//! A camera trap looks at an empty scene most of the time; classifying every
//! frame of it costs CPU time and battery for nothing. The [`MotionGate`]
//! sits between the source and the model:
//!
//! 1. the frame is shrunk to a small greyscale image (`width` pixels wide,
//!    default 96): each small pixel is the mean BT.601 luma of its block of
//!    frame pixels (a box filter, so sensor noise averages out), in one pass
//!    over the frame with no allocation after the first frame. The gate
//!    runs before the frame is decoded for the model and reads as little as
//!    it can ([`MotionGate::check_jpeg`], [`MotionGate::check_luma`]): a
//!    JPEG's luma alone, decoded at 1/8 or 1/4 of its size by DCT scaling
//!    (each sample already a block mean; a 640×480 frame costs about a
//!    third of its whole decode), a YUYV frame's Y samples where they lie.
//!    Only a frame it lets through is decoded for the model;
//! 2. it is compared pixel by pixel with a **background model**, a running
//!    average of past frames (`background_rate` per frame), after removing
//!    the mean difference over the unmasked area (a global brightness change —
//!    a cloud, auto-exposure — moves every pixel alike and is not motion);
//! 3. a pixel has **changed** when it differs by more than `threshold` grey
//!    levels (0..255); the frame has **motion** when the changed pixels
//!    cover at least `min_area` of the unmasked area (0..1);
//! 4. **masks** (rectangles or polygons, in 0..1 fractions of the frame's
//!    width and height) are ignored: swaying vegetation, a timestamp burnt
//!    into the image;
//! 5. a **heartbeat**: a frame is classified anyway when none was for
//!    `heartbeat_secs` (capture time), so an animal that stands still is
//!    still seen (and its event kept open).
//!
//! The first frame (and the first after a change of the frame's size, or
//! of how much of it the gate reads: a JPEG's luma at reduced scale, or
//! the whole decoded frame when that is not possible) is always classified. Gated frames are counted (`frames_gated` in the stats).
//!
//! The method is classic background subtraction with a running-average
//! background (see e.g. Piccardi, "Background subtraction techniques: a
//! review", IEEE SMC 2004, section 2); it is deliberately cheap rather than
//! robust to everything: tune `threshold`/`min_area` and masks per site.

use chrono::{DateTime, Utc};
use image::RgbImage;
use serde::Deserialize;

/// `[motion]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Gate the model on motion. Default false (every frame is classified).
    #[serde(default)]
    pub enabled: bool,
    /// Width in pixels of the greyscale image compared (16..=640; the
    /// height keeps the frame's aspect ratio). Default 96.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Grey-level difference (1..=255) from the background at which a pixel
    /// counts as changed. Default 20.
    #[serde(default = "default_threshold")]
    pub threshold: u8,
    /// Fraction (0..1) of the unmasked area that must change for motion.
    /// Default 0.005 (0.5 %: a 96×72 image has 6912 pixels, so 35 of them).
    #[serde(default = "default_min_area")]
    pub min_area: f32,
    /// How fast the background follows the scene, per frame (0..=1; 0.05:
    /// a change is absorbed into the background in about 20–60 frames).
    /// Default 0.05.
    #[serde(default = "default_rate")]
    pub background_rate: f32,
    /// Classify a frame anyway when none was for this many seconds of
    /// capture time (0 = never). Keep it below `[events] end_after_secs`.
    /// Default 10.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: f64,
    /// Areas to ignore, e.g.
    /// `[{ rect = [0.0, 0.0, 1.0, 0.06] }, { polygon = [[0.7, 0.5], [1.0, 0.4], [1.0, 1.0], [0.8, 1.0]] }]`.
    #[serde(default)]
    pub masks: Vec<Mask>,
}

/// An area to ignore, in fractions (0..1) of the frame's width (x) and
/// height (y), origin top left.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// `[x, y, width, height]`.
    #[serde(default)]
    pub rect: Option<[f32; 4]>,
    /// Corner points `[[x, y], ...]`, at least 3 (even-odd rule).
    #[serde(default)]
    pub polygon: Option<Vec<[f32; 2]>>,
}

fn default_width() -> u32 {
    96
}
fn default_threshold() -> u8 {
    20
}
fn default_min_area() -> f32 {
    0.005
}
fn default_rate() -> f32 {
    0.05
}
fn default_heartbeat() -> f64 {
    10.0
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: false,
            width: default_width(),
            threshold: default_threshold(),
            min_area: default_min_area(),
            background_rate: default_rate(),
            heartbeat_secs: default_heartbeat(),
            masks: Vec::new(),
        }
    }
}

impl MotionConfig {
    /// Checks the ranges and masks.
    ///
    /// # Errors
    /// `(field, message)` for the first setting out of range.
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((format!("motion.{f}"), m));
        if !(16..=640).contains(&self.width) {
            return err(
                "width",
                format!("{} is out of range: use 16..=640", self.width),
            );
        }
        if self.threshold == 0 {
            return err("threshold", "0 is out of range: use 1..=255".into());
        }
        if !(self.min_area.is_finite() && self.min_area > 0.0 && self.min_area <= 1.0) {
            return err(
                "min_area",
                format!(
                    "{} is out of range: use a fraction in (0, 1]",
                    self.min_area
                ),
            );
        }
        if !(self.background_rate.is_finite() && (0.0..=1.0).contains(&self.background_rate)) {
            return err(
                "background_rate",
                format!("{} is out of range: use 0..=1", self.background_rate),
            );
        }
        if !(self.heartbeat_secs.is_finite() && (0.0..=86400.0).contains(&self.heartbeat_secs)) {
            return err(
                "heartbeat_secs",
                format!(
                    "{} is out of range: use 0..=86400 (0 = never)",
                    self.heartbeat_secs
                ),
            );
        }
        let frac = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        for (i, m) in self.masks.iter().enumerate() {
            let f = format!("masks[{i}]");
            match (&m.rect, &m.polygon) {
                (Some(r), None) => {
                    if !r.iter().all(|v| frac(*v)) {
                        return err(
                            &f,
                            format!("rect {r:?}: x, y, width and height are fractions 0..1 of the frame"),
                        );
                    }
                }
                (None, Some(p)) => {
                    if p.len() < 3 || !p.iter().flatten().all(|v| frac(*v)) {
                        return err(
                            &f,
                            "polygon: at least 3 points [x, y], each a fraction 0..1 of the frame"
                                .into(),
                        );
                    }
                }
                _ => {
                    return err(
                        &f,
                        "give exactly one of rect = [x, y, w, h] or polygon = [[x, y], ...]".into(),
                    )
                }
            }
        }
        Ok(())
    }
}

impl Mask {
    /// Whether the point (x, y), in 0..1 fractions, is inside the mask.
    fn contains(&self, x: f32, y: f32) -> bool {
        if let Some([rx, ry, rw, rh]) = self.rect {
            return x >= rx && x < rx + rw && y >= ry && y < ry + rh;
        }
        let Some(p) = &self.polygon else {
            return false;
        };
        // Even-odd rule (ray casting to +x).
        let mut inside = false;
        let mut j = p.len() - 1;
        for i in 0..p.len() {
            let ([xi, yi], [xj, yj]) = (p[i], p[j]);
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

/// What the gate decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// Classify: the changed fraction of the unmasked area reached `min_area`
    /// (1.0 for the first frame or after a size change).
    Motion(f32),
    /// Classify: no motion, but the heartbeat is due.
    Heartbeat(f32),
    /// Skip: no motion (the changed fraction is given).
    Still(f32),
}

impl Gate {
    /// Whether the frame goes to the model.
    pub fn classify(self) -> bool {
        !matches!(self, Gate::Still(_))
    }

    /// The changed fraction of the unmasked area, 0..1.
    pub fn changed(self) -> f32 {
        match self {
            Gate::Motion(c) | Gate::Heartbeat(c) | Gate::Still(c) => c,
        }
    }
}

/// A greyscale view of a frame for [`MotionGate::check_luma`]: luma samples
/// read in place, with no RGB conversion (the gate only looks at
/// brightness).
#[derive(Debug, Clone, Copy)]
pub struct Luma<'a> {
    /// The samples, row after row.
    pub data: &'a [u8],
    /// Samples per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from the start of one row to the next.
    pub stride: usize,
    /// Bytes from one sample to the next within a row: 1 for a greyscale
    /// plane (a JPEG's Y decoded alone), 2 for the Y samples of YUYV 4:2:2.
    pub step: usize,
    /// Samples in studio range (Y 16..235, as a YUYV camera sends them):
    /// stretched to 0..255 so that `threshold` means the same grey levels
    /// as on an RGB frame. `false` for full range (JFIF JPEG luma).
    pub limited_range: bool,
}

impl Luma<'_> {
    /// Whether `data` holds `height` rows of `width` samples at this stride
    /// and step.
    fn fits(&self) -> bool {
        if self.width == 0 || self.height == 0 || self.step == 0 {
            return false;
        }
        let row = (self.width as usize - 1)
            .checked_mul(self.step)
            .and_then(|n| n.checked_add(1));
        let need = (self.height as usize - 1)
            .checked_mul(self.stride)
            .and_then(|n| n.checked_add(row?));
        need.is_some_and(|n| n <= self.data.len())
    }
}

/// The motion detector (see the module docs). Buffers are allocated for
/// the first frame and reused while the frame size stays the same.
pub struct MotionGate {
    cfg: MotionConfig,
    /// Frame size the buffers are for.
    frame: (u32, u32),
    /// Small image size, from the frame size.
    small: (u32, u32),
    /// Input size the column map and block areas are for (the frame, or a
    /// shrunken decode of it).
    input: (u32, u32),
    /// Small-image column of each input column.
    col: Vec<u32>,
    /// Input pixels per small pixel.
    area: Vec<f32>,
    grey: Vec<f32>,
    background: Vec<f32>,
    /// 1 for pixels that count, 0 for masked ones.
    keep: Vec<bool>,
    kept: usize,
    last_classified: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for MotionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotionGate")
            .field("small", &self.small)
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl MotionGate {
    /// A gate with the given settings (checked with [`MotionConfig::check`]).
    pub fn new(cfg: &MotionConfig) -> MotionGate {
        MotionGate {
            cfg: cfg.clone(),
            frame: (0, 0),
            small: (0, 0),
            input: (0, 0),
            col: Vec::new(),
            area: Vec::new(),
            grey: Vec::new(),
            background: Vec::new(),
            keep: Vec::new(),
            kept: 0,
            last_classified: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &MotionConfig {
        &self.cfg
    }

    /// The size in pixels of the small greyscale image compared for a
    /// `width × height` frame: `width` of the settings (at most the frame's),
    /// and the frame's aspect ratio. A decode for the gate needs at least
    /// this many pixels per axis ([`MotionGate::check_luma`]).
    pub fn small_size(&self, width: u32, height: u32) -> (u32, u32) {
        let sw = self.cfg.width.min(width).max(1);
        let sh = (f64::from(height) * f64::from(sw) / f64::from(width.max(1))).round() as u32;
        (sw, sh.max(1))
    }

    /// Prepares the buffers for a `frame` of that size read from an `input`
    /// of that size (the frame, or a shrunken decode of it). A new size of
    /// either restarts the background: the camera's mode changed, or blocks of a shrunken decode fall on
    /// other block boundaries than the frame's pixels (a 4-pixel sample of
    /// a 1/4 decode goes whole to one small pixel), and on a detailed scene
    /// the two small images differ by more than `threshold` along edges.
    fn prepare(&mut self, frame: (u32, u32), input: (u32, u32)) {
        let small = self.small_size(frame.0, frame.1);
        if frame != self.frame || input != self.input {
            self.frame = frame;
            self.small = small;
            let (sw, sh) = small;
            let n = sw as usize * sh as usize;
            self.grey = vec![0.0; n];
            self.background.clear();
            self.keep = (0..n)
                .map(|i| {
                    let x = ((i % sw as usize) as f32 + 0.5) / sw as f32;
                    let y = ((i / sw as usize) as f32 + 0.5) / sh as f32;
                    !self.cfg.masks.iter().any(|m| m.contains(x, y))
                })
                .collect();
            self.kept = self.keep.iter().filter(|k| **k).count();
            let (w, h) = input;
            let (sw, sh) = self.small;
            self.input = input;
            self.col = (0..w)
                .map(|x| (u64::from(x) * u64::from(sw) / u64::from(w)) as u32)
                .collect();
            self.area = vec![0.0; sw as usize * sh as usize];
            for y in 0..h {
                let sy = (u64::from(y) * u64::from(sh) / u64::from(h)) as usize;
                for &sx in &self.col {
                    self.area[sy * sw as usize + sx as usize] += 1.0;
                }
            }
        }
    }

    /// Shrinks the input into the greyscale buffer: the mean luma of each
    /// block, `luma` giving each input row's samples (left to right) as
    /// 0..255 values.
    fn shrink<I: Iterator<Item = f32>>(&mut self, row: impl Fn(usize) -> I) {
        let (w, h) = self.input;
        let (sw, sh) = (self.small.0 as usize, u64::from(self.small.1));
        self.grey.fill(0.0);
        for y in 0..h as usize {
            let sy = (y as u64 * sh / u64::from(h)) as usize;
            let acc = &mut self.grey[sy * sw..(sy + 1) * sw];
            for (v, &sx) in row(y).zip(&self.col[..w as usize]) {
                acc[sx as usize] += v;
            }
        }
        for (g, a) in self.grey.iter_mut().zip(&self.area) {
            *g /= a.max(1.0);
        }
    }

    /// Decides whether the frame `image`, captured at `now`, goes to the
    /// model, and updates the background. The luma of each pixel is BT.601's
    /// (0.299 R + 0.587 G + 0.114 B). Never fails: a frame it cannot read
    /// (0 pixels) is passed to the model.
    pub fn check(&mut self, image: &RgbImage, now: DateTime<Utc>) -> Gate {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return self.classified(Gate::Motion(1.0), now);
        }
        self.prepare((w, h), (w, h));
        let raw = image.as_raw();
        let stride = w as usize * 3;
        self.shrink(|y| {
            raw[y * stride..(y + 1) * stride].chunks_exact(3).map(|p| {
                0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
            })
        });
        self.compare(now)
    }

    /// As [`MotionGate::check`], from the luma samples of a frame of
    /// `frame_width × frame_height` pixels, which `luma` may show shrunk
    /// (e.g. a JPEG decoded at 1/8 of its size by DCT scaling, where each
    /// sample is the mean of an 8×8 block): the same small image and
    /// background as for the full RGB frame, as long as `luma` has at least
    /// [`MotionGate::small_size`] pixels per axis. A smaller or inconsistent
    /// `luma` is passed to the model, as a frame the gate cannot read.
    pub fn check_luma(
        &mut self,
        luma: &Luma<'_>,
        frame_width: u32,
        frame_height: u32,
        now: DateTime<Utc>,
    ) -> Gate {
        let (sw, sh) = self.small_size(frame_width, frame_height);
        if frame_width == 0
            || frame_height == 0
            || !luma.fits()
            || luma.width < sw
            || luma.height < sh
        {
            return self.classified(Gate::Motion(1.0), now);
        }
        self.prepare((frame_width, frame_height), (luma.width, luma.height));
        let (data, stride, step, w) = (luma.data, luma.stride, luma.step, luma.width as usize);
        self.shrink(|y| {
            data[y * stride..]
                .iter()
                .step_by(step)
                .take(w)
                .map(|&v| f32::from(v))
        });
        if luma.limited_range {
            // Y' 16..235 → 0..255 (BT.601 studio range), as the RGB
            // conversion of the same frame would give.
            for g in &mut self.grey {
                *g = ((*g - 16.0) * (255.0 / 219.0)).clamp(0.0, 255.0);
            }
        }
        self.compare(now)
    }

    /// Gates a JPEG frame on its luma alone: decoded into `buf` at the
    /// smallest DCT scale that still gives [`MotionGate::small_size`]
    /// pixels (1/8 of a camera-trap still, 1/4 of a 640×480 frame; the
    /// chroma is not transformed or converted), far cheaper than the RGB
    /// frame [`MotionGate::check`] needs. Returns `None`, deciding nothing,
    /// when the bytes cannot be read that way (not a JPEG, damaged,
    /// truncated, over `limits`, EXIF-rotated, CMYK): decode the frame and
    /// call [`MotionGate::check`], which reports and handles the rest.
    pub fn check_jpeg(
        &mut self,
        bytes: &[u8],
        limits: &crate::decode::DecodeLimits,
        buf: &mut Vec<u8>,
        now: DateTime<Utc>,
    ) -> Option<Gate> {
        let size = crate::decode::decode_luma(bytes, limits, &|w, h| self.small_size(w, h), buf)?;
        let luma = Luma {
            data: buf,
            width: size.width,
            height: size.height,
            stride: size.width as usize,
            step: 1,
            limited_range: false,
        };
        Some(self.check_luma(&luma, size.full_width, size.full_height, now))
    }

    /// Compares the greyscale buffer with the background, then updates it.
    fn compare(&mut self, now: DateTime<Utc>) -> Gate {
        if self.background.is_empty() {
            self.background.extend_from_slice(&self.grey);
            return self.classified(Gate::Motion(1.0), now);
        }
        if self.kept == 0 {
            // Everything masked: only the heartbeat classifies.
            return self.still_or_heartbeat(0.0, now);
        }
        let mut sum = 0.0f32;
        for ((g, b), k) in self.grey.iter().zip(&self.background).zip(&self.keep) {
            if *k {
                sum += g - b;
            }
        }
        let shift = sum / self.kept as f32;
        let t = f32::from(self.cfg.threshold);
        let mut changed = 0usize;
        for ((g, b), k) in self.grey.iter().zip(&self.background).zip(&self.keep) {
            if *k && (g - b - shift).abs() > t {
                changed += 1;
            }
        }
        let rate = self.cfg.background_rate;
        for (b, g) in self.background.iter_mut().zip(&self.grey) {
            *b += rate * (g - *b);
        }
        let frac = changed as f32 / self.kept as f32;
        if frac >= self.cfg.min_area {
            self.classified(Gate::Motion(frac), now)
        } else {
            self.still_or_heartbeat(frac, now)
        }
    }

    fn still_or_heartbeat(&mut self, frac: f32, now: DateTime<Utc>) -> Gate {
        let hb = self.cfg.heartbeat_secs;
        let due = hb > 0.0
            && self.last_classified.is_none_or(|t| {
                (now - t).num_microseconds().unwrap_or(i64::MAX) as f64 >= hb * 1e6
            });
        if due {
            self.classified(Gate::Heartbeat(frac), now)
        } else {
            Gate::Still(frac)
        }
    }

    fn classified(&mut self, g: Gate, now: DateTime<Utc>) -> Gate {
        self.last_classified = Some(now);
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
    }

    fn flat(v: u8) -> RgbImage {
        RgbImage::from_pixel(320, 240, image::Rgb([v, v, v]))
    }

    /// A grey frame with a white square of `side` px at (x, y).
    fn with_square(bg: u8, x: u32, y: u32, side: u32) -> RgbImage {
        let mut img = flat(bg);
        for j in y..y + side {
            for i in x..x + side {
                img.put_pixel(i, j, image::Rgb([255, 255, 255]));
            }
        }
        img
    }

    fn gate(masks: Vec<Mask>) -> MotionGate {
        MotionGate::new(&MotionConfig {
            enabled: true,
            heartbeat_secs: 10.0,
            masks,
            ..MotionConfig::default()
        })
    }

    #[test]
    fn first_frame_classifies_static_frames_do_not_a_moving_square_does() {
        let mut g = gate(Vec::new());
        assert_eq!(g.check(&flat(100), at(0)), Gate::Motion(1.0));
        assert_eq!(g.check(&flat(100), at(1000)), Gate::Still(0.0));
        // A 40×40 square on a 320×240 frame: 2.1 % of the area.
        let gate_square = g.check(&with_square(100, 100, 100, 40), at(2000));
        assert!(gate_square.classify(), "{gate_square:?}");
        let c = gate_square.changed();
        assert!((0.015..0.03).contains(&c), "changed {c}");
    }

    #[test]
    fn slow_and_global_light_changes_are_not_motion() {
        let mut g = gate(Vec::new());
        g.check(&flat(100), at(0));
        // Dawn: +1 grey level a frame, then a sudden +40 (a cloud moves away).
        for i in 1..=50u8 {
            let r = g.check(&flat(100 + i), at(i64::from(i) * 100));
            assert!(!r.classify(), "frame {i}: {r:?}");
        }
        let r = g.check(&flat(190), at(5100));
        assert_eq!(r, Gate::Still(0.0));
    }

    #[test]
    fn the_heartbeat_classifies_a_still_scene_every_n_seconds() {
        let mut g = gate(Vec::new());
        let mut classified = Vec::new();
        for s in 0..=35 {
            if g.check(&flat(80), at(s * 1000)).classify() {
                classified.push(s);
            }
        }
        assert_eq!(classified, vec![0, 10, 20, 30]);
    }

    #[test]
    fn masked_areas_are_ignored() {
        // A timestamp strip at the top (rect) and a bush at the bottom right (polygon).
        let masks = vec![
            Mask {
                rect: Some([0.0, 0.0, 1.0, 0.1]),
                polygon: None,
            },
            Mask {
                rect: None,
                polygon: Some(vec![[0.6, 0.6], [1.0, 0.6], [1.0, 1.0], [0.6, 1.0]]),
            },
        ];
        let mut g = gate(masks);
        g.check(&flat(100), at(0));
        // Changes only inside the masks: top strip (y < 24) and bottom right.
        let r = g.check(&with_square(100, 10, 2, 20), at(1000));
        assert_eq!(r, Gate::Still(0.0));
        let r = g.check(&with_square(100, 260, 180, 50), at(2000));
        assert_eq!(r, Gate::Still(0.0));
        // The same square outside the masks is motion.
        let r = g.check(&with_square(100, 100, 100, 40), at(3000));
        assert!(matches!(r, Gate::Motion(_)), "{r:?}");
    }

    #[test]
    fn a_new_frame_size_restarts_the_background() {
        let mut g = gate(Vec::new());
        g.check(&flat(100), at(0));
        let other = RgbImage::from_pixel(64, 64, image::Rgb([100, 100, 100]));
        assert_eq!(g.check(&other, at(1000)), Gate::Motion(1.0));
        assert_eq!(g.check(&other, at(2000)), Gate::Still(0.0));
        // Also when the luma read is the same size: 640×480 at 1/4 and
        // 1280×960 at 1/8 both give 160×120.
        let plane = vec![100u8; 160 * 120];
        let l = luma(&plane, 160, 120);
        assert_eq!(g.check_luma(&l, 640, 480, at(3000)), Gate::Motion(1.0));
        assert_eq!(g.check_luma(&l, 640, 480, at(4000)), Gate::Still(0.0));
        assert_eq!(g.check_luma(&l, 1280, 960, at(5000)), Gate::Motion(1.0));
    }

    /// The luma plane of a grey RGB frame (R = G = B).
    fn plane(img: &RgbImage) -> Vec<u8> {
        img.pixels().map(|p| p.0[0]).collect()
    }

    /// A packed greyscale plane of `w × h` samples.
    fn luma(data: &[u8], w: u32, h: u32) -> Luma<'_> {
        Luma {
            data,
            width: w,
            height: h,
            stride: w as usize,
            step: 1,
            limited_range: false,
        }
    }

    /// `plane` (w × h) shrunk by 2 per axis, each sample the block's mean:
    /// what a JPEG decoded at 1/2 gives (the scale `decode_luma` picks for a
    /// 320×240 frame and the 96×72 compared image).
    fn half(p: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for by in 0..h / 2 {
            for bx in 0..w / 2 {
                let mut s = 0u32;
                for y in 0..2 {
                    for x in 0..2 {
                        s += u32::from(p[(by * 2 + y) * w + bx * 2 + x]);
                    }
                }
                out.push(((s + 2) / 4) as u8);
            }
        }
        out
    }

    #[test]
    fn luma_at_full_or_reduced_scale_decides_as_the_rgb_frame() {
        let frames = [
            flat(100),
            flat(100),
            with_square(100, 100, 100, 40),
            flat(130),
            with_square(100, 100, 100, 40),
        ];
        let (mut rgb, mut full, mut small) = (gate(Vec::new()), gate(Vec::new()), gate(Vec::new()));
        for (i, f) in frames.iter().enumerate() {
            let now = at(i as i64 * 1000);
            let a = rgb.check(f, now);
            let p = plane(f);
            let b = full.check_luma(&luma(&p, 320, 240), 320, 240, now);
            let q = half(&p, 320, 240);
            let c = small.check_luma(&luma(&q, 160, 120), 320, 240, now);
            assert_eq!(a, b, "frame {i}");
            assert_eq!(a.classify(), c.classify(), "frame {i}: {a:?} {c:?}");
            assert!(
                (a.changed() - c.changed()).abs() < 0.005,
                "frame {i}: {a:?} {c:?}"
            );
        }
        // Switching between the shrunken luma and the whole frame restarts
        // the background (their blocks do not line up): classified.
        assert_eq!(small.check(&flat(100), at(9000)), Gate::Motion(1.0));
        assert_eq!(small.check(&flat(100), at(9100)), Gate::Still(0.0));
        // Too few samples for the 96×72 compared image: passed to the model.
        let tiny = vec![100u8; 80 * 60];
        let r = small.check_luma(&luma(&tiny, 80, 60), 320, 240, at(9500));
        assert_eq!(r, Gate::Motion(1.0));
        // A buffer shorter than it claims: passed to the model, no panic.
        let r = small.check_luma(&luma(&tiny, 320, 240), 320, 240, at(9600));
        assert_eq!(r, Gate::Motion(1.0));
    }

    #[test]
    fn yuyv_luma_in_studio_range_reads_as_full_range_grey() {
        // Grey v in studio range: Y = 16 + 219 v / 255 (U = V = 128).
        let yuyv = |img: &RgbImage| -> Vec<u8> {
            img.pixels()
                .flat_map(|p| {
                    let y = (16.0 + 219.0 * f32::from(p.0[0]) / 255.0).round() as u8;
                    [y, 128]
                })
                .collect()
        };
        // A square 22 grey levels brighter: over the threshold of 20 on the
        // RGB frame, but only 19 apart in studio range.
        let mut square = flat(100);
        for y in 100..140 {
            for x in 100..140 {
                square.put_pixel(x, y, image::Rgb([122, 122, 122]));
            }
        }
        let frames = [flat(100), flat(100), square];
        for limited_range in [true, false] {
            let (mut rgb, mut yg) = (gate(Vec::new()), gate(Vec::new()));
            let mut decisions = Vec::new();
            for (i, f) in frames.iter().enumerate() {
                let now = at(i as i64 * 1000);
                let data = yuyv(f);
                let l = Luma {
                    data: &data,
                    width: 320,
                    height: 240,
                    stride: 640,
                    step: 2,
                    limited_range,
                };
                let a = rgb.check(f, now);
                let b = yg.check_luma(&l, 320, 240, now);
                if limited_range {
                    assert_eq!(a.classify(), b.classify(), "frame {i}: {a:?} {b:?}");
                    assert!(
                        (a.changed() - b.changed()).abs() < 1e-3,
                        "frame {i}: {a:?} {b:?}"
                    );
                }
                decisions.push(b.classify());
            }
            // Without the stretch the square goes unseen.
            assert_eq!(
                decisions,
                [true, false, limited_range],
                "limited_range {limited_range}"
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(MotionConfig::default().check().is_ok());
        let bad = MotionConfig {
            masks: vec![Mask {
                rect: Some([0.0, 0.0, 1.5, 0.1]),
                polygon: None,
            }],
            ..MotionConfig::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "motion.masks[0]");
        let bad = MotionConfig {
            min_area: 0.0,
            ..MotionConfig::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "motion.min_area");
    }
}
