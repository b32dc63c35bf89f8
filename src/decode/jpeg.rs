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
//! * Cropping: when [`DecodeTarget::crop`] allows it, only the rows and
//!   columns the model's centre crop reads are decoded (`tj3SetCroppingRegion`:
//!   libjpeg's `jpeg_crop_scanline` and `jpeg_skip_scanlines`), and the
//!   [`Window`] returned says where they lie in the frame. A 640×480 camera
//!   frame for a 224×224 crop of 0.875 decodes 448×436 pixels.
//! * EXIF orientation is applied (the orientation tag read from the APP1
//!   segment with the `image` crate's EXIF parser, no JPEG decoder).
//! * libjpeg-turbo is the only JPEG decoder: CMYK/YCCK (converted to RGB
//!   as Pillow does, Adobe's inverted convention), 8-bit lossless and
//!   arithmetic-coded JPEGs decode here too. A JPEG it refuses is corrupt
//!   ([`DecodeError::Corrupt`] with its message) and is not retried with
//!   another decoder: the `image` crate's zune-jpeg, which the fallback
//!   used to be, panics on some such files (issue 21). A JPEG it decodes
//!   with a warning (extraneous bytes before a marker, corrupt entropy
//!   data it got past: those blocks come out flat) keeps its pixels, as in
//!   Pillow. A cropped decode never reads the rows below the crop, so it may
//!   not notice damage there ([`DecodeTarget::crop`]).

use std::cell::RefCell;
use std::ffi::{c_int, CStr};

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};
use turbojpeg::raw;

use super::{DecodeError, DecodeLimits, DecodeTarget, Decoded, Window};

/// Most scans a progressive JPEG may have before libjpeg-turbo gives up
/// (libjpeg-turbo's advice against denial-of-service files with thousands of
/// tiny scans).
const SCAN_LIMIT: c_int = 500;

/// Pixels kept beyond the region the resize reads, on every side of a
/// cropped decode: libjpeg-turbo's "fancy" chroma upsampling may treat the
/// crop's left and right edge columns as image edges (libjpeg.txt,
/// "Decompressing partial scanlines"), so those columns must not be read.
const CROP_PAD: u32 = 4;

/// iMCU width in pixels per TurboJPEG subsampling (`TJSAMP_444` … `TJSAMP_441`),
/// `tjMCUWidth` of `turbojpeg.h` (a header-only table, not a linkable symbol).
const MCU_WIDTH: [u32; 7] = [8, 16, 16, 8, 8, 32, 8];

/// The column a cropped decode's left edge must fall on, in pixels at scale
/// 1/`d`: libjpeg's `jpeg_crop_scanline` moves it to a multiple of
/// (8 / d) × the largest horizontal sampling factor (8 / d for a single
/// component), and TurboJPEG refuses one that is not a multiple of its
/// subsampling's scaled iMCU width (`subsamp`, `TJPARAM_SUBSAMP`). They can
/// differ: TurboJPEG calls a JPEG whose components all have factor 2×1
/// "4:4:4" (iMCU width 8) where libjpeg aligns to 16. `None` (no crop) when
/// either is unknown.
fn crop_alignment(sampling: Option<(u8, u8)>, subsamp: c_int, d: u32) -> Option<u32> {
    let libjpeg = match sampling? {
        (0, _) => return None,
        (1, _) => 8 / d,
        (_, max_h @ 1..=4) => 8 / d * u32::from(max_h),
        _ => return None,
    };
    let turbojpeg = scaled(*MCU_WIDTH.get(usize::try_from(subsamp).ok()?)?, d);
    // Both are powers of two: the larger is a multiple of the smaller.
    Some(libjpeg.max(turbojpeg))
}

/// A TurboJPEG 3 decompression instance (`tj3Init` … `tj3Destroy`), reused
/// for every frame of a thread. The `turbojpeg` crate's safe `Decompressor`
/// has no cropping region (`tj3SetCroppingRegion`), so this path calls the
/// same crate's raw bindings (`turbojpeg::raw`, libjpeg-turbo's
/// `turbojpeg.h`).
struct Tj(raw::tjhandle);

impl Tj {
    fn new() -> Option<Tj> {
        // SAFETY: tj3Init has no preconditions; a null handle is checked.
        let h = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if h.is_null() {
            return None;
        }
        let mut tj = Tj(h);
        tj.set(raw::TJPARAM_TJPARAM_SCANLIMIT, SCAN_LIMIT)
            .then_some(tj)
    }

    fn set(&mut self, param: raw::TJPARAM, value: c_int) -> bool {
        // SAFETY: the handle is valid for the life of `self`.
        unsafe { raw::tj3Set(self.0, param as c_int, value) == 0 }
    }

    fn get(&self, param: raw::TJPARAM) -> c_int {
        // SAFETY: as above.
        unsafe { raw::tj3Get(self.0, param as c_int) }
    }

    /// libjpeg-turbo's message for the last failed call.
    fn error(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the
        // instance (or a static one), valid until the next call.
        unsafe {
            let p = raw::tj3GetErrorStr(self.0);
            if p.is_null() {
                return "unknown error".into();
            }
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    /// Reads the header of `bytes` (sets the JPEGWIDTH … PROGRESSIVE
    /// parameters). A warning (e.g. junk bytes between two segments, which
    /// libjpeg skips) still reads the whole header: it counts as read.
    fn read_header(&mut self, bytes: &[u8]) -> bool {
        // SAFETY: pointer and length describe `bytes`, which outlives the call.
        let ok = unsafe {
            raw::tj3DecompressHeader(self.0, bytes.as_ptr(), bytes.len() as raw::size_t) == 0
        };
        // SAFETY: the handle is valid; the code describes the call above.
        let warned = unsafe { raw::tj3GetErrorCode(self.0) } == raw::TJERR_TJERR_WARNING as c_int;
        // A warning about data that ends early ("premature end of JPEG
        // file") leaves no header, and the parameters of an earlier frame
        // in place: only a file whose markers reach the end counts.
        ok || (warned && super::check_jpeg_complete(bytes).is_ok())
    }

    fn set_scaling(&mut self, denom: u32) -> bool {
        let f = raw::tjscalingfactor {
            num: 1,
            denom: denom as c_int,
        };
        // SAFETY: as above.
        unsafe { raw::tj3SetScalingFactor(self.0, f) == 0 }
    }

    /// Sets (or with all zeros clears) the cropping region, in scaled pixels.
    fn set_crop(&mut self, x: u32, y: u32, w: u32, h: u32) -> bool {
        let r = raw::tjregion {
            x: x as c_int,
            y: y as c_int,
            w: w as c_int,
            h: h as c_int,
        };
        // SAFETY: as above.
        unsafe { raw::tj3SetCroppingRegion(self.0, r) == 0 }
    }

    /// Decompresses `bytes` (whose header was read last) into `out`, rows
    /// of `width` pixels of `channels` bytes (3: RGB8, 1: the luma alone,
    /// 4: CMYK as stored, for a CMYK/YCCK JPEG),
    /// packed; `width × height` must be the scaled (and cropped) size set by
    /// `set_scaling` and `set_crop` for this header, which libjpeg-turbo
    /// writes. Refuses a shorter `out` ([`Outcome::Failed`]).
    fn decompress(
        &mut self,
        bytes: &[u8],
        out: &mut [u8],
        width: u32,
        height: u32,
        channels: u32,
    ) -> Outcome {
        let format = match channels {
            3 => raw::TJPF_TJPF_RGB,
            1 => raw::TJPF_TJPF_GRAY,
            4 => raw::TJPF_TJPF_CMYK,
            _ => return Outcome::Failed,
        };
        let need = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(channels as usize));
        if need.is_none_or(|n| out.len() < n) {
            return Outcome::Failed;
        }
        // SAFETY: `out` holds `height` rows of `width` pixels of `channels`
        // bytes, the size of the scaled (cropped) image in this pixel format
        // (checked above; the caller computed it from the same header,
        // scaling factor and cropping region, and TurboJPEG refuses a crop
        // that libjpeg would widen).
        let ok = unsafe {
            raw::tj3Decompress8(
                self.0,
                bytes.as_ptr(),
                bytes.len() as raw::size_t,
                out.as_mut_ptr(),
                (width * channels) as c_int,
                format as c_int,
            ) == 0
        };
        if ok {
            return Outcome::Clean;
        }
        // SAFETY: the handle is valid; the code describes the call above.
        let code = unsafe { raw::tj3GetErrorCode(self.0) };
        if code == raw::TJERR_TJERR_WARNING as c_int {
            Outcome::Warned
        } else {
            Outcome::Failed
        }
    }
}

/// How a decompression went ([`Tj::decompress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every pixel written, no message.
    Clean,
    /// Every pixel written, but libjpeg warned (`TJERR_WARNING`, with
    /// `TJPARAM_STOPONWARNING` off): extraneous bytes before a marker,
    /// corrupt entropy data it got past (those blocks come out flat), ...
    Warned,
    /// Refused or stopped.
    Failed,
}

impl Drop for Tj {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

thread_local! {
    /// One decompressor per thread, reused for every frame (libjpeg's
    /// structures are set up once).
    static DECOMPRESSOR: RefCell<Option<Tj>> = const { RefCell::new(None) };
}

/// `ceil(dim / denom)`, libjpeg's scaled size (`TJSCALED` for 1/denom).
fn scaled(dim: u32, denom: u32) -> u32 {
    dim.div_ceil(denom)
}

/// Decodes a JPEG with libjpeg-turbo, shrunk and cropped as far as `target`
/// allows. A JPEG libjpeg-turbo only warns about keeps its pixels (logged
/// at debug level).
///
/// # Errors
/// [`DecodeError::TooLarge`] or [`DecodeError::OverLimits`] when the image is
/// over `limits`; [`DecodeError::Corrupt`] with libjpeg-turbo's message when
/// it refuses the data, for a zero-size header, and for what it cannot
/// decode into 8-bit samples (12- and 16-bit JPEGs).
pub fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
    buf: Vec<u8>,
) -> Result<Decoded, DecodeError> {
    with_decompressor(|tj| decode_with(tj, bytes, limits, target, buf).map(Some))?
        .ok_or_else(|| DecodeError::Corrupt("libjpeg-turbo could not start a decompressor".into()))
}

/// libjpeg-turbo's message for the last failed call, without TurboJPEG's
/// function name (`tj3Decompress8(): `).
fn message(tj: &Tj) -> String {
    let e = tj.error();
    match e.split_once("(): ") {
        Some((f, rest)) if f.starts_with("tj") => rest.to_string(),
        _ => e,
    }
}

/// Runs `f` with this thread's decompressor; `Ok(None)` when there is none
/// (libjpeg-turbo could not start one, or a re-entrant call).
fn with_decompressor<T>(
    f: impl FnOnce(&mut Tj) -> Result<Option<T>, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    DECOMPRESSOR.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Ok(None);
        };
        if slot.is_none() {
            *slot = Tj::new();
        }
        let r = match slot.as_mut() {
            Some(tj) => f(tj),
            None => Ok(None),
        };
        if !matches!(r, Ok(Some(_))) {
            // A failed call may leave libjpeg mid-header (tj3DecompressHeader
            // does not abort on error), which would fail every later frame:
            // start the next one on a fresh instance.
            *slot = None;
        }
        r
    })
}

/// The size of a JPEG's luma decoded by [`decode_luma`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LumaSize {
    /// Width of the decoded (DCT-scaled) luma, pixels.
    pub width: u32,
    /// Height of the decoded luma, pixels.
    pub height: u32,
    /// Width of the whole frame, pixels.
    pub full_width: u32,
    /// Height of the whole frame, pixels.
    pub full_height: u32,
}

/// Decodes only the luma (Y) of a JPEG, at the smallest DCT scale (1/8,
/// 1/4, 1/2 or 1) that keeps at least `need(width, height)` pixels per
/// axis, into `buf` (one byte per pixel, rows packed), for the motion gate.
/// At 1/8 each pixel is the mean of an 8×8 block (the block's DC
/// coefficient). The chroma components are entropy-decoded (the Huffman
/// stream is sequential) but not transformed, upsampled or converted.
///
/// Returns `Ok(None)` when libjpeg-turbo cannot decode it, for a CMYK or
/// lossless JPEG, or for an EXIF-rotated photo (the gate would see it
/// turned): the caller decodes the frame as usual. As [`decode`] does, a
/// frame libjpeg-turbo only warns
/// about (extraneous bytes before a marker, corrupt entropy data it got
/// past) is returned: good enough to gate on.
///
/// # Errors
/// [`DecodeError::TooLarge`] or [`DecodeError::OverLimits`] when the image is
/// over `limits`; [`DecodeError::Corrupt`] when libjpeg-turbo refuses the
/// header, and for a zero-size header.
pub fn decode_luma(
    bytes: &[u8],
    limits: &DecodeLimits,
    need: &dyn Fn(u32, u32) -> (u32, u32),
    buf: &mut Vec<u8>,
) -> Result<Option<LumaSize>, DecodeError> {
    with_decompressor(|tj| {
        let header = read_header(tj, bytes, limits)?;
        if header.colour == Colour::Cmyk || header.lossless {
            return Ok(None);
        }
        let (width, height) = (header.width, header.height);
        let headers = walk_headers(bytes);
        if exif_orientation(bytes, &headers) != Orientation::NoTransforms {
            return Ok(None);
        }
        let (nw, nh) = need(width, height);
        let d = [8u32, 4, 2]
            .into_iter()
            .find(|&d| scaled(width, d) >= nw && scaled(height, d) >= nh)
            .unwrap_or(1);
        let (sw, sh) = (scaled(width, d), scaled(height, d));
        let progressive = tj.get(raw::TJPARAM_TJPARAM_PROGRESSIVE) != 0;
        let coefficients = if progressive || !headers.first_scan_interleaved {
            u64::from(width) * u64::from(height) * 3 * 2
        } else {
            0
        };
        let grey = u64::from(sw) * u64::from(sh);
        super::check_memory(width, height, grey.saturating_add(coefficients), limits)?;
        if !tj.set_scaling(d) || !tj.set_crop(0, 0, 0, 0) {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(grey) else {
            return Ok(None);
        };
        buf.truncate(len);
        buf.resize(len, 0);
        match tj.decompress(bytes, buf, sw, sh, 1) {
            Outcome::Clean => {}
            // Good enough to gate on (some cameras send extraneous bytes
            // before EOI on every frame); a frame it lets through is decoded
            // for the model by the usual rules, which decide on the warning.
            Outcome::Warned => {
                log::debug!("libjpeg-turbo (luma for the motion gate): {}", tj.error());
            }
            Outcome::Failed => {
                log::debug!("libjpeg-turbo (luma for the motion gate): {}", tj.error());
                return Ok(None);
            }
        }
        Ok(Some(LumaSize {
            width: sw,
            height: sh,
            full_width: width,
            full_height: height,
        }))
    })
}

/// The colour model of a JPEG, as libjpeg-turbo reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    /// One component (infrared night frames).
    Grey,
    /// YCbCr or RGB.
    Rgb,
    /// CMYK or YCCK (Adobe), decoded as CMYK and converted here.
    Cmyk,
}

/// What [`read_header`] found.
#[derive(Debug, Clone, Copy)]
struct Header {
    width: u32,
    height: u32,
    colour: Colour,
    /// Lossless (SOF3): TurboJPEG neither scales nor crops these.
    lossless: bool,
}

/// Reads the header of `bytes` into `tj` and checks it: an 8-bit (or
/// lossless up to 8-bit) JPEG within `limits`.
///
/// # Errors
/// [`DecodeError::TooLarge`] over `limits.max_dimension`;
/// [`DecodeError::Corrupt`] when libjpeg-turbo refuses the header, for a
/// zero-size header, and for 12- and 16-bit samples.
fn read_header(tj: &mut Tj, bytes: &[u8], limits: &DecodeLimits) -> Result<Header, DecodeError> {
    if !tj.read_header(bytes) {
        return Err(DecodeError::Corrupt(message(tj)));
    }
    let precision = tj.get(raw::TJPARAM_TJPARAM_PRECISION);
    if precision > 8 {
        return Err(DecodeError::Corrupt(format!(
            "unsupported: {precision}-bit samples (camtrapd decodes 8-bit JPEGs)"
        )));
    }
    let colour = match tj.get(raw::TJPARAM_TJPARAM_COLORSPACE) {
        c if c == raw::TJCS_TJCS_GRAY as c_int => Colour::Grey,
        c if c == raw::TJCS_TJCS_YCbCr as c_int || c == raw::TJCS_TJCS_RGB as c_int => Colour::Rgb,
        c if c == raw::TJCS_TJCS_CMYK as c_int || c == raw::TJCS_TJCS_YCCK as c_int => Colour::Cmyk,
        c => {
            return Err(DecodeError::Corrupt(format!(
                "unsupported: JPEG colour space {c}"
            )))
        }
    };
    let (Ok(width), Ok(height)) = (
        u32::try_from(tj.get(raw::TJPARAM_TJPARAM_JPEGWIDTH)),
        u32::try_from(tj.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT)),
    ) else {
        return Err(DecodeError::Corrupt("the JPEG header has no size".into()));
    };
    super::check_dimensions(width, height, limits)?;
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!(
            "image has zero size {width}×{height}"
        )));
    }
    Ok(Header {
        width,
        height,
        colour,
        lossless: tj.get(raw::TJPARAM_TJPARAM_LOSSLESS) != 0,
    })
}

fn decode_with(
    tj: &mut Tj,
    bytes: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
    buf: Vec<u8>,
) -> Result<Decoded, DecodeError> {
    let header = read_header(tj, bytes, limits)?;
    let (width, height) = (header.width, header.height);
    let headers = walk_headers(bytes);
    let orientation = exif_orientation(bytes, &headers);
    let turned = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let d = if header.lossless {
        1
    } else if turned {
        target.denominator(height, width)
    } else {
        target.denominator(width, height)
    };
    let (sw, sh) = (scaled(width, d), scaled(height, d));
    // Cropping: only the part the model's centre crop reads, for an upright
    // image whose chroma subsampling libjpeg-turbo knows.
    let mcu_width = crop_alignment(headers.sampling, tj.get(raw::TJPARAM_TJPARAM_SUBSAMP), d);
    let crop = match (target.input, mcu_width) {
        (Some(g), Some(mcu))
            if target.crop
                && super::crop_enabled()
                && orientation == Orientation::NoTransforms
                && !header.lossless =>
        {
            g.read_region(sw, sh, CROP_PAD)
                .map(|(x0, y0, x1, y1)| (x0 / mcu * mcu, y0, x1, y1))
                .filter(|&(x0, y0, x1, y1)| (x1 - x0, y1 - y0) != (sw, sh))
        }
        _ => None,
    };
    let (ow, oh) = crop.map_or((sw, sh), |(x0, y0, x1, y1)| (x1 - x0, y1 - y0));
    // Memory: the RGB8 output (twice with a rotation), plus libjpeg's whole-image
    // coefficient buffer (2 bytes per coefficient, each component counted at
    // full resolution), which it allocates for a progressive JPEG and for a
    // sequential one whose first scan does not hold every component.
    // A CMYK JPEG is decoded to 4 bytes a pixel, then converted.
    let channels: u32 = if header.colour == Colour::Cmyk { 4 } else { 3 };
    let copies = if orientation == Orientation::NoTransforms {
        1
    } else {
        2
    };
    let components = match header.colour {
        Colour::Grey => 1,
        Colour::Rgb => 3,
        Colour::Cmyk => 4,
    };
    let progressive = tj.get(raw::TJPARAM_TJPARAM_PROGRESSIVE) != 0;
    let coefficients = if progressive || !headers.first_scan_interleaved {
        u64::from(width) * u64::from(height) * components * 2
    } else {
        0
    };
    let check_memory = |ow: u32, oh: u32| {
        let pixels = u64::from(ow) * u64::from(oh);
        let cmyk = if channels == 4 { pixels * 4 } else { 0 };
        let need = (pixels * 3)
            .saturating_mul(copies)
            .saturating_add(cmyk)
            .saturating_add(coefficients);
        super::check_memory(width, height, need, limits)
    };
    check_memory(ow, oh)?;
    if !tj.set_scaling(d) {
        return Err(DecodeError::Corrupt(message(tj)));
    }
    let mut crop = crop;
    if let Some((x0, y0, _, _)) = crop {
        if !tj.set_crop(x0, y0, ow, oh) {
            // Decode the whole (scaled) frame instead.
            log::debug!("libjpeg-turbo: {}; decoding uncropped", message(tj));
            check_memory(sw, sh)?;
            crop = None;
        }
    }
    let (ow, oh) = if crop.is_none() { (sw, sh) } else { (ow, oh) };
    if crop.is_none() && !tj.set_crop(0, 0, 0, 0) {
        return Err(DecodeError::Corrupt(message(tj)));
    }
    let too_large = || DecodeError::OverLimits(format!("a {ow}×{oh} image is too large here"));
    let len = (ow as usize)
        .checked_mul(oh as usize)
        .and_then(|n| n.checked_mul(channels as usize))
        .ok_or_else(too_large)?;
    // Reuse `buf` as it is: every byte is written by libjpeg-turbo, so only a
    // longer buffer than last time needs its new tail zeroed.
    let mut pixels = buf;
    pixels.truncate(len);
    pixels.resize(len, 0);
    match tj.decompress(bytes, &mut pixels, ow, oh, channels) {
        Outcome::Clean => {}
        // Every pixel was written; damaged blocks come out flat, as in Pillow.
        Outcome::Warned => log::debug!("libjpeg-turbo: {}; keeping its pixels", message(tj)),
        Outcome::Failed => return Err(DecodeError::Corrupt(message(tj))),
    }
    if channels == 4 {
        pixels = cmyk_to_rgb(&pixels);
    }
    let img = RgbImage::from_raw(ow, oh, pixels).ok_or_else(too_large)?;
    if let Some((x0, y0, _, _)) = crop {
        return Ok(Decoded {
            image: img,
            window: Window {
                x: x0,
                y: y0,
                full_width: sw,
                full_height: sh,
            },
        });
    }
    if orientation == Orientation::NoTransforms {
        return Ok(Decoded::whole(img));
    }
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Ok(Decoded::whole(img.into_rgb8()))
}

/// CMYK as a JPEG stores it (4 bytes a pixel) to RGB8, as Pillow converts
/// it: the stored values are taken as Adobe's inverted CMYK (what
/// Photoshop and Pillow write), so `R = C' × K' / 255` with `C'`, `K'` the
/// stored bytes.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        if let [c, m, y, k] = *p {
            let k = u32::from(k);
            for v in [c, m, y] {
                // (v × k + 127) / 255 ≤ 255.
                rgb.push(((u32::from(v) * k + 127) / 255) as u8);
            }
        }
    }
    rgb
}

/// What the segments before a JPEG's first scan say (segments walked by
/// their lengths, T.81 B.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    /// An APP1 segment holds EXIF data.
    pub exif: bool,
    /// Where the first EXIF segment's TIFF data (after `Exif\0\0`) lies in
    /// the file: start and end offsets.
    pub exif_tiff: Option<(usize, usize)>,
    /// The first scan holds every component of the frame (an interleaved
    /// sequential JPEG, decoded without a whole-image coefficient buffer).
    /// `false` when it holds fewer, or the walk could not tell.
    pub first_scan_interleaved: bool,
    /// The frame header's component count and largest horizontal sampling
    /// factor (`None` when the walk found no frame header), which set
    /// libjpeg's iMCU column width: the alignment of a cropped decode's
    /// left edge (`jpeg_crop_scanline`).
    pub sampling: Option<(u8, u8)>,
}

/// Walks the segments from SOI to the first start-of-scan.
pub fn walk_headers(b: &[u8]) -> Headers {
    let mut h = Headers {
        exif: false,
        exif_tiff: None,
        first_scan_interleaved: false,
        sampling: None,
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
            0xE1 if b.get(i + 2..i + 8) == Some(b"Exif\0\0".as_slice()) => {
                if !h.exif {
                    h.exif_tiff = Some((i + 8, i + len));
                }
                h.exif = true;
            }
            // SOFn (not DHT C4, JPG C8, DAC CC): Nf after P, Y, X.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                frame_components = b.get(i + 7).copied();
                // Component specifications: C, H << 4 | V, Tq.
                h.sampling = frame_components.and_then(|n| {
                    (0..usize::from(n))
                        .map(|k| b.get(i + 9 + 3 * k).map(|f| f >> 4))
                        .try_fold(0u8, |m, f| f.map(|f| m.max(f)))
                        .map(|max_h| (n, max_h))
                });
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

/// The EXIF orientation of a JPEG whose headers are `headers` (no transform
/// when there is none or it cannot be read). Only the EXIF segment is
/// parsed (the `image` crate's TIFF tag reader); no JPEG decoder is run.
fn exif_orientation(bytes: &[u8], headers: &Headers) -> Orientation {
    headers
        .exif_tiff
        .and_then(|(a, b)| bytes.get(a..b))
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::ResizeMode;
    use crate::preprocess::InputGeometry;
    use image::ImageFormat;
    use std::io::Cursor;

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
    fn luma_is_decoded_at_the_smallest_scale_the_gate_allows_as_block_means() {
        let limits = DecodeLimits::default();
        let need = |_: u32, _: u32| (96, 72);
        let mut buf = Vec::new();
        for ((w, h), (lw, lh)) in [
            ((640, 480), (160, 120)),
            ((2048, 1536), (256, 192)),
            ((100, 75), (100, 75)),
        ] {
            let bytes = jpeg(w, h);
            let size = decode_luma(&bytes, &limits, &need, &mut buf)
                .unwrap()
                .unwrap();
            assert_eq!(
                size,
                LumaSize {
                    width: lw,
                    height: lh,
                    full_width: w,
                    full_height: h
                }
            );
            assert_eq!(buf.len(), (lw * lh) as usize);
            // Each sample is the mean luma of its block of the full decode.
            let rgb = decode(&bytes, &limits, &DecodeTarget::full(), Vec::new())
                .unwrap()
                .image;
            let k = w / lw;
            let mut worst = 0.0f64;
            for by in 0..lh {
                for bx in 0..lw {
                    let mut sum = 0.0;
                    for y in by * k..(by + 1) * k {
                        for x in bx * k..(bx + 1) * k {
                            let p = rgb.get_pixel(x, y).0;
                            sum += 0.299 * f64::from(p[0])
                                + 0.587 * f64::from(p[1])
                                + 0.114 * f64::from(p[2]);
                        }
                    }
                    let mean = sum / f64::from(k * k);
                    let got = f64::from(buf[(by * lw + bx) as usize]);
                    worst = worst.max((got - mean).abs());
                }
            }
            assert!(worst < 2.5, "{w}x{h}: worst |luma - block mean| {worst}");
        }
        // A warning (extraneous bytes before EOI, as some webcams send): the
        // RGB decode keeps libjpeg-turbo's pixels (the clean frame's), and
        // so does the luma.
        let clean = jpeg(640, 480);
        let mut warned = clean[..clean.len() - 2].to_vec();
        warned.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
        assert_eq!(
            decode(&warned, &limits, &DecodeTarget::full(), Vec::new())
                .unwrap()
                .image,
            decode(&clean, &limits, &DecodeTarget::full(), Vec::new())
                .unwrap()
                .image
        );
        let mut clean_luma = Vec::new();
        decode_luma(&clean, &limits, &need, &mut clean_luma)
            .unwrap()
            .unwrap();
        let size = decode_luma(&warned, &limits, &need, &mut buf)
            .unwrap()
            .unwrap();
        assert_eq!((size.width, size.height), (160, 120));
        assert_eq!(buf, clean_luma);
        // Not decodable as luma here: no luma (an error, which the caller
        // ignores: it decodes the frame as usual), and the next frame still works.
        assert!(!matches!(
            decode_luma(b"\xFF\xD8\xFF\xC0\x00\x11", &limits, &need, &mut buf),
            Ok(Some(_))
        ));
        assert!(decode_luma(&jpeg(640, 480), &limits, &need, &mut buf)
            .unwrap()
            .is_some());
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
            crop: false,
            ..DecodeTarget::model(crop224())
        };
        assert_eq!(snap(1280).denominator(8000, 6000), 4);
        assert_eq!(snap(2500).denominator(4000, 3000), 1);
        assert_eq!(DecodeTarget::full().denominator(8000, 6000), 1);
        // Without a model, the longest side alone.
        let side = |s| DecodeTarget {
            input: None,
            min_longest_side: s,
            crop: false,
        };
        assert_eq!(side(640).denominator(1280, 720), 2);
        assert_eq!(side(641).denominator(1280, 720), 1);
        assert_eq!(side(0).denominator(1280, 720), 8);
    }

    #[test]
    fn shrinks_in_the_dct_domain_and_matches_a_full_decode() {
        let j = jpeg(1280, 720);
        let limits = DecodeLimits::default();
        let full = decode(&j, &limits, &DecodeTarget::full(), Vec::new())
            .unwrap()
            .image;
        assert_eq!(full.dimensions(), (1280, 720));
        let half_side = DecodeTarget {
            input: None,
            min_longest_side: 640,
            crop: false,
        };
        let half = decode(&j, &limits, &half_side, Vec::new()).unwrap().image;
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

    /// A `w × h` photo-like pattern encoded by libjpeg-turbo with `subsamp`.
    fn tj_jpeg(w: u32, h: u32, subsamp: turbojpeg::Subsamp) -> Vec<u8> {
        tj_jpeg_with(w, h, subsamp, false)
    }

    /// As [`tj_jpeg`], progressive when asked.
    fn tj_jpeg_with(w: u32, h: u32, subsamp: turbojpeg::Subsamp, progressive: bool) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = |a: u32, b: u32| ((a * 7 + b * 13 + (a * b) % 97) % 256) as u8;
            image::Rgb([v(x, y), v(y, x / 2), v(x / 3, y / 5)])
        });
        let image = turbojpeg::Image {
            pixels: img.as_raw().as_slice(),
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        };
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(90).unwrap();
        c.set_subsamp(subsamp).unwrap();
        c.set_progressive(progressive).unwrap();
        c.compress_to_vec(image).unwrap()
    }

    /// Decodes `j` for a 224 centre crop, cropped and whole, and checks
    /// that the crop holds what the resize reads and equals the whole
    /// decode there.
    fn assert_crop_matches(j: &[u8], label: &str) {
        let limits = DecodeLimits::default();
        let g = crop224();
        let cropped = decode(j, &limits, &DecodeTarget::model(g), Vec::new()).unwrap();
        let whole_target = DecodeTarget {
            crop: false,
            ..DecodeTarget::model(g)
        };
        let whole = decode(j, &limits, &whole_target, Vec::new()).unwrap();
        assert_eq!(whole.window, Window::whole(&whole.image));
        // Into a larger buffer holding an earlier frame: the same pixels.
        let again = decode(
            j,
            &limits,
            &DecodeTarget::model(g),
            whole.image.as_raw().clone(),
        )
        .unwrap();
        assert_eq!(again.image, cropped.image);
        let win = cropped.window;
        let (fw, fh) = whole.image.dimensions();
        assert_eq!((win.full_width, win.full_height), (fw, fh), "{label}");
        let (cw, ch) = cropped.image.dimensions();
        assert!(u64::from(cw) * u64::from(ch) < u64::from(fw) * u64::from(fh));
        assert!(win.x + cw <= fw && win.y + ch <= fh);
        // It holds what the resize reads, and equals the whole decode
        // there (and everywhere but libjpeg's left and right edge columns).
        let (x0, y0, x1, y1) = g.read_region(fw, fh, 0).unwrap();
        assert!(win.x <= x0 && win.y <= y0 && win.x + cw >= x1 && win.y + ch >= y1);
        let (xs, xe) = (
            if win.x > 0 { 1 } else { 0 },
            if win.x + cw < fw { cw - 1 } else { cw },
        );
        for y in 0..ch {
            for x in xs..xe {
                assert_eq!(
                    cropped.image.get_pixel(x, y),
                    whole.image.get_pixel(win.x + x, win.y + y),
                    "{label} at ({x}, {y}) of the crop {win:?}"
                );
            }
        }
    }

    /// A photo-like `w × h` JPEG from libjpeg-turbo with `subsamp`
    /// (`TJSAMP_*`) and a restart marker every `rows` MCU rows
    /// (`TJPARAM_RESTARTROWS`), which the `turbojpeg` crate cannot set.
    fn tj_jpeg_restart(w: u32, h: u32, subsamp: raw::TJSAMP, rows: c_int) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = |a: u32, b: u32| ((a * 7 + b * 13 + (a * b) % 97) % 256) as u8;
            image::Rgb([v(x, y), v(y, x / 2), v(x / 3, y / 5)])
        });
        // SAFETY: a compressor handle used and destroyed here; the source
        // is `h` rows of `w` RGB8 pixels; TurboJPEG allocates the output,
        // which is copied and freed with tj3Free.
        unsafe {
            let tj = raw::tj3Init(raw::TJINIT_TJINIT_COMPRESS as c_int);
            assert!(!tj.is_null());
            for (p, v) in [
                (raw::TJPARAM_TJPARAM_QUALITY, 90),
                (raw::TJPARAM_TJPARAM_SUBSAMP, subsamp as c_int),
                (raw::TJPARAM_TJPARAM_RESTARTROWS, rows),
            ] {
                assert_eq!(raw::tj3Set(tj, p as c_int, v), 0);
            }
            let mut out: *mut u8 = std::ptr::null_mut();
            let mut len: raw::size_t = 0;
            let r = raw::tj3Compress8(
                tj,
                img.as_raw().as_ptr(),
                w as c_int,
                (w * 3) as c_int,
                h as c_int,
                raw::TJPF_TJPF_RGB as c_int,
                &mut out,
                &mut len,
            );
            assert_eq!(r, 0);
            let bytes = std::slice::from_raw_parts(out, len as usize).to_vec();
            raw::tj3Free(out.cast());
            raw::tj3Destroy(tj);
            bytes
        }
    }

    #[test]
    fn cropped_decodes_with_restart_markers_match_the_whole_frame() {
        for (w, h, subsamp, rows) in [
            (640, 480, raw::TJSAMP_TJSAMP_422, 1),
            (1280, 720, raw::TJSAMP_TJSAMP_420, 2),
            (4000, 3000, raw::TJSAMP_TJSAMP_420, 1),
        ] {
            let j = tj_jpeg_restart(w, h, subsamp, rows);
            // The markers are there: DRI, and RST0 in the scan.
            assert!(j.windows(2).any(|m| m == [0xFF, 0xDD]), "no DRI");
            assert!(j.windows(2).any(|m| m == [0xFF, 0xD0]), "no RST0");
            assert_crop_matches(
                &j,
                &format!("{w}×{h} TJSAMP {subsamp}, restart every {rows} MCU row(s)"),
            );
            // The gate's luma decode reads them too.
            let mut buf = Vec::new();
            let size = decode_luma(&j, &DecodeLimits::default(), &|_, _| (96, 72), &mut buf)
                .unwrap()
                .unwrap();
            assert_eq!((size.full_width, size.full_height), (w, h));
        }
    }

    #[test]
    fn cropped_decodes_match_the_whole_frame_where_the_model_reads() {
        use turbojpeg::Subsamp;
        let limits = DecodeLimits::default();
        let g = crop224();
        for (w, h, subsamp, progressive) in [
            (640, 480, Subsamp::Sub2x1, false),
            (640, 480, Subsamp::Sub2x2, false),
            (1280, 720, Subsamp::None, false),
            (481, 643, Subsamp::Sub2x2, false),
            (1920, 1080, Subsamp::Gray, false),
            (640, 480, Subsamp::Sub1x2, false),
            (640, 480, Subsamp::Sub4x1, false),
            (640, 480, Subsamp::Sub2x1, true),
            (1280, 720, Subsamp::Sub2x2, true),
            // Shrunk by 1/2 first (4000×3000 → 2000×1500), then cropped.
            (4000, 3000, Subsamp::Sub2x2, false),
            (4000, 3000, Subsamp::Sub2x1, false),
            (4000, 3000, Subsamp::Sub1x2, true),
        ] {
            let j = tj_jpeg_with(w, h, subsamp, progressive);
            assert_crop_matches(&j, &format!("{w}×{h} {subsamp:?}"));
        }
        // Letterbox and squash read the whole frame: no crop.
        let j = tj_jpeg(640, 480, Subsamp::Sub2x1);
        for mode in [ResizeMode::Letterbox, ResizeMode::Squash] {
            let t = DecodeTarget::model(InputGeometry { mode, ..g });
            let d = decode(&j, &limits, &t, Vec::new()).unwrap();
            assert_eq!(d.window, Window::whole(&d.image));
            assert_eq!(d.image.dimensions(), (640, 480));
        }
    }

    #[test]
    fn crop_alignment_follows_libjpeg_and_turbojpeg() {
        use raw::{TJSAMP_TJSAMP_411, TJSAMP_TJSAMP_420, TJSAMP_TJSAMP_444, TJSAMP_TJSAMP_GRAY};
        let s = |v: raw::TJSAMP| v as c_int;
        assert_eq!(
            crop_alignment(Some((3, 2)), s(TJSAMP_TJSAMP_420), 1),
            Some(16)
        );
        assert_eq!(
            crop_alignment(Some((3, 2)), s(TJSAMP_TJSAMP_420), 8),
            Some(2)
        );
        assert_eq!(
            crop_alignment(Some((3, 1)), s(TJSAMP_TJSAMP_444), 1),
            Some(8)
        );
        assert_eq!(
            crop_alignment(Some((1, 1)), s(TJSAMP_TJSAMP_GRAY), 2),
            Some(4)
        );
        assert_eq!(
            crop_alignment(Some((3, 4)), s(TJSAMP_TJSAMP_411), 1),
            Some(32)
        );
        // Every component 2×1: TurboJPEG says 4:4:4 (8), libjpeg aligns to 16.
        assert_eq!(
            crop_alignment(Some((3, 2)), s(TJSAMP_TJSAMP_444), 1),
            Some(16)
        );
        // Unknown subsampling or no frame header: no crop.
        assert_eq!(crop_alignment(Some((3, 2)), -1, 1), None);
        assert_eq!(crop_alignment(None, s(TJSAMP_TJSAMP_420), 1), None);
        assert_eq!(crop_alignment(Some((3, 0)), s(TJSAMP_TJSAMP_444), 1), None);
    }

    #[test]
    fn a_failed_header_does_not_break_later_frames() {
        // A frame header with a sampling factor of 0 (`0x01`): libjpeg fails
        // in the middle of reading the header.
        let good = tj_jpeg(64, 48, turbojpeg::Subsamp::Sub2x2);
        let mut bad = good.clone();
        let sof = bad
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline frame header");
        bad[sof + 2 + 2 + 6 + 1] = 0x01;
        let limits = DecodeLimits::default();
        let t = DecodeTarget::full();
        let e = decode(&bad, &limits, &t, Vec::new()).unwrap_err();
        assert_eq!(e.reason(), "corrupt", "{e}");
        let d = decode(&good, &limits, &t, Vec::new());
        assert!(
            d.is_ok(),
            "libjpeg-turbo refuses good frames after a bad header: {d:?}"
        );
    }

    #[test]
    fn odd_sizes_round_up() {
        let j = jpeg(1281, 723);
        let target = DecodeTarget {
            input: None,
            min_longest_side: 641,
            crop: false,
        };
        let got = decode(&j, &DecodeLimits::default(), &target, Vec::new()).unwrap();
        assert_eq!(got.image.dimensions(), (641, 362));
        assert_eq!(got.window, Window::whole(&got.image));
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
                exif_tiff: Some((12, 14)),
                first_scan_interleaved: true,
                sampling: Some((3, 1)),
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
    fn garbage_is_corrupt_with_libjpeg_turbos_message() {
        let limits = DecodeLimits::default();
        let t = DecodeTarget::full();
        let e = decode(b"\xFF\xD8\xFF\xE0garbage", &limits, &t, Vec::new()).unwrap_err();
        assert_eq!(e.reason(), "corrupt");
        assert!(!e.to_string().contains("tj3"), "{e}");
        // Cut inside the entropy-coded data (the marker walk of
        // `check_jpeg_complete` refuses such a file before it gets here):
        // libjpeg-turbo warns and fills the rest; the pixels are kept.
        let j = jpeg(64, 48);
        let sos = j.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let d = decode(&j[..sos + 40], &limits, &t, Vec::new()).unwrap();
        assert_eq!(d.image.dimensions(), (64, 48));
        // Cut inside the headers: no frame header, corrupt.
        let e = decode(&j[..sos - 10], &limits, &t, Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt image: Invalid JPEG file structure: missing SOS marker"
        );
    }

    #[test]
    fn cmyk_converts_as_pillow_and_exif_orientation_needs_no_decoder() {
        // Adobe's inverted CMYK: stored (255, 0, 0, 255) is C=0 M=255 Y=255
        // K=0, red; stored k = 0 is black whatever c, m, y.
        assert_eq!(
            cmyk_to_rgb(&[255, 0, 0, 255, 10, 20, 30, 0, 255, 255, 255, 128]),
            vec![255, 0, 0, 0, 0, 0, 128, 128, 128]
        );
        // A big-endian TIFF with one IFD entry: Orientation (0x0112) = 6.
        let tiff = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0,
            0, 0, 0,
        ];
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1];
        j.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
        j.extend(b"Exif\0\0");
        j.extend(tiff);
        j.extend(&jpeg(8, 8)[2..]);
        assert_eq!(
            exif_orientation(&j, &walk_headers(&j)),
            Orientation::Rotate90
        );
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let j = jpeg(64, 48);
        let small = DecodeLimits {
            max_dimension: 32,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode(&j, &small, &DecodeTarget::full(), Vec::new())
                .unwrap_err()
                .reason(),
            "too_large"
        );
        let tight = DecodeLimits {
            max_alloc_bytes: 64 * 48 * 3 - 1,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode(&j, &tight, &DecodeTarget::full(), Vec::new())
                .unwrap_err()
                .reason(),
            "too_large"
        );
    }
}
