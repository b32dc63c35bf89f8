//! JPEG frames through libjpeg-turbo (its TurboJPEG 3 API, via the
//! `turbojpeg` crate; built from source and linked statically).
//!
//! * Faster than the pure-Rust decoder on full-size frames (SIMD Huffman,
//!   IDCT, upsampling and colour conversion on x86 and NEON), and the
//!   decoder Pillow uses, so frames come out as in the usual Python training
//!   pipelines (ISLOW IDCT, "fancy" upsampling).
//! * DCT scaling: when [`DecodeTarget`] allows it, the image is decoded at
//!   1/2, 1/4 or 1/8 of its size by inverse DCTs of 4×4, 2×2 or 1×1
//!   coefficients, instead of decoding every pixel and resizing afterwards.
//!   Only where the model's input is still [`super::MODEL_MARGIN`] times
//!   smaller per axis than the region it samples: a 4000×3000 trail-camera
//!   photo for a 224×224 centre crop is decoded at 2000×1500.
//! * EXIF orientation is applied (read with the `image` crate, only when
//!   the file carries an EXIF segment).
//! * Anything libjpeg-turbo does not decode cleanly (CMYK/YCCK, lossless,
//!   a warning about corrupt data, ...) is handed back to the caller
//!   (`Ok(None)`), which decodes it with the `image` crate (and shrinks it to
//!   the size this path would have given), so damaged frames behave as before.
//!   Arithmetic-coded JPEGs, which the `image` crate refuses, decode here.

use std::cell::RefCell;
use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

use super::{DecodeError, DecodeLimits, DecodeTarget};

/// Most scans a progressive JPEG may have before libjpeg-turbo gives up
/// (libjpeg-turbo's advice against denial-of-service files with thousands of
/// tiny scans).
const SCAN_LIMIT: u32 = 500;

thread_local! {
    /// One decompressor per thread, reused for every frame (libjpeg's
    /// structures are set up once).
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Decodes a JPEG with libjpeg-turbo, shrunk as far as `target` allows.
///
/// Returns `Ok(None)` when libjpeg-turbo cannot decode it cleanly (the caller
/// falls back to the `image` crate).
///
/// # Errors
/// [`DecodeError::TooLarge`] or [`DecodeError::OverLimits`] when the image is
/// over `limits`; [`DecodeError::Corrupt`] for a zero-size header.
pub fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
) -> Result<Option<RgbImage>, DecodeError> {
    DECOMPRESSOR.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Ok(None);
        };
        if slot.is_none() {
            let Ok(mut d) = Decompressor::new() else {
                return Ok(None);
            };
            if d.set_scan_limit(SCAN_LIMIT).is_err() {
                return Ok(None);
            }
            *slot = Some(d);
        }
        match slot.as_mut() {
            Some(tj) => decode_with(tj, bytes, limits, target),
            None => Ok(None),
        }
    })
}

fn decode_with(
    tj: &mut Decompressor,
    bytes: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
) -> Result<Option<RgbImage>, DecodeError> {
    let Ok(header) = tj.read_header(bytes) else {
        return Ok(None);
    };
    if header.is_lossless
        || !matches!(
            header.colorspace,
            Colorspace::YCbCr | Colorspace::Gray | Colorspace::RGB
        )
    {
        return Ok(None);
    }
    let (Ok(width), Ok(height)) = (u32::try_from(header.width), u32::try_from(header.height))
    else {
        return Ok(None);
    };
    super::check_dimensions(width, height, limits)?;
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!(
            "image has zero size {width}×{height}"
        )));
    }
    let headers = walk_headers(bytes);
    let orientation = if headers.exif {
        exif_orientation(bytes)
    } else {
        Orientation::NoTransforms
    };
    let turned = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let d = if turned {
        target.denominator(height, width)
    } else {
        target.denominator(width, height)
    };
    let factor = ScalingFactor::new(1, d as usize);
    let scaled = header.scaled(factor);
    let (sw, sh) = (scaled.width, scaled.height);
    // Memory: the RGB8 output (twice with a rotation), plus libjpeg's whole-image
    // coefficient buffer (2 bytes per coefficient, each component counted at
    // full resolution), which it allocates for a progressive JPEG and for a
    // sequential one whose first scan does not hold every component.
    let rgb = (sw as u64).saturating_mul(sh as u64).saturating_mul(3);
    let copies = if orientation == Orientation::NoTransforms {
        1
    } else {
        2
    };
    let components = if header.colorspace == Colorspace::Gray {
        1
    } else {
        3
    };
    let coefficients = if header.is_progressive || !headers.first_scan_interleaved {
        u64::from(width) * u64::from(height) * components * 2
    } else {
        0
    };
    let need = rgb.saturating_mul(copies).saturating_add(coefficients);
    super::check_memory(width, height, need, limits)?;
    if tj.set_scaling_factor(factor).is_err() {
        return Ok(None);
    }
    let Some(len) = sw.checked_mul(sh).and_then(|n| n.checked_mul(3)) else {
        return Ok(None);
    };
    let mut pixels = vec![0u8; len];
    let out = Image {
        pixels: pixels.as_mut_slice(),
        width: sw,
        pitch: sw * 3,
        height: sh,
        format: PixelFormat::RGB,
    };
    if let Err(e) = tj.decompress(bytes, out) {
        log::debug!("libjpeg-turbo: {e}; decoding with the image crate instead");
        return Ok(None);
    }
    let (Ok(sw), Ok(sh)) = (u32::try_from(sw), u32::try_from(sh)) else {
        return Ok(None);
    };
    let Some(img) = RgbImage::from_raw(sw, sh, pixels) else {
        return Ok(None);
    };
    if orientation == Orientation::NoTransforms {
        return Ok(Some(img));
    }
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Ok(Some(img.into_rgb8()))
}

/// What the segments before a JPEG's first scan say (segments walked by
/// their lengths, T.81 B.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    /// An APP1 segment holds EXIF data.
    pub exif: bool,
    /// The first scan holds every component of the frame (an interleaved
    /// sequential JPEG, decoded without a whole-image coefficient buffer).
    /// `false` when it holds fewer, or the walk could not tell.
    pub first_scan_interleaved: bool,
}

/// Walks the segments from SOI to the first start-of-scan.
pub fn walk_headers(b: &[u8]) -> Headers {
    let mut h = Headers {
        exif: false,
        first_scan_interleaved: false,
    };
    if b.get(..2) != Some(&[0xFF, 0xD8]) {
        return h;
    }
    let mut frame_components = None;
    let mut i = 2;
    loop {
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return h;
        };
        i += 1;
        match marker {
            0xD9 => return h,
            0xD0..=0xD8 | 0x01 => continue,
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (b.get(i), b.get(i + 1)) else {
            return h;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 2 {
            return h;
        }
        match marker {
            0xE1 if b.get(i + 2..i + 8) == Some(b"Exif\0\0".as_slice()) => h.exif = true,
            // SOFn (not DHT C4, JPG C8, DAC CC): Nf after P, Y, X.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                frame_components = b.get(i + 7).copied();
            }
            0xDA => {
                // SOS: Ns is its first byte.
                h.first_scan_interleaved =
                    frame_components.is_some() && b.get(i + 2).copied() == frame_components;
                return h;
            }
            _ => {}
        }
        i += len;
        if b.get(i) != Some(&0xFF) {
            return h;
        }
    }
}

/// The EXIF orientation of a JPEG (no transform when it cannot be read).
fn exif_orientation(bytes: &[u8]) -> Orientation {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg);
    reader.no_limits();
    reader
        .into_decoder()
        .and_then(|mut d| d.orientation())
        .unwrap_or(Orientation::NoTransforms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::ResizeMode;
    use crate::preprocess::InputGeometry;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        out
    }

    fn crop224() -> InputGeometry {
        InputGeometry {
            width: 224,
            height: 224,
            mode: ResizeMode::CenterCrop,
            crop_fraction: 0.875,
        }
    }

    #[test]
    fn denominator_keeps_four_times_the_pixels_the_model_samples() {
        let model = DecodeTarget::model(crop224());
        // The centre crop (0.875 of the shorter side) must stay ≥ 4 × 224 = 896.
        assert_eq!(model.denominator(640, 480), 1);
        assert_eq!(model.denominator(1280, 720), 1);
        assert_eq!(model.denominator(1920, 1080), 1);
        // 3000 · 0.875 = 2625: / 2 = 1312 ≥ 896, / 4 = 656 < 896.
        assert_eq!(model.denominator(4000, 3000), 2);
        assert_eq!(model.denominator(8000, 6000), 4);
        assert_eq!(model.denominator(100, 100), 1);
        // Squash needs both axes: 1000×750 is short of 896 in height.
        let squash = DecodeTarget::model(InputGeometry {
            mode: ResizeMode::Squash,
            ..crop224()
        });
        assert_eq!(squash.denominator(4000, 3000), 2);
        assert_eq!(squash.denominator(640, 480), 1);
        // Letterbox fits the longer side: 1920×1080 → 224×126, and 960×540 is
        // at least 4 × that.
        let letterbox = DecodeTarget::model(InputGeometry {
            mode: ResizeMode::Letterbox,
            ..crop224()
        });
        assert_eq!(letterbox.denominator(1920, 1080), 2);
        assert_eq!(letterbox.denominator(4000, 3000), 4);
        // A snapshot size bounds it too; the full target never shrinks.
        let snap = |side| DecodeTarget {
            min_longest_side: side,
            ..DecodeTarget::model(crop224())
        };
        assert_eq!(snap(1280).denominator(8000, 6000), 4);
        assert_eq!(snap(2500).denominator(4000, 3000), 1);
        assert_eq!(DecodeTarget::full().denominator(8000, 6000), 1);
        // Without a model, the longest side alone.
        let side = |s| DecodeTarget {
            input: None,
            min_longest_side: s,
        };
        assert_eq!(side(640).denominator(1280, 720), 2);
        assert_eq!(side(641).denominator(1280, 720), 1);
        assert_eq!(side(0).denominator(1280, 720), 8);
    }

    #[test]
    fn shrinks_in_the_dct_domain_and_matches_a_full_decode() {
        let j = jpeg(1280, 720);
        let limits = DecodeLimits::default();
        let full = decode(&j, &limits, &DecodeTarget::full()).unwrap().unwrap();
        assert_eq!(full.dimensions(), (1280, 720));
        let half_side = DecodeTarget {
            input: None,
            min_longest_side: 640,
        };
        let half = decode(&j, &limits, &half_side).unwrap().unwrap();
        assert_eq!(half.dimensions(), (640, 360));
        // The half-size decode is the full one averaged over 2×2 blocks,
        // within JPEG rounding.
        let mut worst = 0i32;
        for (x, y, p) in half.enumerate_pixels() {
            for c in 0..3 {
                let mean: i32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|(dx, dy)| i32::from(full.get_pixel(2 * x + dx, 2 * y + dy)[c]))
                    .sum::<i32>()
                    / 4;
                worst = worst.max((mean - i32::from(p[c])).abs());
            }
        }
        assert!(worst <= 6, "largest difference {worst}");
    }

    #[test]
    fn odd_sizes_round_up() {
        let j = jpeg(1281, 723);
        let target = DecodeTarget {
            input: None,
            min_longest_side: 641,
        };
        let got = decode(&j, &DecodeLimits::default(), &target)
            .unwrap()
            .unwrap();
        assert_eq!(got.dimensions(), (641, 362));
    }

    #[test]
    fn header_walk_finds_exif_and_the_first_scan() {
        let j = jpeg(16, 16);
        let h = walk_headers(&j);
        assert!(!h.exif);
        assert!(
            h.first_scan_interleaved,
            "the image crate writes one interleaved scan"
        );
        let mut with = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x0A];
        with.extend(b"Exif\0\0MM");
        with.extend(&j[2..]);
        assert_eq!(
            walk_headers(&with),
            Headers {
                exif: true,
                first_scan_interleaved: true
            }
        );
        // SOF0 with 3 components, then a scan of 1 component.
        let mut split = vec![0xFF, 0xD8];
        split.extend([0xFF, 0xC0, 0x00, 0x11, 8, 0, 16, 0, 16, 3]);
        split.extend([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        split.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
        assert!(!walk_headers(&split).first_scan_interleaved);
        assert!(!walk_headers(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00]).exif);
        assert!(!walk_headers(b"not a jpeg").first_scan_interleaved);
    }

    #[test]
    fn garbage_and_truncated_data_are_left_to_the_image_crate() {
        let limits = DecodeLimits::default();
        let t = DecodeTarget::full();
        assert!(decode(b"\xFF\xD8\xFF\xE0garbage", &limits, &t)
            .unwrap()
            .is_none());
        let j = jpeg(64, 48);
        // Cut inside the entropy-coded data: libjpeg-turbo warns, the caller decides.
        assert!(decode(&j[..j.len() / 2], &limits, &t).unwrap().is_none());
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let j = jpeg(64, 48);
        let small = DecodeLimits {
            max_dimension: 32,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode(&j, &small, &DecodeTarget::full())
                .unwrap_err()
                .reason(),
            "too_large"
        );
        let tight = DecodeLimits {
            max_alloc_bytes: 64 * 48 * 3 - 1,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode(&j, &tight, &DecodeTarget::full())
                .unwrap_err()
                .reason(),
            "too_large"
        );
    }
}
