//! Format negotiation: what a camera offers (pixel formats, frame sizes,
//! frame intervals, enumerated with `VIDIOC_ENUM_FMT`,
//! `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`), which of it to
//! ask for given the config, and what the driver actually set
//! (`VIDIOC_S_FMT` may adjust the request: the returned format is the truth).

use std::fmt;

use v4l::video::Capture;

use super::config::{FormatChoice, V4l2Config};

/// A frame interval (seconds per frame) as a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Numerator, seconds.
    pub num: u32,
    /// Denominator.
    pub den: u32,
}

impl Interval {
    /// Frames per second (0 for a zero interval).
    pub fn fps(&self) -> f64 {
        if self.num == 0 {
            0.0
        } else {
            f64::from(self.den) / f64::from(self.num)
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        };
        write!(f, "{secs:.3}s ({:.3} fps)", self.fps())
    }
}

/// Frame intervals offered at one size.
#[derive(Debug, Clone, PartialEq)]
pub enum Intervals {
    /// A list.
    Discrete(Vec<Interval>),
    /// A range (`min` = fastest).
    Stepwise {
        /// Shortest interval.
        min: Interval,
        /// Longest interval.
        max: Interval,
    },
    /// The driver does not enumerate intervals.
    Unknown,
}

/// Frame sizes offered for one pixel format.
#[derive(Debug, Clone, PartialEq)]
pub enum Sizes {
    /// A list of sizes (UVC webcams), each with its intervals.
    Discrete(Vec<(u32, u32, Intervals)>),
    /// Any size in a range on a step grid (CSI bridges, vivid's non-webcam inputs).
    Stepwise {
        /// Smallest (width, height).
        min: (u32, u32),
        /// Largest (width, height).
        max: (u32, u32),
        /// Step (width, height).
        step: (u32, u32),
    },
    /// The driver does not enumerate sizes.
    Unknown,
}

/// One pixel format a camera offers, with its sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatModes {
    /// FourCC, e.g. `MJPG`, `YUYV`.
    pub fourcc: [u8; 4],
    /// The driver's description, e.g. "Motion-JPEG".
    pub description: String,
    /// Sizes and intervals.
    pub sizes: Sizes,
}

/// A FourCC as text (`MJPG`; unprintable bytes as `?`).
pub fn fourcc_str(f: &[u8; 4]) -> String {
    f.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The pixel formats camtrapd decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixel {
    /// Motion JPEG (`MJPG` or `JPEG`).
    Mjpeg,
    /// Packed YUV 4:2:2 (`YUYV`).
    Yuyv,
}

impl Pixel {
    /// The pixel format of a FourCC, if camtrapd decodes it.
    pub fn from_fourcc(f: &[u8; 4]) -> Option<Pixel> {
        match f {
            b"MJPG" | b"JPEG" => Some(Pixel::Mjpeg),
            b"YUYV" => Some(Pixel::Yuyv),
            _ => None,
        }
    }
}

impl FormatModes {
    /// Whether the format offers exactly `w`×`h`.
    pub fn offers(&self, w: u32, h: u32) -> bool {
        match &self.sizes {
            Sizes::Discrete(v) => v.iter().any(|(a, b, _)| (*a, *b) == (w, h)),
            Sizes::Stepwise { min, max, step } => {
                let on = |v: u32, lo: u32, hi: u32, st: u32| {
                    (lo..=hi).contains(&v) && (st == 0 || (v - lo).is_multiple_of(st))
                };
                on(w, min.0, max.0, step.0) && on(h, min.1, max.1, step.1)
            }
            // Nothing enumerated: let the driver decide (S_FMT adjusts).
            Sizes::Unknown => true,
        }
    }

    /// The offered size nearest to `w`×`h` (by pixel count, then by aspect),
    /// for YUYV only sizes with an even width.
    pub fn nearest(&self, w: u32, h: u32) -> Option<(u32, u32)> {
        let even = Pixel::from_fourcc(&self.fourcc) == Some(Pixel::Yuyv);
        let cands: Vec<(u32, u32)> = match &self.sizes {
            Sizes::Discrete(v) => v.iter().map(|(a, b, _)| (*a, *b)).collect(),
            Sizes::Stepwise { min, max, step } => {
                let clamp = |v: u32, lo: u32, hi: u32, st: u32| {
                    let v = v.clamp(lo, hi);
                    if st <= 1 {
                        v
                    } else {
                        (lo + (v - lo) / st * st).min(hi)
                    }
                };
                vec![(
                    clamp(w, min.0, max.0, step.0),
                    clamp(h, min.1, max.1, step.1),
                )]
            }
            Sizes::Unknown => vec![(w, h)],
        };
        let area = |(a, b): (u32, u32)| f64::from(a) * f64::from(b);
        let want = area((w, h));
        cands
            .into_iter()
            .filter(|(a, b)| *a > 0 && *b > 0 && (!even || a % 2 == 0))
            .min_by(|x, y| {
                let dx = (area(*x).ln() - want.ln()).abs();
                let dy = (area(*y).ln() - want.ln()).abs();
                dx.total_cmp(&dy)
            })
    }
}

/// What to ask the driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// FourCC.
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Picks the format and size to request: the configured format (for `auto`:
/// MJPEG, then YUYV) at exactly the configured size if offered; else the
/// nearest offered size of those formats (MJPEG first on a tie).
///
/// # Errors
/// A message listing what the camera offers when none of its formats is one
/// camtrapd decodes (or the one configured).
pub fn choose(
    cfg: &V4l2Config,
    offered: &[FormatModes],
) -> Result<(Request, Option<String>), String> {
    let wanted: &[&[u8; 4]] = match cfg.format {
        FormatChoice::Auto => &[b"MJPG", b"JPEG", b"YUYV"],
        FormatChoice::Mjpg => &[b"MJPG", b"JPEG"],
        FormatChoice::Yuyv => &[b"YUYV"],
    };
    let (w, h) = (cfg.width, cfg.height);
    let candidates: Vec<&FormatModes> = wanted
        .iter()
        .flat_map(|f| offered.iter().filter(move |m| &m.fourcc == *f))
        .collect();
    for m in &candidates {
        if m.offers(w, h) && !(Pixel::from_fourcc(&m.fourcc) == Some(Pixel::Yuyv) && w % 2 == 1) {
            return Ok((
                Request {
                    fourcc: m.fourcc,
                    width: w,
                    height: h,
                },
                None,
            ));
        }
    }
    let mut best: Option<(f64, Request)> = None;
    for m in &candidates {
        if let Some((a, b)) = m.nearest(w, h) {
            let d = ((f64::from(a) * f64::from(b)).ln() - (f64::from(w) * f64::from(h)).ln()).abs();
            if best.as_ref().is_none_or(|(bd, _)| d < *bd - 1e-9) {
                best = Some((
                    d,
                    Request {
                        fourcc: m.fourcc,
                        width: a,
                        height: b,
                    },
                ));
            }
        }
    }
    match best {
        Some((_, r)) => Ok((
            r,
            Some(format!(
                "the camera does not offer {w}x{h} in {}; using {}x{} {}",
                cfg.format,
                r.width,
                r.height,
                fourcc_str(&r.fourcc)
            )),
        )),
        None => Err(format!(
            "the camera offers no format that fits format = \"{}\" (camtrapd decodes MJPG and YUYV); it offers:\n{}",
            cfg.format,
            list(offered)
        )),
    }
}

/// The camera's formats, sizes and intervals as `camtrapd devices` prints
/// them (one format per line, sizes indented below), like
/// `v4l2-ctl --list-formats-ext`.
pub fn list(offered: &[FormatModes]) -> String {
    let mut s = String::new();
    if offered.is_empty() {
        s.push_str("  (no capture formats)\n");
    }
    for m in offered {
        let usable = match Pixel::from_fourcc(&m.fourcc) {
            Some(_) => "",
            None => "  (not decoded by camtrapd)",
        };
        s.push_str(&format!(
            "  '{}' ({}){usable}\n",
            fourcc_str(&m.fourcc),
            m.description
        ));
        match &m.sizes {
            Sizes::Discrete(v) => {
                for (w, h, iv) in v {
                    s.push_str(&format!("      Size: Discrete {w}x{h}"));
                    match iv {
                        Intervals::Discrete(list) => {
                            let fps: Vec<String> =
                                list.iter().map(|i| format!("{:.3}", i.fps())).collect();
                            s.push_str(&format!("  fps: {}\n", fps.join(", ")));
                        }
                        Intervals::Stepwise { min, max } => {
                            s.push_str(&format!("  fps: {:.3} - {:.3}\n", max.fps(), min.fps()))
                        }
                        Intervals::Unknown => s.push('\n'),
                    }
                }
            }
            Sizes::Stepwise { min, max, step } => s.push_str(&format!(
                "      Size: Stepwise {}x{} - {}x{} with step {}/{}\n",
                min.0, min.1, max.0, max.1, step.0, step.1
            )),
            Sizes::Unknown => s.push_str("      Size: (not enumerated)\n"),
        }
    }
    s
}

fn interval(f: v4l::Fraction) -> Interval {
    Interval {
        num: f.numerator,
        den: f.denominator,
    }
}

/// Enumerates the capture formats of an open device, with sizes and intervals.
///
/// # Errors
/// The ioctl's error (e.g. ENODEV when the camera is gone).
pub fn enumerate(dev: &v4l::Device) -> std::io::Result<Vec<FormatModes>> {
    let mut out = Vec::new();
    for d in dev.enum_formats()? {
        let sizes = match dev.enum_framesizes(d.fourcc) {
            Ok(list) if !list.is_empty() => {
                let mut discrete = Vec::new();
                let mut stepwise = None;
                for fs in list {
                    match fs.size {
                        v4l::framesize::FrameSizeEnum::Discrete(s) => {
                            let iv = match dev.enum_frameintervals(d.fourcc, s.width, s.height) {
                                Ok(ivs) if !ivs.is_empty() => {
                                    let mut list = Vec::new();
                                    let mut step = None;
                                    for i in ivs {
                                        match i.interval {
                                            v4l::frameinterval::FrameIntervalEnum::Discrete(f) => {
                                                list.push(interval(f))
                                            }
                                            v4l::frameinterval::FrameIntervalEnum::Stepwise(sw) => {
                                                step = Some(Intervals::Stepwise {
                                                    min: interval(sw.min),
                                                    max: interval(sw.max),
                                                })
                                            }
                                        }
                                    }
                                    step.unwrap_or(Intervals::Discrete(list))
                                }
                                _ => Intervals::Unknown,
                            };
                            discrete.push((s.width, s.height, iv));
                        }
                        v4l::framesize::FrameSizeEnum::Stepwise(s) => {
                            stepwise = Some(Sizes::Stepwise {
                                min: (s.min_width, s.min_height),
                                max: (s.max_width, s.max_height),
                                step: (s.step_width, s.step_height),
                            })
                        }
                    }
                }
                stepwise.unwrap_or(Sizes::Discrete(discrete))
            }
            _ => Sizes::Unknown,
        };
        out.push(FormatModes {
            fourcc: d.fourcc.repr,
            description: d.description,
            sizes,
        });
    }
    Ok(out)
}

/// What the driver set: the format frames arrive in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Negotiated {
    /// The pixel format.
    pub pixel: Pixel,
    /// FourCC as returned.
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per line (YUYV); 0 for compressed formats.
    pub stride: u32,
    /// The frame interval the driver reports, if it reports one.
    pub interval: Option<Interval>,
}

impl fmt::Display for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{}",
            fourcc_str(&self.fourcc),
            self.width,
            self.height
        )?;
        if let Some(i) = self.interval {
            write!(f, " at {:.3} fps", i.fps())?;
        }
        Ok(())
    }
}

/// Sets `req` (and `fps`, if given) on the device and reads back what the
/// driver chose. The driver may change the size or even the format: its
/// answer is used, and refused only if camtrapd cannot decode it.
///
/// # Errors
/// A message for an ioctl failure or a returned format camtrapd cannot decode.
pub fn apply(dev: &v4l::Device, req: Request, fps: Option<f64>) -> Result<Negotiated, String> {
    // v4l converts the driver's colorspace fields with `expect`: an unknown
    // value from a newer kernel must not take the daemon down.
    let set = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dev.set_format(&v4l::Format::new(
            req.width,
            req.height,
            v4l::FourCC::new(&req.fourcc),
        ))
    }));
    let got = match set {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            return Err(format!(
                "setting {} {}x{} failed: {e}",
                fourcc_str(&req.fourcc),
                req.width,
                req.height
            ))
        }
        Err(_) => return Err("the driver returned a format the v4l crate cannot read".into()),
    };
    let fourcc = got.fourcc.repr;
    let Some(pixel) = Pixel::from_fourcc(&fourcc) else {
        return Err(format!(
            "asked for {} but the driver set {}, which camtrapd does not decode",
            fourcc_str(&req.fourcc),
            fourcc_str(&fourcc)
        ));
    };
    if pixel == Pixel::Yuyv && got.width % 2 == 1 {
        return Err(format!(
            "the driver set YUYV with an odd width {}",
            got.width
        ));
    }
    let stride = match pixel {
        Pixel::Yuyv if got.stride >= got.width * 2 => got.stride,
        Pixel::Yuyv => got.width * 2,
        Pixel::Mjpeg => 0,
    };
    if let Some(fps) = fps {
        let params = v4l::video::capture::Parameters::new(v4l::Fraction::new(
            1000,
            (fps * 1000.0).round() as u32,
        ));
        if let Err(e) = dev.set_params(&params) {
            log::warn!("the camera refused {fps} fps (VIDIOC_S_PARM: {e}); using its default rate");
        }
    }
    let interval = dev
        .params()
        .ok()
        .map(|p| interval(p.interval))
        .filter(|i| i.num > 0 && i.den > 0);
    Ok(Negotiated {
        pixel,
        fourcc,
        width: got.width,
        height: got.height,
        stride,
        interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(fps: u32) -> Interval {
        Interval { num: 1, den: fps }
    }

    /// A typical USB 2 webcam: MJPEG up to 1920x1080, YUYV only small.
    fn webcam() -> Vec<FormatModes> {
        vec![
            FormatModes {
                fourcc: *b"YUYV",
                description: "YUYV 4:2:2".into(),
                sizes: Sizes::Discrete(vec![
                    (640, 480, Intervals::Discrete(vec![iv(30), iv(15)])),
                    (1280, 720, Intervals::Discrete(vec![iv(10)])),
                ]),
            },
            FormatModes {
                fourcc: *b"MJPG",
                description: "Motion-JPEG".into(),
                sizes: Sizes::Discrete(vec![
                    (640, 480, Intervals::Discrete(vec![iv(30)])),
                    (1280, 720, Intervals::Discrete(vec![iv(30)])),
                    (1920, 1080, Intervals::Discrete(vec![iv(30)])),
                ]),
            },
        ]
    }

    fn cfg(format: FormatChoice, width: u32, height: u32) -> V4l2Config {
        V4l2Config {
            format,
            width,
            height,
            ..V4l2Config::default()
        }
    }

    #[test]
    fn auto_prefers_mjpeg_at_the_requested_size() {
        let (r, note) = choose(&cfg(FormatChoice::Auto, 1280, 720), &webcam()).unwrap();
        assert_eq!((&r.fourcc, r.width, r.height), (b"MJPG", 1280, 720));
        assert_eq!(note, None);
        let (r, _) = choose(&cfg(FormatChoice::Yuyv, 640, 480), &webcam()).unwrap();
        assert_eq!((&r.fourcc, r.width, r.height), (b"YUYV", 640, 480));
    }

    #[test]
    fn a_size_not_offered_takes_the_nearest_and_says_so() {
        let (r, note) = choose(&cfg(FormatChoice::Yuyv, 1920, 1080), &webcam()).unwrap();
        assert_eq!((&r.fourcc, r.width, r.height), (b"YUYV", 1280, 720));
        assert!(note.unwrap().contains("does not offer 1920x1080 in YUYV"));
        let (r, _) = choose(&cfg(FormatChoice::Auto, 800, 600), &webcam()).unwrap();
        assert_eq!((&r.fourcc, r.width, r.height), (b"MJPG", 640, 480));
    }

    #[test]
    fn stepwise_sizes_snap_to_the_grid() {
        let modes = vec![FormatModes {
            fourcc: *b"YUYV",
            description: "YUYV".into(),
            sizes: Sizes::Stepwise {
                min: (16, 16),
                max: (1920, 1080),
                step: (2, 2),
            },
        }];
        let (r, note) = choose(&cfg(FormatChoice::Auto, 640, 360), &modes).unwrap();
        assert_eq!((r.width, r.height, note), (640, 360, None));
        let (r, _) = choose(&cfg(FormatChoice::Auto, 4000, 3001), &modes).unwrap();
        assert_eq!((r.width, r.height), (1920, 1080));
        let (r, note) = choose(&cfg(FormatChoice::Auto, 641, 361), &modes).unwrap();
        assert_eq!((r.width, r.height), (640, 360));
        assert!(note.is_some());
    }

    #[test]
    fn nothing_fits_lists_what_the_camera_offers() {
        let modes = vec![FormatModes {
            fourcc: *b"H264",
            description: "H.264".into(),
            sizes: Sizes::Discrete(vec![(1920, 1080, Intervals::Discrete(vec![iv(30)]))]),
        }];
        let e = choose(&cfg(FormatChoice::Auto, 640, 480), &modes).unwrap_err();
        assert!(
            e.contains("'H264' (H.264)  (not decoded by camtrapd)"),
            "{e}"
        );
        assert!(e.contains("Size: Discrete 1920x1080  fps: 30.000"), "{e}");
        let e = choose(&cfg(FormatChoice::Mjpg, 640, 480), &webcam()[..1]).unwrap_err();
        assert!(
            e.contains("format = \"MJPG\"") && e.contains("'YUYV'"),
            "{e}"
        );
    }

    #[test]
    fn listing_reads_like_v4l2_ctl() {
        let s = list(&webcam());
        assert_eq!(
            s.lines().take(4).collect::<Vec<_>>(),
            [
                "  'YUYV' (YUYV 4:2:2)",
                "      Size: Discrete 640x480  fps: 30.000, 15.000",
                "      Size: Discrete 1280x720  fps: 10.000",
                "  'MJPG' (Motion-JPEG)",
            ]
        );
        assert_eq!(format!("{}", iv(15)), "0.067s (15.000 fps)");
    }
}
