//! Preprocessing: an RGB8 frame of any size becomes the model's input tensor.
//!
//! Resizing uses `fast_image_resize` (bilinear convolution with antialiasing,
//! the same filter as PIL's `Image.resize(..., BILINEAR)`), into buffers
//! that are allocated once and reused for every frame. The crop of
//! `center-crop` is done by the resizer itself (sub-pixel crop box), so a
//! frame is resampled exactly once. Normalisation then writes
//! `pixel * scale + offset` per channel straight into the tensor, in NCHW or
//! NHWC order and RGB or BGR channel order, as the manifest says.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use tract_onnx::prelude::Tensor;

use crate::decode::Window;
use crate::model::manifest::{ColourOrder, InputDatum, Layout, Manifest, ResizeMode};

/// Errors from preprocessing (all indicate a programming or model error,
/// never bad input: any frame of at least 1×1 pixel can be preprocessed).
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The resizer refused the buffers.
    #[error("resize failed: {0}")]
    Resize(String),
    /// The tensor does not have the expected datum type or size.
    #[error("input tensor mismatch: {0}")]
    Tensor(String),
}

/// Where a model's input tensor samples a frame from: the input size and
/// how a frame of another size is fitted to it (from the manifest's
/// `[input]`). Used by [`Preprocessor`] and by the JPEG decoder to decode no
/// more pixels than the model resamples from ([`crate::decode::DecodeTarget`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputGeometry {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// How a frame is fitted to the input.
    pub mode: ResizeMode,
    /// For [`ResizeMode::CenterCrop`]: the part of the shorter side kept (0..1].
    pub crop_fraction: f64,
}

impl InputGeometry {
    /// The input geometry described in `manifest`.
    pub fn new(manifest: &Manifest) -> InputGeometry {
        let i = &manifest.input;
        InputGeometry {
            width: i.width,
            height: i.height,
            mode: i.resize,
            crop_fraction: f64::from(i.crop_fraction.unwrap_or(1.0)),
        }
    }

    /// For a `w × h` frame: the size of the region the input is resampled
    /// from (pixels, fractional for a centre crop), and the size it is
    /// resampled to (pixels: the whole input, or the fitted image of a
    /// letterbox).
    pub fn sampling(&self, w: u32, h: u32) -> ((f64, f64), (u32, u32)) {
        let (fw, fh) = (f64::from(w), f64::from(h));
        let (tw, th) = (self.width, self.height);
        match self.mode {
            ResizeMode::Squash => ((fw, fh), (tw, th)),
            ResizeMode::CenterCrop => {
                let target_aspect = f64::from(tw) / f64::from(th);
                let (cw, ch) = if fw / fh > target_aspect {
                    (fh * target_aspect, fh)
                } else {
                    (fw, fw / target_aspect)
                };
                ((cw * self.crop_fraction, ch * self.crop_fraction), (tw, th))
            }
            ResizeMode::Letterbox => {
                let s = (f64::from(tw) / fw).min(f64::from(th) / fh);
                let nw = ((fw * s).round() as u32).clamp(1, tw);
                let nh = ((fh * s).round() as u32).clamp(1, th);
                ((fw, fh), (nw, nh))
            }
        }
    }

    /// For a `w × h` frame under a centre crop: the pixel rectangle
    /// `(x0, y0, x1, y1)` (`x1`, `y1` exclusive) that the resize reads (the
    /// crop box, widened by the bilinear filter's reach, which grows with
    /// the shrink factor), plus `pad` more pixels on every side, clamped to
    /// the frame. `None` for squash and letterbox, which read the whole
    /// frame. Used to decode only that part of a JPEG
    /// ([`crate::decode::DecodeTarget::crop`]).
    pub fn read_region(&self, w: u32, h: u32, pad: u32) -> Option<(u32, u32, u32, u32)> {
        if self.mode != ResizeMode::CenterCrop || w == 0 || h == 0 {
            return None;
        }
        let ((cw, ch), (tw, th)) = self.sampling(w, h);
        let (left, top) = ((f64::from(w) - cw) / 2.0, (f64::from(h) - ch) / 2.0);
        // The triangle filter's support is 1 output pixel: `scale` input pixels.
        let reach = |c: f64, t: u32| (c / f64::from(t.max(1))).max(1.0).ceil() as u32 + 1 + pad;
        let (rx, ry) = (reach(cw, tw), reach(ch, th));
        let x0 = (left.max(0.0).floor() as u32).saturating_sub(rx);
        let y0 = (top.max(0.0).floor() as u32).saturating_sub(ry);
        let x1 = ((left + cw).ceil() as u32).saturating_add(rx).min(w);
        let y1 = ((top + ch).ceil() as u32).saturating_add(ry).min(h);
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    /// Whether resampling a `w × h` frame to the input shrinks it by at
    /// least `margin` along both axes (`margin` = 1: the frame has at least
    /// as many pixels as the model samples from it).
    pub fn is_covered_by(&self, w: u32, h: u32, margin: f64) -> bool {
        let ((rw, rh), (ow, oh)) = self.sampling(w, h);
        // A centre crop's region is fractional: allow rounding.
        rw + 1e-6 >= margin * f64::from(ow) && rh + 1e-6 >= margin * f64::from(oh)
    }
}

/// Turns frames into input tensors for one model. Create once, reuse per frame.
pub struct Preprocessor {
    width: u32,
    height: u32,
    layout: Layout,
    datum: InputDatum,
    order: ColourOrder,
    mode: ResizeMode,
    crop_fraction: f64,
    pad_value: u8,
    scale: [f32; 3],
    offset: [f32; 3],
    resizer: Resizer,
    /// RGB8 `width × height × 3`, the resized frame.
    resized: Vec<u8>,
    /// RGB8 scratch for letterbox (fitted size, up to `width × height × 3`).
    fitted: Vec<u8>,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("mode", &self.mode)
            .finish()
    }
}

impl Preprocessor {
    /// A preprocessor for the input described in `manifest`.
    pub fn new(manifest: &Manifest) -> Preprocessor {
        let i = &manifest.input;
        let (scale, offset) = manifest.scale_offset();
        let n = i.width as usize * i.height as usize * 3;
        Preprocessor {
            width: i.width,
            height: i.height,
            layout: i.layout,
            datum: i.datum_type,
            order: i.colour_order,
            mode: i.resize,
            crop_fraction: f64::from(i.crop_fraction.unwrap_or(1.0)),
            pad_value: i.pad_value.unwrap_or(0),
            scale,
            offset,
            resizer: Resizer::new(),
            resized: vec![0; n],
            fitted: if i.resize == ResizeMode::Letterbox {
                vec![0; n]
            } else {
                Vec::new()
            },
        }
    }

    /// Where this preprocessor samples a frame from.
    pub fn geometry(&self) -> InputGeometry {
        InputGeometry {
            width: self.width,
            height: self.height,
            mode: self.mode,
            crop_fraction: self.crop_fraction,
        }
    }

    /// The resized RGB8 frame of the last [`Preprocessor::run`], `width × height × 3` bytes.
    pub fn resized(&self) -> &[u8] {
        &self.resized
    }

    /// Resizes `img` per the manifest and writes the normalised result into
    /// `tensor` (shape `[1, 3, H, W]` or `[1, H, W, 3]`, f32 or u8).
    ///
    /// # Errors
    /// [`PreprocessError::Tensor`] if `tensor` has the wrong datum type or
    /// size; [`PreprocessError::Resize`] if the resizer fails.
    pub fn run(&mut self, img: &RgbImage, tensor: &mut Tensor) -> Result<(), PreprocessError> {
        self.run_window(img, Window::whole(img), tensor)
    }

    /// As [`Preprocessor::run`], for an image that is the `window` part of a
    /// larger frame (a JPEG decoded only where the centre crop reads,
    /// [`crate::decode::DecodeTarget::crop`]): the crop box is computed on
    /// the full frame and moved into the window, so the tensor is the one
    /// the whole frame gives. Squash and letterbox models take `img` as the
    /// whole frame (the decoder never crops for them).
    ///
    /// # Errors
    /// As [`Preprocessor::run`].
    pub fn run_window(
        &mut self,
        img: &RgbImage,
        window: Window,
        tensor: &mut Tensor,
    ) -> Result<(), PreprocessError> {
        self.resize(img, window)?;
        self.normalise(tensor)
    }

    fn resize(&mut self, img: &RgbImage, window: Window) -> Result<(), PreprocessError> {
        let (w, h) = img.dimensions();
        debug_assert!(
            self.mode == ResizeMode::CenterCrop || window == Window::whole(img),
            "only a centre crop reads part of a frame"
        );
        let src = ImageRef::new(w, h, img.as_raw(), PixelType::U8x3)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        let alg = ResizeAlg::Convolution(FilterType::Bilinear);
        let (tw, th) = (self.width, self.height);
        match self.mode {
            ResizeMode::Squash => {
                let mut dst = Image::from_slice_u8(tw, th, &mut self.resized, PixelType::U8x3)
                    .map_err(|e| PreprocessError::Resize(e.to_string()))?;
                self.resizer
                    .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))
                    .map_err(|e| PreprocessError::Resize(e.to_string()))?;
            }
            ResizeMode::CenterCrop => {
                let (full_w, full_h) = (
                    window.full_width.max(w.saturating_add(window.x)),
                    window.full_height.max(h.saturating_add(window.y)),
                );
                let (fw, fh) = (f64::from(full_w), f64::from(full_h));
                let ((cw, ch), _) = self.geometry().sampling(full_w, full_h);
                let opts = ResizeOptions::new().resize_alg(alg).crop(
                    (fw - cw) / 2.0 - f64::from(window.x),
                    (fh - ch) / 2.0 - f64::from(window.y),
                    cw,
                    ch,
                );
                let mut dst = Image::from_slice_u8(tw, th, &mut self.resized, PixelType::U8x3)
                    .map_err(|e| PreprocessError::Resize(e.to_string()))?;
                self.resizer
                    .resize(&src, &mut dst, &opts)
                    .map_err(|e| PreprocessError::Resize(e.to_string()))?;
            }
            ResizeMode::Letterbox => {
                let (_, (nw, nh)) = self.geometry().sampling(w, h);
                let n = nw as usize * nh as usize * 3;
                {
                    let mut dst =
                        Image::from_slice_u8(nw, nh, &mut self.fitted[..n], PixelType::U8x3)
                            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
                    self.resizer
                        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))
                        .map_err(|e| PreprocessError::Resize(e.to_string()))?;
                }
                self.resized.fill(self.pad_value);
                let (x0, y0) = (((tw - nw) / 2) as usize, ((th - nh) / 2) as usize);
                let row = nw as usize * 3;
                for y in 0..nh as usize {
                    let d = ((y0 + y) * tw as usize + x0) * 3;
                    self.resized[d..d + row].copy_from_slice(&self.fitted[y * row..(y + 1) * row]);
                }
            }
        }
        Ok(())
    }

    fn normalise(&self, tensor: &mut Tensor) -> Result<(), PreprocessError> {
        let mut view = tensor
            .try_as_plain_ram_mut()
            .map_err(|e| PreprocessError::Tensor(e.to_string()))?;
        // Source channel for each model channel.
        let src_c: [usize; 3] = match self.order {
            ColourOrder::RGB => [0, 1, 2],
            ColourOrder::BGR => [2, 1, 0],
        };
        match self.datum {
            InputDatum::F32 => {
                let out = view
                    .as_slice_mut::<f32>()
                    .map_err(|e| PreprocessError::Tensor(e.to_string()))?;
                let (scale, offset) = (self.scale, self.offset);
                self.write(out, src_c, |v, c| f32::from(v) * scale[c] + offset[c])
            }
            InputDatum::U8 => {
                let out = view
                    .as_slice_mut::<u8>()
                    .map_err(|e| PreprocessError::Tensor(e.to_string()))?;
                self.write(out, src_c, |v, _| v)
            }
        }
    }

    /// Writes the resized pixels into `out` in the model's layout, channel
    /// `c` of the model taking source channel `src_c[c]` through `f(value, c)`.
    fn write<T>(
        &self,
        out: &mut [T],
        src_c: [usize; 3],
        f: impl Fn(u8, usize) -> T,
    ) -> Result<(), PreprocessError> {
        let plane = self.width as usize * self.height as usize;
        if out.len() != plane * 3 {
            return Err(PreprocessError::Tensor(format!(
                "{} values, expected {}",
                out.len(),
                plane * 3
            )));
        }
        let px = &self.resized;
        match self.layout {
            Layout::NCHW => {
                for (c, dst_plane) in out.chunks_exact_mut(plane).enumerate() {
                    for (dst, p) in dst_plane.iter_mut().zip(px.chunks_exact(3)) {
                        *dst = f(p[src_c[c]], c);
                    }
                }
            }
            Layout::NHWC => {
                for (dst, p) in out.chunks_exact_mut(3).zip(px.chunks_exact(3)) {
                    for (c, d) in dst.iter_mut().enumerate() {
                        *d = f(p[src_c[c]], c);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Manifest;

    fn manifest(extra_input: &str, layout: &str, datum: &str, norm: &str) -> Manifest {
        let input = format!("layout = \"{layout}\"\nwidth = 4\nheight = 2\ndatum_type = \"{datum}\"\n{extra_input}\n{norm}");
        crate::model::manifest::test_manifest("\"a\", \"b\"", &input, "softmax", "")
    }

    /// 4×2 image: left half red, right half blue.
    fn red_blue() -> RgbImage {
        RgbImage::from_fn(4, 2, |x, _| {
            if x < 2 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        })
    }

    #[test]
    fn nchw_f32_normalises_per_channel() {
        let m = manifest(
            "resize = \"squash\"",
            "NCHW",
            "f32",
            "normalisation = { mean = 127.5, std = 127.5 }",
        );
        let mut p = Preprocessor::new(&m);
        let mut t = Tensor::zero::<f32>(&[1, 3, 2, 4]).unwrap();
        p.run(&red_blue(), &mut t).unwrap();
        let v = t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap();
        // R plane: 1 on the left, -1 on the right; B plane the opposite.
        assert_eq!(&v[0..4], &[1.0, 1.0, -1.0, -1.0]);
        assert_eq!(&v[8..12], &[-1.0, -1.0, -1.0, -1.0]);
        assert_eq!(&v[16..20], &[-1.0, -1.0, 1.0, 1.0]);
    }

    #[test]
    fn nhwc_u8_bgr_keeps_raw_pixels() {
        let m = manifest(
            "resize = \"squash\"\ncolour_order = \"BGR\"",
            "NHWC",
            "u8",
            "",
        );
        let mut p = Preprocessor::new(&m);
        let mut t = Tensor::zero::<u8>(&[1, 2, 4, 3]).unwrap();
        p.run(&red_blue(), &mut t).unwrap();
        let v = t.try_as_plain_ram().unwrap().as_slice::<u8>().unwrap();
        assert_eq!(&v[0..3], &[0, 0, 255]); // red pixel in BGR
        assert_eq!(&v[9..12], &[255, 0, 0]); // blue pixel in BGR
    }

    #[test]
    fn letterbox_pads_and_center_crop_crops() {
        // A 2×2 green image letterboxed into 4×2 leaves 1 column of padding each side.
        let m = manifest("resize = \"letterbox\"\npad_value = 7", "NHWC", "u8", "");
        let mut p = Preprocessor::new(&m);
        let mut t = Tensor::zero::<u8>(&[1, 2, 4, 3]).unwrap();
        let green = RgbImage::from_pixel(2, 2, image::Rgb([0, 200, 0]));
        p.run(&green, &mut t).unwrap();
        let v = t.try_as_plain_ram().unwrap().as_slice::<u8>().unwrap();
        assert_eq!(&v[0..3], &[7, 7, 7]);
        assert_eq!(&v[3..6], &[0, 200, 0]);
        assert_eq!(&v[9..12], &[7, 7, 7]);
        // Centre crop of a 12×2 image (red | green | blue thirds) at 4×2 keeps only the green middle.
        let m = manifest("resize = \"center-crop\"", "NHWC", "u8", "");
        let mut p = Preprocessor::new(&m);
        let img = RgbImage::from_fn(12, 2, |x, _| match x {
            0..=3 => image::Rgb([255, 0, 0]),
            4..=7 => image::Rgb([0, 255, 0]),
            _ => image::Rgb([0, 0, 255]),
        });
        p.run(&img, &mut t).unwrap();
        assert!(t
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<u8>()
            .unwrap()
            .chunks(3)
            .all(|px| px == [0, 255, 0]));
    }

    #[test]
    fn a_window_of_the_frame_gives_the_tensor_of_the_whole_frame() {
        let g = InputGeometry {
            width: 224,
            height: 224,
            mode: ResizeMode::CenterCrop,
            crop_fraction: 0.875,
        };
        // 640×480: crop box 420×420 at (110, 30); the filter reaches
        // ceil(420 / 224) + 1 = 3 pixels further.
        assert_eq!(g.read_region(640, 480, 0), Some((107, 27, 533, 453)));
        assert_eq!(g.read_region(640, 480, 4), Some((103, 23, 537, 457)));
        for mode in [ResizeMode::Squash, ResizeMode::Letterbox] {
            assert_eq!(InputGeometry { mode, ..g }.read_region(640, 480, 0), None);
        }
        // The tensor from a window that holds the read region equals the
        // whole frame's, bit for bit.
        let m = manifest(
            "resize = \"center-crop\"\ncrop_fraction = 0.875",
            "NCHW",
            "f32",
            "",
        );
        let mut p = Preprocessor::new(&m);
        // 200×60 for a 4×2 input: crop box 105×52.5 at (47.5, 3.75), the
        // filter reaching 28 pixels: columns 19..181 are read.
        let img = RgbImage::from_fn(200, 60, |x, y| {
            image::Rgb([(x * 6 % 256) as u8, (y * 8) as u8, ((x * y) % 256) as u8])
        });
        let (x0, y0, x1, y1) = p.geometry().read_region(200, 60, 0).unwrap();
        assert_eq!((x0, y0, x1, y1), (19, 0, 181, 60));
        let part = image::imageops::crop_imm(&img, x0, y0, x1 - x0, y1 - y0).to_image();
        let mut whole = Tensor::zero::<f32>(&[1, 3, 2, 4]).unwrap();
        let mut windowed = whole.clone();
        p.run(&img, &mut whole).unwrap();
        let window = Window {
            x: x0,
            y: y0,
            full_width: 200,
            full_height: 60,
        };
        p.run_window(&part, window, &mut windowed).unwrap();
        assert_eq!(whole, windowed);
    }

    #[test]
    fn center_crop_fraction_keeps_the_middle() {
        // Target 4×2 (aspect 2:1) on an 8×4 image: the full-aspect crop is the whole
        // image; crop_fraction 0.5 keeps its central 4×2 block (green).
        let m = manifest(
            "resize = \"center-crop\"\ncrop_fraction = 0.5",
            "NHWC",
            "u8",
            "",
        );
        let mut p = Preprocessor::new(&m);
        let mut t = Tensor::zero::<u8>(&[1, 2, 4, 3]).unwrap();
        let img = RgbImage::from_fn(8, 4, |x, y| {
            if (2..6).contains(&x) && (1..3).contains(&y) {
                image::Rgb([0, 255, 0])
            } else {
                image::Rgb([255, 0, 0])
            }
        });
        p.run(&img, &mut t).unwrap();
        let v = t
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<u8>()
            .unwrap()
            .to_vec();
        assert!(v.chunks(3).all(|px| px == [0, 255, 0]), "{v:?}");
    }

    #[test]
    fn letterbox_pads_top_and_bottom_for_tall_targets() {
        // A 4×1 strip letterboxed into 4×2 (NHWC u8): one padded row, split as 0 above and 1 below.
        let m = manifest("resize = \"letterbox\"\npad_value = 9", "NHWC", "u8", "");
        let mut p = Preprocessor::new(&m);
        let mut t = Tensor::zero::<u8>(&[1, 2, 4, 3]).unwrap();
        p.run(&RgbImage::from_pixel(4, 1, image::Rgb([1, 2, 3])), &mut t)
            .unwrap();
        let v = t
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<u8>()
            .unwrap()
            .to_vec();
        assert_eq!(&v[..12], &[1, 2, 3].repeat(4)[..]);
        assert_eq!(&v[12..], &[9; 12]);
    }

    #[test]
    fn one_pixel_and_wrong_tensor() {
        let m = manifest("resize = \"center-crop\"", "NCHW", "f32", "");
        let mut p = Preprocessor::new(&m);
        let mut t = Tensor::zero::<f32>(&[1, 3, 2, 4]).unwrap();
        p.run(
            &RgbImage::from_pixel(1, 1, image::Rgb([10, 20, 30])),
            &mut t,
        )
        .unwrap();
        assert!(
            t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap()[..8]
                .iter()
                .all(|v| *v == 10.0)
        );
        let mut wrong = Tensor::zero::<u8>(&[1, 3, 2, 4]).unwrap();
        assert!(p.run(&red_blue(), &mut wrong).is_err());
    }
}
