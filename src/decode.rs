//! Decoding image bytes into the RGB8 frames the pipeline works on, without
//! ever panicking on hostile input.
//!
//! * Every colour type becomes RGB8: greyscale (infrared night frames),
//!   grey+alpha, RGBA (alpha dropped), 16-bit and float images (scaled to
//!   8 bits), CMYK JPEGs (converted by the decoder).
//! * EXIF orientation is applied to stills, so a portrait photo is upright.
//! * Limits: file size, width, height and decoder memory are capped
//!   ([`DecodeLimits`]); an image whose header claims 100000×100000 pixels is
//!   refused before any pixel memory is allocated.
//! * JPEGs are decoded with libjpeg-turbo ([`jpeg`]); for a frame bound for
//!   the model only, shrunk in the DCT domain (1/2, 1/4 or 1/8) as far as
//!   [`DecodeTarget`] allows, and cropped to the part a centre-crop model
//!   samples when nothing else needs the rest ([`DecodeTarget::crop`],
//!   [`Window`]). libjpeg-turbo is the only JPEG decoder: a JPEG it refuses
//!   is corrupt, and is never handed to another decoder (the `image`
//!   crate's zune-jpeg panics on some of them).
//! * Other formats go to the `image` crate's decoders. A panic in one costs
//!   one frame ([`DecodeError::Corrupt`], "the PNG decoder failed on this
//!   data"); with [`quiet_decoder_panics`] (the daemon calls it) no panic
//!   message reaches stderr, only the frame's one log line.
//! * Truncated JPEGs are detected by walking the marker segments up to the
//!   end-of-image marker (EOI, ITU-T T.81 B.1.1.2), because decoders may return
//!   a grey-filled image for a truncated file.

// Parses bytes from outside: no indexing or slicing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use serde::Deserialize;

use crate::preprocess::InputGeometry;

pub mod jpeg;

/// How much larger than the model's input the region it samples must stay
/// after a DCT shrink, per axis: the preprocessing's antialiased bilinear
/// resize then still shrinks by 4× or more, and the model sees what a full
/// decode gives. The low-pass of a DCT shrink is sharper than the bilinear
/// (triangle) filter models are trained with, so a smaller margin changes
/// the scores. Measured with `scripts/decode_fidelity.py` (onnxruntime on
/// PIL full-size decodes, fp32 EfficientNet-Lite0; mean / max |top-1 score
/// difference|, top-1 agreement): on the 47 photos of `../shared/data` of
/// 1000 px or more, no shrink 0.0042 / 0.022, 95.7 %; margin 2 0.014 / 0.21;
/// margin 1 0.033 / 0.21, 83.0 %. On the 30 camera-trap photos alone:
/// margin 4 0.0044 / 0.022 (as without shrinking), margin 3 0.011 / 0.044,
/// margin 2 0.011 / 0.044.
/// Few of those photos shrink at margin 4 (4 of the 47, 2 of the 30), so the
/// evidence for it is thin but consistent. For a 224×224 centre crop, only
/// large stills shrink (a 4000×3000 trail-camera photo decodes at
/// 2000×1500) and camera frames up to 1920×1080 are decoded whole; a
/// letterbox model, which samples the whole frame, lets 1920×1080 decode at
/// 960×540.
pub const MODEL_MARGIN: f64 = 4.0;

/// The margin in use: [`MODEL_MARGIN`], or for comparisons
/// `CAMTRAPD_JPEG_SHRINK_MARGIN` (≥ 1), or infinity (never shrink) with
/// `CAMTRAPD_NO_JPEG_SHRINK=1`. Read once per process.
pub fn shrink_margin() -> f64 {
    static MARGIN: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *MARGIN.get_or_init(|| {
        if std::env::var_os("CAMTRAPD_NO_JPEG_SHRINK").is_some_and(|v| v == "1") {
            return f64::INFINITY;
        }
        std::env::var("CAMTRAPD_JPEG_SHRINK_MARGIN")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|m| *m >= 1.0)
            .unwrap_or(MODEL_MARGIN)
    })
}

/// Whether `DecodeTarget::crop` is honoured: `CAMTRAPD_NO_JPEG_CROP=1`
/// turns cropping off for comparisons. Read once per process.
pub fn crop_enabled() -> bool {
    static CROP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CROP.get_or_init(|| std::env::var_os("CAMTRAPD_NO_JPEG_CROP").is_none_or(|v| v != "1"))
}

/// Whether the motion gate may read a JPEG's luma alone ([`decode_luma`]):
/// `CAMTRAPD_GATE_ON_RGB=1` makes it read the whole decoded RGB frame
/// instead, as before it could, for comparisons. Read once per process.
pub fn gate_luma_enabled() -> bool {
    static LUMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LUMA.get_or_init(|| std::env::var_os("CAMTRAPD_GATE_ON_RGB").is_none_or(|v| v != "1"))
}

/// Where a decoded image lies in the whole frame it was decoded from (after
/// DCT scaling and EXIF orientation): `image` is the `width × height` part
/// of a `full_width × full_height` frame whose top-left pixel is at
/// (`x`, `y`). A frame decoded whole has `x = y = 0` and the full size of
/// the image itself ([`Window::whole`]). The preprocessing computes a centre
/// crop from the full size, so a cropped decode gives the model the same
/// pixels as a whole one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Left edge of the image in the full frame, pixels.
    pub x: u32,
    /// Top edge of the image in the full frame, pixels.
    pub y: u32,
    /// Width of the full frame, pixels.
    pub full_width: u32,
    /// Height of the full frame, pixels.
    pub full_height: u32,
}

impl Window {
    /// The window of an image that is the whole frame.
    pub fn whole(image: &RgbImage) -> Window {
        Window {
            x: 0,
            y: 0,
            full_width: image.width(),
            full_height: image.height(),
        }
    }
}

/// A decoded image and where it lies in the frame ([`Window`]).
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels, RGB8.
    pub image: RgbImage,
    /// Where `image` lies in the whole frame.
    pub window: Window,
}

impl Decoded {
    /// A decoded image that is the whole frame.
    pub fn whole(image: RgbImage) -> Decoded {
        Decoded {
            window: Window::whole(&image),
            image,
        }
    }
}

/// What a decoded frame is needed for, which bounds how far a JPEG may be
/// shrunk while it is decoded (DCT scaling, libjpeg's
/// `scale_denom`: 1/2, 1/4 or 1/8, far cheaper than decoding every pixel and
/// resizing afterwards).
///
/// The decoded frame keeps at least [`MODEL_MARGIN`] times the pixels the
/// model's preprocessing samples, per axis ([`InputGeometry::is_covered_by`])
/// and a longest side of at least
/// `min_longest_side` pixels (or the original's, if smaller), e.g. the
/// snapshot size. With `crop`, only the part of the frame a centre-crop
/// model samples is decoded (libjpeg-turbo's partial decompression,
/// `jpeg_crop_scanline` and `jpeg_skip_scanlines`). [`DecodeTarget::full`]
/// (the default) decodes every pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeTarget {
    /// The model input the frame is for; `None`: no bound from a model.
    pub input: Option<InputGeometry>,
    /// Smallest longest side in pixels (0: none; `u32::MAX`: full size).
    pub min_longest_side: u32,
    /// Only the model needs the frame (no snapshot; the motion gate reads
    /// the frame before it is decoded, see
    /// [`crate::source::FrameSource::next_event_gated`]): a JPEG may be
    /// decoded only where `input`'s centre crop and the resize
    /// filter read ([`InputGeometry::read_region`]), which the returned
    /// [`Window`] says. On an undamaged JPEG this changes no pixel the model
    /// sees (libjpeg-turbo's cropped output equals the full decode away from
    /// the crop's left and right edges, which the region keeps clear of).
    /// On a damaged one it can: libjpeg-turbo never reads the rows below the
    /// crop, so damage there, or damage it only notices at the end of the
    /// scan ("extraneous bytes before marker"), raises no warning, and the
    /// frame keeps libjpeg-turbo's pixels (Pillow's) where a whole decode
    /// would also keep them, but log the warning. Ignored without
    /// `input`, for squash and letterbox models (they sample the whole
    /// frame), for EXIF-rotated photos, and with `CAMTRAPD_NO_JPEG_CROP=1`.
    pub crop: bool,
}

impl Default for DecodeTarget {
    fn default() -> Self {
        DecodeTarget::full()
    }
}

impl DecodeTarget {
    /// Every pixel (no DCT scaling).
    pub const fn full() -> DecodeTarget {
        DecodeTarget {
            input: None,
            min_longest_side: u32::MAX,
            crop: false,
        }
    }

    /// Just what the model's input needs (shrunk and cropped as far as it allows).
    pub const fn model(input: InputGeometry) -> DecodeTarget {
        DecodeTarget {
            input: Some(input),
            min_longest_side: 0,
            crop: true,
        }
    }

    /// The largest DCT scaling denominator (1, 2, 4 or 8) at which a
    /// `width × height` image (as displayed, after EXIF orientation) still
    /// meets this target. The scaled size is `ceil(width / d) × ceil(height / d)`.
    ///
    /// For comparisons, the environment variable `CAMTRAPD_NO_JPEG_SHRINK=1`
    /// makes it always 1, and `CAMTRAPD_JPEG_SHRINK_MARGIN` (≥ 1) replaces
    /// [`MODEL_MARGIN`].
    pub fn denominator(&self, width: u32, height: u32) -> u32 {
        let margin = shrink_margin();
        if margin.is_infinite() {
            return 1;
        }
        let longest = width.max(height);
        for d in [8u32, 4, 2] {
            let (w, h) = (width.div_ceil(d), height.div_ceil(d));
            let model_ok = self.input.is_none_or(|g| g.is_covered_by(w, h, margin));
            if model_ok && w.max(h) >= self.min_longest_side.min(longest) && w.min(h) >= 1 {
                return d;
            }
        }
        1
    }
}

/// Size limits applied before and while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes (default 64 MiB).
    pub max_file_bytes: u64,
    /// Largest accepted width and height, in pixels (default 16384).
    pub max_dimension: u32,
    /// Largest memory for one decoded image (the RGB8 output, plus the
    /// decoder's own buffers where they are known: a progressive JPEG's
    /// coefficients, another decoder's output before RGB8 conversion), in
    /// bytes (default 512 MiB: about 85 megapixels of RGB).
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 64 << 20,
            max_dimension: 16384,
            max_alloc_bytes: 512 << 20,
        }
    }
}

/// Why a file or buffer could not become a frame.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Reading the file failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The file is empty.
    #[error("empty file (0 bytes)")]
    Empty,
    /// The file is larger than [`DecodeLimits::max_file_bytes`].
    #[error("file is {size} bytes, over the limit of {limit} bytes (limits.max_file_bytes)")]
    FileTooLarge {
        /// File size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The bytes are not an image format we decode.
    #[error("not a supported image (JPEG, PNG, BMP, TIFF, WebP, GIF)")]
    UnknownFormat,
    /// A JPEG ends before its end-of-image marker.
    #[error("truncated JPEG: {0}")]
    TruncatedJpeg(&'static str),
    /// The header claims more pixels than allowed.
    #[error("image is {width}×{height} pixels, over the limit of {limit} pixels per side (limits.max_dimension)")]
    TooLarge {
        /// Claimed width in pixels.
        width: u32,
        /// Claimed height in pixels.
        height: u32,
        /// The per-side limit in pixels.
        limit: u32,
    },
    /// Decoding would exceed [`DecodeLimits`] (size or memory).
    #[error("{0}")]
    OverLimits(String),
    /// The decoder rejected the data.
    #[error("corrupt image: {0}")]
    Corrupt(String),
}

impl DecodeError {
    /// Short, stable reason name for counters (`unreadable.<reason>`).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Io(_) => "io",
            DecodeError::Empty => "empty",
            DecodeError::FileTooLarge { .. }
            | DecodeError::TooLarge { .. }
            | DecodeError::OverLimits(_) => "too_large",
            DecodeError::UnknownFormat => "unknown_format",
            DecodeError::TruncatedJpeg(_) => "truncated",
            DecodeError::Corrupt(_) => "corrupt",
        }
    }
}

/// Reads and decodes the file at `path` into RGB8 (see the module docs).
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    decode_file_for(path, limits, &DecodeTarget::full()).map(|d| d.image)
}

/// Reads and decodes the file at `path` into RGB8, a JPEG shrunk and cropped
/// while decoding as far as `target` allows (see the module docs).
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_file_for(
    path: &Path,
    limits: &DecodeLimits,
    target: &DecodeTarget,
) -> Result<Decoded, DecodeError> {
    let bytes = read_file(path, limits)?;
    decode_bytes_for(&bytes, limits, target)
}

/// Decodes only the luma of a JPEG, shrunk by DCT scaling as far as
/// `need(width, height)` (pixels per axis) allows, into `buf`: what the
/// motion gate reads ([`jpeg::decode_luma`]). `None` for anything else (not
/// a JPEG, truncated, over `limits`, damaged, EXIF-rotated, CMYK, ...): the
/// caller decodes the frame as usual, which reports what is wrong with it.
/// Always `None` with `CAMTRAPD_GATE_ON_RGB=1` ([`gate_luma_enabled`]).
pub fn decode_luma(
    bytes: &[u8],
    limits: &DecodeLimits,
    need: &dyn Fn(u32, u32) -> (u32, u32),
    buf: &mut Vec<u8>,
) -> Option<jpeg::LumaSize> {
    if !gate_luma_enabled()
        || bytes.len() as u64 > limits.max_file_bytes
        || !bytes.starts_with(&[0xFF, 0xD8])
        || check_jpeg_complete(bytes).is_err()
    {
        return None;
    }
    jpeg::decode_luma(bytes, limits, need, buf).ok().flatten()
}

/// Reads the file at `path`, at most `limits.max_file_bytes`.
///
/// # Errors
/// [`DecodeError::FileTooLarge`], or the I/O error.
pub fn read_file(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    let size = std::fs::metadata(path)?.len();
    if size > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge {
            size,
            limit: limits.max_file_bytes,
        });
    }
    // Read at most one byte over the limit: a file still being written may grow.
    let mut bytes = Vec::with_capacity(size.min(limits.max_file_bytes) as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path)?, limits.max_file_bytes + 1),
        &mut bytes,
    )?;
    Ok(bytes)
}

/// Decodes an encoded image held in memory into RGB8, every pixel (see the
/// module docs).
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    decode_bytes_for(bytes, limits, &DecodeTarget::full()).map(|d| d.image)
}

/// Decodes an encoded image held in memory into RGB8, a JPEG shrunk and
/// cropped while decoding as far as `target` allows (see the module docs);
/// the [`Window`] says where the image lies in the whole frame.
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_bytes_for(
    bytes: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
) -> Result<Decoded, DecodeError> {
    decode_bytes_into(bytes, limits, target, Vec::new())
}

/// As [`decode_bytes_for`], decoding a JPEG into `buf` (a buffer of an
/// earlier frame of the same size: no allocation and no zeroing per frame;
/// sources get it back through [`crate::source::FrameSource::recycle`]).
///
/// # Errors
/// Any [`DecodeError`]; never panics.
pub fn decode_bytes_into(
    bytes: &[u8],
    limits: &DecodeLimits,
    target: &DecodeTarget,
    buf: Vec<u8>,
) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes)?;
        // libjpeg-turbo only: what it refuses is corrupt (module docs).
        return jpeg::decode(bytes, limits, target, buf);
    }
    if format == ImageFormat::Png {
        check_png_palette(bytes)?;
    }
    // The `image` crate's decoders are third-party code fed with hostile
    // bytes: a panic in one must cost one frame, not the daemon.
    DECODER_PANIC.with(|p| p.borrow_mut().take());
    IN_DECODER.with(|f| f.set(true));
    let result =
        std::panic::catch_unwind(|| decode_inner(bytes, format, limits).map(Decoded::whole));
    IN_DECODER.with(|f| f.set(false));
    match result {
        Ok(r) => r,
        Err(_) => {
            let what = DECODER_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "a panic".into());
            Err(DecodeError::Corrupt(format!(
                "the {} decoder failed on this data ({what}; a bug in the image crate's decoder)",
                format_name(format)
            )))
        }
    }
}

/// A format's usual name, for messages.
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Jpeg => "JPEG",
        _ => "image",
    }
}

thread_local! {
    /// Set while this thread runs an `image` crate decoder
    /// ([`decode_bytes_into`]).
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The message and place of a decoder panic on this thread, recorded by
    /// the hook of [`quiet_decoder_panics`].
    static DECODER_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs a panic hook (once per process) that keeps panics inside the
/// `image` crate's decoders off stderr: their message and place go into the
/// frame's [`DecodeError::Corrupt`] instead, which the daemon logs as one
/// line. Every other panic goes to the hook that was there before. The
/// daemon calls it at start-up; tests and fuzzing do not, so a decoder
/// panic stays visible to them (libFuzzer stops on it).
pub fn quiet_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_DECODER.with(|f| f.get()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                DECODER_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

fn decode_inner(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    // Header first, so an oversized image is reported with its size before any pixel memory exists.
    let be = |i: usize| {
        bytes
            .get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    };
    let png_ihdr = (bytes.get(12..16) == Some(b"IHDR".as_slice()))
        .then(|| be(16).zip(be(20)))
        .flatten();
    let (width, height) = if let (ImageFormat::Png, Some(size)) = (format, png_ihdr) {
        // The png crate refuses huge images before telling their size: read IHDR directly.
        size
    } else {
        let mut header = ImageReader::with_format(Cursor::new(bytes), format);
        header.no_limits();
        header
            .into_dimensions()
            .map_err(|e| map_image_error(e, limits))?
    };
    check_dimensions(width, height, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_dimension);
    l.max_image_height = Some(limits.max_dimension);
    l.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(l);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, limits))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!(
            "image has zero size {width}×{height}"
        )));
    }
    // The decoded pixels plus the RGB8 copy must fit the memory budget; not
    // every decoder honours image::Limits::max_alloc, so check it here.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let rgb = (u64::from(width) * u64::from(height)).saturating_mul(3);
    // A rotation from EXIF orientation makes one more full copy.
    let copies = if orientation == image::metadata::Orientation::NoTransforms {
        1
    } else {
        2
    };
    let need = decoder
        .total_bytes()
        .saturating_add(rgb.saturating_mul(copies));
    check_memory(width, height, need, limits)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, limits))?;
    img.apply_orientation(orientation);
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// [`DecodeError::TooLarge`] when a side is over [`DecodeLimits::max_dimension`].
pub(crate) fn check_dimensions(
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: limits.max_dimension,
        });
    }
    Ok(())
}

/// [`DecodeError::OverLimits`] when decoding the `width × height` image needs
/// `need` bytes, over [`DecodeLimits::max_alloc_bytes`].
pub(crate) fn check_memory(
    width: u32,
    height: u32,
    need: u64,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    if need > limits.max_alloc_bytes {
        return Err(DecodeError::OverLimits(format!(
            "decoding this {width}×{height} image needs {} MiB, over limits.max_alloc_bytes ({} MiB)",
            need >> 20,
            limits.max_alloc_bytes >> 20
        )));
    }
    Ok(())
}

fn map_image_error(e: image::ImageError, limits: &DecodeLimits) -> DecodeError {
    match e {
        image::ImageError::Limits(l) => DecodeError::OverLimits(format!(
            "over the decoding limits ({l}); raise limits.max_dimension (now {}) or limits.max_alloc_bytes (now {}) if this image is legitimate",
            limits.max_dimension, limits.max_alloc_bytes
        )),
        image::ImageError::Unsupported(u) => DecodeError::Corrupt(format!("unsupported: {u}")),
        image::ImageError::IoError(io) => DecodeError::Corrupt(format!("truncated or unreadable data: {io}")),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// Refuses a PNG whose palette (`PLTE` chunk) does not hold whole RGB
/// entries: its length must be a multiple of 3, from 3 to 768 bytes (PNG
/// spec, W3C 2003, 11.2.3). The png crate 0.18.1 checks only the range and
/// then panics expanding such a palette (image-rs/image-png#694, fixed in
/// its repository but not released); camtrapd refuses it first, so no
/// frame reaches that panic.
///
/// Walks the chunks from the 8-byte signature (4-byte big-endian length,
/// 4-byte type, data, 4-byte CRC) up to the first `IDAT`, after which a
/// palette may not come, or the end of the data. A walk that runs past the
/// end is left to the decoder, which reports it as corrupt.
///
/// # Errors
/// [`DecodeError::Corrupt`] naming the palette's length.
pub fn check_png_palette(b: &[u8]) -> Result<(), DecodeError> {
    let mut i: usize = 8;
    while let Some(head) = b.get(i..i.saturating_add(8)) {
        let (len, kind) = head.split_at(4);
        let Ok(len) = <[u8; 4]>::try_from(len).map(u32::from_be_bytes) else {
            break;
        };
        match kind {
            b"IDAT" => return Ok(()),
            b"PLTE" if len == 0 || len % 3 != 0 || len > 768 => {
                return Err(DecodeError::Corrupt(format!(
                    "PNG palette (PLTE chunk) of {len} bytes: a palette holds whole RGB entries, \
                     3 to 768 bytes in steps of 3"
                )));
            }
            _ => {}
        }
        // Length, type, data, CRC.
        i = i.saturating_add(12).saturating_add(len as usize);
    }
    Ok(())
}

/// Checks that a JPEG's marker structure reaches the end-of-image marker.
///
/// Walks the segments from SOI: length-prefixed segments are skipped by
/// their length; after a start-of-scan (SOS) the entropy-coded data is
/// scanned for the next marker (`FF` followed by a byte other than `00`
/// stuffing or `D0..D7` restart markers), as ITU-T T.81 B.1.1 defines.
///
/// # Errors
/// [`DecodeError::TruncatedJpeg`] when the data ends before EOI or a segment
/// runs past the end of the data.
pub fn check_jpeg_complete(b: &[u8]) -> Result<(), DecodeError> {
    /// Index of the next 0xFF byte at or after `i` (`b.len()` if none),
    /// with `memchr`'s SIMD search: the scan data is most of the file.
    fn next_ff(b: &[u8], i: usize) -> usize {
        b.get(i..)
            .and_then(|rest| memchr::memchr(0xFF, rest))
            .map_or(b.len().max(i), |k| i + k)
    }
    let at = |i: usize| b.get(i).copied();
    if b.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(DecodeError::TruncatedJpeg("no start-of-image marker"));
    }
    let mut i = 2;
    loop {
        // Find the next marker (skip fill bytes 0xFF); tolerate garbage
        // between segments, as decoders do.
        i = next_ff(b, i);
        while at(i) == Some(0xFF) {
            i += 1;
        }
        let Some(marker) = at(i) else {
            return Err(DecodeError::TruncatedJpeg(
                "data ends before the end-of-image marker",
            ));
        };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Stand-alone markers without a length (T.81 Table B.1): RSTm, SOI, TEM.
            0xD0..=0xD8 | 0x01 => continue,
            _ => {}
        }
        let (Some(hi), Some(lo)) = (at(i), at(i + 1)) else {
            return Err(DecodeError::TruncatedJpeg(
                "data ends inside a segment header",
            ));
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 2 || i + len > b.len() {
            return Err(DecodeError::TruncatedJpeg(
                "a segment runs past the end of the data",
            ));
        }
        i += len;
        if marker == 0xDA {
            // Entropy-coded data until the next real marker.
            loop {
                i = next_ff(b, i);
                match at(i + 1) {
                    None => {
                        return Err(DecodeError::TruncatedJpeg(
                            "data ends inside the compressed image data",
                        ))
                    }
                    Some(0xFF) => i += 1,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn complete_jpeg_passes_marker_walk() {
        let j = jpeg(40, 30);
        check_jpeg_complete(&j).unwrap();
        let img = decode_bytes(&j, &DecodeLimits::default()).unwrap();
        assert_eq!(img.dimensions(), (40, 30));
    }

    #[test]
    fn truncated_jpeg_is_refused_at_every_cut() {
        let j = jpeg(64, 48);
        for cut in [3, 20, j.len() / 3, j.len() / 2, j.len() - 2] {
            let e = decode_bytes(&j[..cut], &DecodeLimits::default()).unwrap_err();
            assert_eq!(e.reason(), "truncated", "cut at {cut}: {e}");
        }
    }

    /// SOI, an APP1 segment whose payload holds an embedded thumbnail's EOI,
    /// then `scans` scans whose data uses byte stuffing, a restart marker and
    /// fill bytes; EOI if `eoi`.
    fn jpeg_bytes(scans: usize, eoi: bool) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        b.extend([0xFF, 0xE1, 0x00, 0x08, 0xFF, 0xD8, 0x00, 0xFF, 0xD9, 0x00]);
        for _ in 0..scans {
            b.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]);
            b.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0x78]);
            b.extend([0xFF, 0xFF]); // fill bytes before the next marker
        }
        if eoi {
            b.extend([0xFF, 0xD9]);
        }
        b
    }

    #[test]
    fn marker_walk_follows_t81() {
        check_jpeg_complete(&jpeg_bytes(1, true)).unwrap();
        check_jpeg_complete(&jpeg_bytes(3, true)).unwrap(); // progressive: several scans
                                                            // The EOI inside APP1 and the RST/stuffed bytes inside the scan do not end the image.
        assert!(check_jpeg_complete(&jpeg_bytes(1, false)).is_err());
        assert!(check_jpeg_complete(&jpeg_bytes(0, false)).is_err());
        // A repeated SOI is a stand-alone marker, not a segment with a length.
        let mut double = vec![0xFF, 0xD8];
        double.extend(jpeg_bytes(1, true));
        check_jpeg_complete(&double).unwrap();
        // A segment length running past the end.
        assert!(check_jpeg_complete(&[0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0x00, 1, 2]).is_err());
        assert!(check_jpeg_complete(&[0xFF]).is_err());
    }

    #[test]
    fn memory_budget_is_enforced() {
        // 64×48 RGB: libjpeg-turbo writes the 9216 bytes of RGB8 directly.
        let j = jpeg(64, 48);
        let tight = DecodeLimits {
            max_alloc_bytes: 9_215,
            ..DecodeLimits::default()
        };
        let e = decode_bytes(&j, &tight).unwrap_err();
        assert_eq!(e.reason(), "too_large", "{e}");
        assert!(e.to_string().contains("64×48"), "{e}");
        let enough = DecodeLimits {
            max_alloc_bytes: 9_216,
            ..DecodeLimits::default()
        };
        assert!(decode_bytes(&j, &enough).is_ok());
    }

    /// A PNG with its chunks: (type, data), CRCs computed.
    fn png_with(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in chunks {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = crc32fast::Hasher::new();
            crc.update(*kind);
            crc.update(data);
            out.extend_from_slice(*kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.finalize().to_be_bytes());
        }
        out
    }

    /// The 8×8 palette PNG with a 7-byte PLTE that made the png crate
    /// 0.18.1 panic while fuzzing (`palette.rs:74`, "range end index 3 out
    /// of range for slice of length 1"), and the same image with whole
    /// palettes of 2 and 3 entries.
    #[test]
    fn png_palette_of_partial_entries_is_refused_before_the_decoder() {
        // IHDR: 8×8, bit depth 1, colour type 3 (palette).
        let ihdr = [0, 0, 0, 8, 0, 0, 0, 8, 1, 3, 0, 0, 0];
        // Eight rows of filter byte 0 + one byte of 1-bit indices (zlib stream).
        let idat = {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&[0, 0b1010_1010].repeat(8)).unwrap();
            z.finish().unwrap()
        };
        let limits = DecodeLimits::default();
        for (palette, ok) in [
            (&[255u8, 255, 255, 255, 10, 200, 30][..], false),
            (&[1, 2, 3, 4][..], false),
            (&[1, 2, 3, 4, 5][..], false),
            (&[][..], false),
            (&[255, 0, 0, 0, 0, 255][..], true),
            (&[255, 0, 0, 0, 0, 255, 9, 9, 9][..], true),
        ] {
            let png = png_with(&[
                (b"IHDR", &ihdr),
                (b"PLTE", palette),
                (b"IDAT", &idat),
                (b"IEND", &[]),
            ]);
            let checked = check_png_palette(&png);
            let decoded = decode_bytes(&png, &limits);
            if ok {
                assert!(checked.is_ok(), "{palette:?}");
                let img = decoded.unwrap_or_else(|e| panic!("{palette:?}: {e}"));
                assert_eq!(img.dimensions(), (8, 8));
                // Index 1 at even x, 0 at odd x (the bits are 1010...).
                assert_eq!(&img.get_pixel(0, 0).0[..], &palette[3..6], "{palette:?}");
                assert_eq!(&img.get_pixel(1, 0).0[..], &palette[..3], "{palette:?}");
            } else {
                let msg = format!("{}", checked.unwrap_err());
                assert!(
                    msg.contains(&format!("PLTE chunk) of {} bytes", palette.len())),
                    "{msg}"
                );
                let e = decoded.unwrap_err();
                assert_eq!(e.reason(), "corrupt");
                assert!(!e.to_string().contains("decoder failed"), "{e}");
            }
        }
        // A PLTE after IDAT is the decoder's business; chunk walks past the end stop quietly.
        let png = png_with(&[(b"IHDR", &ihdr), (b"IDAT", &idat), (b"PLTE", &[1])]);
        assert!(check_png_palette(&png).is_ok());
        assert!(check_png_palette(b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffPLTE").is_err());
        assert!(check_png_palette(b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIHDR").is_ok());
    }

    #[test]
    fn empty_and_garbage_are_errors() {
        assert_eq!(
            decode_bytes(b"", &DecodeLimits::default())
                .unwrap_err()
                .reason(),
            "empty"
        );
        assert_eq!(
            decode_bytes(b"hello, not an image", &DecodeLimits::default())
                .unwrap_err()
                .reason(),
            "unknown_format"
        );
    }

    #[test]
    fn limits_refuse_large_images_and_files() {
        let j = jpeg(64, 48);
        let small = DecodeLimits {
            max_dimension: 32,
            ..DecodeLimits::default()
        };
        assert_eq!(decode_bytes(&j, &small).unwrap_err().reason(), "too_large");
        let tiny_file = DecodeLimits {
            max_file_bytes: 10,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode_bytes(&j, &tiny_file).unwrap_err().reason(),
            "too_large"
        );
    }
}
