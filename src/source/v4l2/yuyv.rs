//! YUYV (packed YUV 4:2:2: `Y0 U Y1 V` for each pair of pixels) to RGB8,
//! ITU-R BT.601 with limited ("studio") range: Y in 16..=235, U/V (Cb/Cr) in
//! 16..=240 centred on 128, as USB (UVC) webcams send it.
//!
//! The conversion is the BT.601 inverse matrix scaled by 255/219 (luma) and
//! 255/224 (chroma), in 8.8 fixed point:
//!
//! ```text
//! c = Y - 16, d = U - 128, e = V - 128
//! R = (298 c           + 409 e + 128) >> 8
//! G = (298 c - 100 d   - 208 e + 128) >> 8
//! B = (298 c + 516 d           + 128) >> 8      (each clamped to 0..=255)
//! ```
//!
//! (1.164 = 255/219, 1.596 = 2·(1−Kr)·255/224, 0.392 and 0.813 from Kb =
//! 0.114, Kr = 0.299, 2.017 = 2·(1−Kb)·255/224; ITU-R BT.601-7 §2.5.)
//! Integer only, no allocation beyond the output image.

use image::RgbImage;

/// Why a YUYV buffer cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YuyvError {
    /// YUYV carries two pixels per 4 bytes: an odd width does not exist.
    #[error("YUYV frame width {0} is odd (YUYV packs two pixels per 4 bytes)")]
    OddWidth(u32),
    /// The size is zero.
    #[error("YUYV frame has zero size {0}×{1}")]
    Empty(u32, u32),
    /// The line stride is shorter than a line.
    #[error("YUYV line stride {stride} bytes is shorter than a line of {width} pixels ({} bytes)", width * 2)]
    Stride {
        /// Bytes per line as the driver reported it.
        stride: usize,
        /// Width in pixels.
        width: u32,
    },
    /// The buffer holds fewer bytes than the frame needs (a short or
    /// truncated frame).
    #[error("YUYV frame {width}×{height} needs {need} bytes, the buffer holds {have}")]
    Short {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes needed.
        need: usize,
        /// Bytes received.
        have: usize,
    },
}

#[inline]
fn clamp8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// One pixel: Y, U (Cb), V (Cr) → R, G, B (BT.601, limited range).
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        clamp8((c + 409 * e + 128) >> 8),
        clamp8((c - 100 * d - 208 * e + 128) >> 8),
        clamp8((c + 516 * d + 128) >> 8),
    ]
}

/// Converts a YUYV frame of `width`×`height` pixels whose lines are
/// `stride` bytes apart (the driver's `bytesperline`, at least `2·width`)
/// into RGB8.
///
/// # Errors
/// [`YuyvError`] for an odd width, a zero size, a stride shorter than a line,
/// or a buffer shorter than the frame; never panics.
pub fn yuyv_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<RgbImage, YuyvError> {
    yuyv_to_rgb_region(data, width, height, stride, None, Vec::new()).map(|(img, _)| img)
}

/// Checks that `data` holds a `width × height` YUYV frame with rows
/// `stride` bytes apart (the last row needs only its pixels).
///
/// # Errors
/// As [`yuyv_to_rgb`]: [`YuyvError::Empty`], [`YuyvError::OddWidth`],
/// [`YuyvError::Stride`] or [`YuyvError::Short`].
pub fn check_buffer(data: &[u8], width: u32, height: u32, stride: usize) -> Result<(), YuyvError> {
    if width == 0 || height == 0 {
        return Err(YuyvError::Empty(width, height));
    }
    if width % 2 == 1 {
        return Err(YuyvError::OddWidth(width));
    }
    let line = width as usize * 2;
    if stride < line {
        return Err(YuyvError::Stride { stride, width });
    }
    let need = stride * (height as usize - 1) + line;
    if data.len() < need {
        return Err(YuyvError::Short {
            width,
            height,
            need,
            have: data.len(),
        });
    }
    Ok(())
}

/// As [`yuyv_to_rgb`], converting only `region` (`(x0, y0, x1, y1)` in
/// pixels, `x1`, `y1` exclusive; `x0` is moved left to an even column, where
/// a pixel pair starts) into `buf` (an earlier frame's buffer, reused).
/// Returns the image and its top-left corner (`x0`, `y0`) in the frame.
/// `None` converts the whole frame.
///
/// # Errors
/// As [`yuyv_to_rgb`]; a region outside the frame is clamped to it.
pub fn yuyv_to_rgb_region(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    region: Option<(u32, u32, u32, u32)>,
    buf: Vec<u8>,
) -> Result<(RgbImage, (u32, u32)), YuyvError> {
    check_buffer(data, width, height, stride)?;
    let (x0, y0, x1, y1) = region.map_or((0, 0, width, height), |(x0, y0, x1, y1)| {
        let (x1, y1) = (x1.min(width), y1.min(height));
        (x0.min(x1) & !1, y0.min(y1), x1, y1)
    });
    // Whole pixel pairs: an odd right edge takes the pair's second pixel too.
    let x1 = (x1 + (x1 - x0) % 2).min(width);
    let (w, h) = (x1 - x0, y1 - y0);
    if w == 0 || h == 0 {
        return Err(YuyvError::Empty(w, h));
    }
    let mut out = buf;
    let len = w as usize * h as usize * 3;
    out.truncate(len);
    out.resize(len, 0);
    let (from, to) = (x0 as usize * 2, x1 as usize * 2);
    for (src, dst) in data
        .chunks(stride)
        .skip(y0 as usize)
        .take(h as usize)
        .zip(out.chunks_exact_mut(w as usize * 3))
    {
        for (p, q) in src[from..to].chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (y0, u, y1, v) = (p[0], p[1], p[2], p[3]);
            q[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
            q[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
        }
    }
    let img = RgbImage::from_raw(w, h, out).ok_or(YuyvError::Empty(w, h))?;
    Ok((img, (x0, y0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 limited range in floating point, straight from the standard's
    /// constants (Kr = 0.299, Kb = 0.114; Y 16..235, Cb/Cr 16..240), an
    /// independent reference for the fixed-point code.
    fn reference(y: u8, u: u8, v: u8) -> [f64; 3] {
        let (kr, kb) = (0.299, 0.114);
        let kg = 1.0 - kr - kb;
        let yy = (f64::from(y) - 16.0) / 219.0;
        let pb = (f64::from(u) - 128.0) / 224.0;
        let pr = (f64::from(v) - 128.0) / 224.0;
        let r = yy + 2.0 * (1.0 - kr) * pr;
        let b = yy + 2.0 * (1.0 - kb) * pb;
        let g = (yy - kr * r - kb * b) / kg;
        [r, g, b].map(|c| (c * 255.0).clamp(0.0, 255.0))
    }

    /// A YUYV frame of `width`×`height` where every pixel pair is `yuyv`,
    /// with `pad` bytes after each line.
    fn frame(width: u32, height: u32, pad: usize, yuyv: [u8; 4]) -> Vec<u8> {
        let mut b = Vec::new();
        for _ in 0..height {
            for _ in 0..width / 2 {
                b.extend(yuyv);
            }
            b.extend(std::iter::repeat_n(0xAA, pad));
        }
        b
    }

    #[test]
    fn a_region_is_the_same_pixels_as_the_whole_frame_there() {
        // Every pixel pair different, 2 bytes of padding per line.
        let (w, h, stride) = (10u32, 6u32, 22usize);
        let data: Vec<u8> = (0..stride * h as usize)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let whole = yuyv_to_rgb(&data, w, h, stride).unwrap();
        // x0 = 3 moves to the pair start 2; x1 = 7 takes the pair's second pixel, 8.
        let (part, (x0, y0)) =
            yuyv_to_rgb_region(&data, w, h, stride, Some((3, 1, 7, 5)), vec![9; 500]).unwrap();
        assert_eq!((x0, y0), (2, 1));
        assert_eq!(part.dimensions(), (6, 4));
        for (x, y, p) in part.enumerate_pixels() {
            assert_eq!(p, whole.get_pixel(x0 + x, y0 + y), "({x}, {y})");
        }
        let (all, origin) = yuyv_to_rgb_region(&data, w, h, stride, None, Vec::new()).unwrap();
        assert_eq!((all, origin), (whole, (0, 0)));
    }

    #[test]
    fn white_black_and_grey_are_exact() {
        // Nominal white and black of limited range map to the ends of full range.
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        // Below black and above white are clamped, not wrapped.
        assert_eq!(yuv_to_rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(255, 128, 128), [255, 255, 255]);
        // Mid grey: (126 - 16) * 255 / 219 = 128.08.
        assert_eq!(yuv_to_rgb(126, 128, 128), [128, 128, 128]);
    }

    #[test]
    fn seventy_five_percent_colour_bars() {
        // 75% colour bars in 8-bit BT.601 Y'CbCr (ITU-R BT.801 / SMPTE EG 1),
        // and the R'G'B' they encode: 75% of 255 = 191.
        let bars: [(&str, [u8; 3], [u8; 3]); 8] = [
            ("white", [180, 128, 128], [191, 191, 191]),
            ("yellow", [162, 44, 142], [191, 191, 0]),
            ("cyan", [131, 156, 44], [0, 191, 191]),
            ("green", [112, 72, 58], [0, 191, 0]),
            ("magenta", [84, 184, 198], [191, 0, 191]),
            ("red", [65, 100, 212], [191, 0, 0]),
            ("blue", [35, 212, 114], [0, 0, 191]),
            ("black", [16, 128, 128], [0, 0, 0]),
        ];
        for (name, [y, u, v], rgb) in bars {
            let got = yuv_to_rgb(y, u, v);
            for c in 0..3 {
                assert!(
                    got[c].abs_diff(rgb[c]) <= 2,
                    "{name}: YCbCr {y},{u},{v} -> {got:?}, expected {rgb:?}"
                );
            }
        }
    }

    #[test]
    fn every_input_matches_the_floating_point_reference() {
        let mut worst = 0.0f64;
        for y in (0..=255u8).step_by(3) {
            for u in (0..=255u8).step_by(5) {
                for v in (0..=255u8).step_by(5) {
                    let got = yuv_to_rgb(y, u, v);
                    let want = reference(y, u, v);
                    for c in 0..3 {
                        worst = worst.max((f64::from(got[c]) - want[c]).abs());
                    }
                }
            }
        }
        // 8.8 fixed point: within one step of 8-bit output everywhere.
        assert!(worst <= 1.5, "largest difference {worst}");
    }

    #[test]
    fn frames_with_padding_and_odd_heights_convert_pixel_by_pixel() {
        // Red bar, 6×3 (odd height), 4 bytes of line padding.
        let data = frame(6, 3, 4, [65, 100, 65, 212]);
        let img = yuyv_to_rgb(&data, 6, 3, 16).unwrap();
        assert_eq!(img.dimensions(), (6, 3));
        for p in img.pixels() {
            assert_eq!(p.0, yuv_to_rgb(65, 100, 212));
        }
        // Two different luma values in one pair share the chroma.
        let img = yuyv_to_rgb(&[235, 128, 16, 128], 2, 1, 4).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        // The last line may end without its padding.
        let short_pad = &data[..data.len() - 4];
        assert!(yuyv_to_rgb(short_pad, 6, 3, 16).is_ok());
    }

    #[test]
    fn bad_frames_are_refused_cleanly() {
        let data = frame(6, 3, 0, [16, 128, 16, 128]);
        assert_eq!(yuyv_to_rgb(&data, 5, 3, 10), Err(YuyvError::OddWidth(5)));
        assert_eq!(yuyv_to_rgb(&data, 0, 3, 12), Err(YuyvError::Empty(0, 3)));
        assert!(matches!(
            yuyv_to_rgb(&data, 6, 3, 8),
            Err(YuyvError::Stride {
                stride: 8,
                width: 6
            })
        ));
        assert_eq!(
            yuyv_to_rgb(&data[..30], 6, 3, 12),
            Err(YuyvError::Short {
                width: 6,
                height: 3,
                need: 36,
                have: 30
            })
        );
        assert!(yuyv_to_rgb(&[], 2, 1, 4).is_err());
    }
}
