//! Channel-last depthwise convolution with its bias and clamp (ReLU6) in one
//! pass, for x86_64 with AVX-512F: a load-time rewrite of tract's optimised
//! plan.
//!
//! In MobileNet/EfficientNet blocks every depthwise convolution is followed
//! by a ReLU6 (`Clip(0, 6)`). tract 0.23.9 runs the pair as two nodes: its
//! `DepthWise` operator, which calls a channel-inner kernel (ours on x86,
//! [`super::depthwise_x86`]) once per padding zone and output row and
//! collects the zone's taps into fresh vectors on each call, then a separate
//! element-wise `Max`+`Min` pass over the whole output. On EfficientNet-Lite0
//! (`camtrapd bench --profile`, one x86 core) the 15 channel-last depthwise
//! layers took ≈ 1.9 ms and their 15 clamps ≈ 0.5 ms of a 9 ms frame.
//!
//! [`fuse`] finds each channel-last `DepthWise` node whose only consumer is
//! the `Max`+`Min` chain tract made of the ONNX `Clip` that follows the
//! `Conv` in the graph, reads the convolution's geometry, weights and bias
//! and the clip's bounds from the ONNX graph itself, and replaces both nodes
//! with one [`FusedDepthwise`] operator. That operator walks the output
//! row by row, four output points at a time per 16 channels (one weight load
//! serves four multiply-adds), checks padding per tap only near the borders,
//! and clamps in registers before the single store.
//!
//! The arithmetic is bias + Σ tap × input with fused multiply-adds in tap
//! order, then `min(max(·, lo), hi)`, as tract's chain computes it; results
//! agree with tract's to float rounding. Anything unexpected (another layout,
//! a node name tract did not keep, a clip with computed bounds) leaves the
//! node to tract.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Environment variable that, when set (to anything), turns the rewrite off:
/// tract's own `DepthWise` and clamp nodes run (to compare, or to rule this
/// operator out when chasing a bug).
pub const DISABLE_ENV: &str = "CAMTRAPD_NO_FUSED_DEPTHWISE";

/// Largest kernel (taps) of the channel-first form: 7×7.
const MAX_TAPS: usize = 49;

/// Whether [`fuse`] runs on this machine: x86_64 with AVX-512F, and
/// [`DISABLE_ENV`] not set. Where it runs, a depthwise convolution's clamp
/// costs almost nothing, so other passes keep it (see
/// [`super::quantize_u8`]).
pub fn enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    let have = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let have = false;
    have && std::env::var_os(DISABLE_ENV).is_none()
}

/// Name of the fused operator in tract's profile.
pub const OP_NAME: &str = "FusedDepthwiseClip";

/// Geometry of a 2-D depthwise convolution on a channel-last `[H, W, C]`
/// tensor (leading unit axes allowed), in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Channels (= groups).
    pub c: usize,
    /// Input height and width.
    pub ih: usize,
    /// Input width.
    pub iw: usize,
    /// Kernel height and width.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Strides (y, x).
    pub sh: usize,
    /// Stride x.
    pub sw: usize,
    /// Dilations (y, x).
    pub dh: usize,
    /// Dilation x.
    pub dw: usize,
    /// Padding before (top, left); padding after follows from the output size.
    pub pt: usize,
    /// Left padding.
    pub pl: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

/// Depthwise convolution + bias + clamp on channel-last f32 data.
///
/// Input: f32 `[.., H, W, C]` (leading axes of size 1); output f32
/// `[.., OH, OW, C]` with the same leading axes. Weights are stored tap-major
/// (`[kh·kw][C]`, channel contiguous).
#[derive(Debug, Clone)]
pub struct FusedDepthwise {
    g: Geometry,
    /// Channel-last (`[H, W, C]`) or channel-first (`[C, H, W]`) data.
    channel_first: bool,
    /// Tap-major `[kh·kw][C]` (channel-last) or `[C][kh·kw]` (channel-first).
    weights: Arc<[f32]>,
    bias: Arc<[f32]>,
    lo: f32,
    hi: f32,
    /// Clamp applied to the input first (the previous layer's ReLU6, fused
    /// too), channel-first only.
    input_clamp: Option<(f32, f32)>,
    out_shape: TVec<usize>,
    /// Whether a running plan keeps this node's output tensor and overwrites
    /// it on the next frame ([`OutputReuse`]). Set by [`fuse`] only where
    /// every consumer just reads the output: an operator that would take it
    /// over in place (a reshape, an in-place add) would have to copy a
    /// tensor still held here.
    reuse_output: bool,
}

impl PartialEq for FusedDepthwise {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        self.g == o.g
            && self.channel_first == o.channel_first
            && self.input_clamp.map(|(a, b)| (a.to_bits(), b.to_bits()))
                == o.input_clamp.map(|(a, b)| (a.to_bits(), b.to_bits()))
            && self.out_shape == o.out_shape
            && self.reuse_output == o.reuse_output
            && self.lo.to_bits() == o.lo.to_bits()
            && self.hi.to_bits() == o.hi.to_bits()
            && bits(&self.weights) == bits(&o.weights)
            && bits(&self.bias) == bits(&o.bias)
    }
}
impl Eq for FusedDepthwise {}

impl FusedDepthwise {
    /// Builds the operator. `weights_oihw` is the ONNX depthwise weight
    /// `[C, 1, kh, kw]` (row-major), `bias` `[C]` (zeros when the `Conv`
    /// has none); `[lo, hi]` the clamp. `None` when the sizes disagree.
    pub fn new(
        g: Geometry,
        weights_oihw: &[f32],
        bias: Option<&[f32]>,
        lo: f32,
        hi: f32,
        out_shape: TVec<usize>,
    ) -> Option<FusedDepthwise> {
        let taps = g.kh * g.kw;
        if weights_oihw.len() != g.c * taps || bias.is_some_and(|b| b.len() != g.c) {
            return None;
        }
        let mut w = vec![0f32; taps * g.c];
        for c in 0..g.c {
            for t in 0..taps {
                w[t * g.c + c] = weights_oihw[c * taps + t];
            }
        }
        let bias: Vec<f32> = bias.map_or_else(|| vec![0.0; g.c], <[f32]>::to_vec);
        Some(FusedDepthwise {
            g,
            channel_first: false,
            weights: w.into(),
            bias: bias.into(),
            lo,
            hi,
            input_clamp: None,
            out_shape,
            reuse_output: false,
        })
    }

    /// The channel-first (`[C, H, W]`) form, stride 1 and dilation 1 only:
    /// as [`Self::new`], plus an optional clamp of the input (the ReLU6 of
    /// the layer before, fused as well). `None` for other strides or
    /// dilations, or when the sizes disagree.
    pub fn new_channel_first(
        g: Geometry,
        weights_oihw: &[f32],
        bias: Option<&[f32]>,
        (lo, hi): (f32, f32),
        input_clamp: Option<(f32, f32)>,
        out_shape: TVec<usize>,
    ) -> Option<FusedDepthwise> {
        if (g.sh, g.sw, g.dh, g.dw) != (1, 1, 1, 1)
            || g.kh * g.kw > MAX_TAPS
            || weights_oihw.len() != g.c * g.kh * g.kw
            || bias.is_some_and(|b| b.len() != g.c)
        {
            return None;
        }
        Some(FusedDepthwise {
            g,
            channel_first: true,
            weights: weights_oihw.into(),
            bias: bias.map_or_else(|| vec![0.0; g.c], <[f32]>::to_vec).into(),
            lo,
            hi,
            input_clamp,
            out_shape,
            reuse_output: false,
        })
    }

    /// Computes the output into `y` (`oh·ow·c` f32) from `x` (`ih·iw·c`).
    /// `scratch` holds the channel-first form's zero-padded input plane
    /// (`(oh + kh − 1) × (ow + kw − 1)` rounded up to whole vectors, f32):
    /// pass the same vector every frame and it is allocated only once.
    ///
    /// # Errors
    /// When the slices do not have the geometry's sizes, or the CPU lacks
    /// AVX-512F (the rewrite only installs this operator where it has it).
    pub fn compute(&self, x: &[f32], y: &mut [f32], scratch: &mut Vec<f32>) -> TractResult<()> {
        let g = &self.g;
        ensure!(x.len() == g.ih * g.iw * g.c && y.len() == g.oh * g.ow * g.c);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F checked; sizes checked above.
            unsafe {
                if self.channel_first {
                    self.avx512_channel_first(x, y, scratch)
                } else {
                    self.avx512(x, y)
                }
            };
            return Ok(());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = scratch;
        bail!("{OP_NAME} needs AVX-512F");
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(&self, x: &[f32], y: &mut [f32]) {
        let g = &self.g;
        // Tap range [lo, hi) that lands inside the input for output
        // coordinate `o` along one axis.
        let range = |o: usize, s: usize, p: usize, k: usize, d: usize, len: usize| {
            let first = (o * s) as isize - p as isize;
            let lo = (0..k).find(|&t| first + (t * d) as isize >= 0).unwrap_or(k);
            let hi = (0..k)
                .rev()
                .find(|&t| first + ((t * d) as isize) < len as isize)
                .map_or(0, |t| t + 1);
            (lo, hi.max(lo))
        };
        for oy in 0..g.oh {
            let ky = range(oy, g.sh, g.pt, g.kh, g.dh, g.ih);
            let mut ox = 0;
            while ox < g.ow {
                let kx = range(ox, g.sw, g.pl, g.kw, g.dw, g.iw);
                let four = ox + 4 <= g.ow
                    && kx == (0, g.kw)
                    && range(ox + 3, g.sw, g.pl, g.kw, g.dw, g.iw) == (0, g.kw);
                // SAFETY: the caller's contract; every tap in `ky` × `kx` is
                // inside the input for each of the pixels computed.
                unsafe {
                    if four {
                        self.channels::<4>(x, y, oy, ox, ky, kx);
                        ox += 4;
                    } else {
                        self.channels::<1>(x, y, oy, ox, ky, kx);
                        ox += 1;
                    }
                }
            }
        }
    }

    /// Channel-first, stride 1: per channel, the input plane is clamped
    /// (when an input clamp is fused) and zero-padded once into a scratch
    /// plane whose rows are padded to whole vectors; then every output row
    /// is 16 pixels per vector, the `kh·kw` weights broadcast in registers,
    /// no border checks.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_channel_first(&self, x: &[f32], y: &mut [f32], plane: &mut Vec<f32>) {
        use std::arch::x86_64::*;
        let g = &self.g;
        let pw = (g.ow + g.kw - 1).div_ceil(16) * 16 + 16;
        let ph = g.oh + g.kh - 1;
        plane.clear();
        plane.resize(pw * ph, 0.0);
        let (ilo, ihi) = self
            .input_clamp
            .unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (lo, hi) = (_mm512_set1_ps(self.lo), _mm512_set1_ps(self.hi));
        let taps = g.kh * g.kw;
        for c in 0..g.c {
            let src = &x[c * g.ih * g.iw..(c + 1) * g.ih * g.iw];
            // Rows pt.. of the padded plane hold the input rows (clamped),
            // shifted right by pl; the rest stays zero (set once: every
            // channel writes the same cells).
            for iy in 0..g.ih {
                let row = &mut plane[(iy + g.pt) * pw + g.pl..][..g.iw];
                for (d, &v) in row.iter_mut().zip(&src[iy * g.iw..(iy + 1) * g.iw]) {
                    *d = v.max(ilo).min(ihi);
                }
            }
            let w = &self.weights[c * taps..(c + 1) * taps];
            let mut wv = [_mm512_setzero_ps(); MAX_TAPS];
            for (d, &v) in wv.iter_mut().zip(w) {
                *d = _mm512_set1_ps(v);
            }
            let bias = _mm512_set1_ps(self.bias[c]);
            let out = &mut y[c * g.oh * g.ow..(c + 1) * g.oh * g.ow];
            for oy in 0..g.oh {
                let mut ox = 0;
                while ox < g.ow {
                    let rest = g.ow - ox;
                    let m: __mmask16 = if rest >= 16 {
                        0xffff
                    } else {
                        (1u16 << rest) - 1
                    };
                    let mut acc = bias;
                    for ky in 0..g.kh {
                        let base = plane.as_ptr().add((oy + ky) * pw + ox);
                        for kx in 0..g.kw {
                            // SAFETY: `pw` leaves a whole vector after the last tap.
                            let v = _mm512_loadu_ps(base.add(kx));
                            acc = _mm512_fmadd_ps(v, wv[ky * g.kw + kx], acc);
                        }
                    }
                    let v = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
                    _mm512_mask_storeu_ps(out.as_mut_ptr().add(oy * g.ow + ox), m, v);
                    ox += 16;
                }
            }
        }
    }

    /// All channels of `P` pixels, 64 at a time, the last block only as wide
    /// as the channels left (16, 32, 48 or 64: no work on empty lanes).
    ///
    /// # Safety
    /// As [`Self::pixels`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn channels<const P: usize>(
        &self,
        x: &[f32],
        y: &mut [f32],
        oy: usize,
        ox: usize,
        ky: (usize, usize),
        kx: (usize, usize),
    ) {
        let c = self.g.c;
        let mut ch = 0;
        // SAFETY: the caller's contract.
        unsafe {
            while ch < c {
                match (c - ch).div_ceil(16) {
                    1 => self.pixels::<P, 1>(x, y, oy, ox, ky, kx, ch),
                    2 => self.pixels::<P, 2>(x, y, oy, ox, ky, kx, ch),
                    3 => self.pixels::<P, 3>(x, y, oy, ox, ky, kx, ch),
                    _ => self.pixels::<P, 4>(x, y, oy, ox, ky, kx, ch),
                }
                ch += 64;
            }
        }
    }

    /// `P` consecutive output pixels of row `oy` from column `ox`, channels
    /// `ch .. ch + 16·Q`: `P × Q` accumulators, one weight load per `P`
    /// multiply-adds, taps `ky × kx` only (all inside the input).
    ///
    /// # Safety
    /// AVX-512F; `x` and `y` of the geometry's sizes; the taps in range for
    /// every pixel.
    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pixels<const P: usize, const Q: usize>(
        &self,
        x: &[f32],
        y: &mut [f32],
        oy: usize,
        ox: usize,
        ky: (usize, usize),
        kx: (usize, usize),
        ch: usize,
    ) {
        use std::arch::x86_64::*;
        let g = &self.g;
        let c = g.c;
        let (w, b) = (self.weights.as_ptr(), self.bias.as_ptr());
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let (lo, hi) = (_mm512_set1_ps(self.lo), _mm512_set1_ps(self.hi));
        let iy0 = (oy * g.sh) as isize - g.pt as isize;
        let ix0 = (ox * g.sw) as isize - g.pl as isize;
        let mask = |from: usize| -> __mmask16 {
            match c.saturating_sub(from) {
                0 => 0,
                r if r >= 16 => 0xffff,
                r => (1u16 << r) - 1,
            }
        };
        let m: [__mmask16; Q] = std::array::from_fn(|j| mask(ch + 16 * j));
        // SAFETY: masked-off lanes are neither read nor written; the rest is
        // inside the tensors (caller's contract).
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); Q]; P];
            for j in 0..Q {
                let bv = _mm512_maskz_loadu_ps(m[j], b.add(ch + 16 * j));
                for a in acc.iter_mut() {
                    a[j] = bv;
                }
            }
            for ty in ky.0..ky.1 {
                let iy = (iy0 + (ty * g.dh) as isize) as usize;
                let row = xp.add(iy * g.iw * c + ch);
                for tx in kx.0..kx.1 {
                    let wp = w.add((ty * g.kw + tx) * c + ch);
                    let wv: [__m512; Q] =
                        std::array::from_fn(|j| _mm512_maskz_loadu_ps(m[j], wp.add(16 * j)));
                    let ix = ix0 + (tx * g.dw) as isize;
                    for (q, a) in acc.iter_mut().enumerate() {
                        let xq = row.add((ix as usize + q * g.sw) * c);
                        for j in 0..Q {
                            let xv = _mm512_maskz_loadu_ps(m[j], xq.add(16 * j));
                            a[j] = _mm512_fmadd_ps(xv, wv[j], a[j]);
                        }
                    }
                }
            }
            for (q, a) in acc.iter().enumerate() {
                let out = yp.add((oy * g.ow + ox + q) * c + ch);
                for j in 0..Q {
                    let v = _mm512_min_ps(_mm512_max_ps(a[j], lo), hi);
                    _mm512_mask_storeu_ps(out.add(16 * j), m[j], v);
                }
            }
        }
    }
}

impl Op for FusedDepthwise {
    fn name(&self) -> StaticName {
        OP_NAME.into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.g;
        let layout = if self.channel_first { "CHW" } else { "HWC" };
        let input_clamp = self
            .input_clamp
            .map_or(String::new(), |(a, b)| format!(" input clamp [{a}, {b}]"));
        let (i, o) = if self.channel_first {
            ([g.c, g.ih, g.iw], [g.c, g.oh, g.ow])
        } else {
            ([g.ih, g.iw, g.c], [g.oh, g.ow, g.c])
        };
        Ok(vec![format!(
            "{layout}{input_clamp} {i:?} -> {o:?} kernel {}x{} stride {}x{} dilation {}x{} pad {},{} clamp [{}, {}]{}",
            g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, self.lo, self.hi,
            if self.reuse_output { ", output kept between runs" } else { "" }
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for FusedDepthwise {
    op_out_of_plan!();

    /// Out of a plan (const folding, tests): into a fresh output tensor.
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1);
        let x = inputs[0].try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        // SAFETY: `compute` writes every element before the tensor is read.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.out_shape)? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            self.compute(x, view.as_slice_mut::<f32>()?, &mut Vec::new())?;
        }
        Ok(tvec!(out.into_tvalue()))
    }

    /// In a plan, where [`fuse`] found that the consumers only read the
    /// output: [`OutputReuse`], so that after the first frame the node
    /// writes into the output tensor of the frame before and allocates
    /// nothing.
    fn state(&self, _ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        Ok(self
            .reuse_output
            .then(|| Box::<OutputReuse>::default() as Box<dyn OpState>))
    }
}

/// A [`FusedDepthwise`] node's state in a running plan: its output tensor,
/// kept from one frame to the next. tract frees a node's output once its
/// last consumer has run, which here only drops the consumer's reference, so
/// on the next frame the node finds the tensor unshared and overwrites it
/// (`Arc::get_mut`) instead of allocating a new one (tract 0.23 has no
/// arena for node outputs). If anything still holds the previous output
/// (a cloned state, a caller keeping an output), a fresh tensor is
/// allocated instead, so a value once handed out is never changed. Costs the
/// node's output size in memory between frames: for EfficientNet-Lite0
/// 0.2–1.8 MB per node, 9.2 MB for the 16 nodes of one [`crate::model::Model`]
/// (tract used to free each right after the next node read it).
#[derive(Debug, Clone, Default)]
pub struct OutputReuse {
    out: Option<Arc<Tensor>>,
    /// [`FusedDepthwise::compute`]'s scratch plane, kept too.
    scratch: Vec<f32>,
}

impl OpState for OutputReuse {
    fn eval(
        &mut self,
        _ctx: &EvalContext,
        op: &dyn Op,
        inputs: TVec<TValue>,
    ) -> TractResult<TVec<TValue>> {
        let op = op
            .downcast_ref::<FusedDepthwise>()
            .context("OutputReuse evaluates FusedDepthwise nodes only")?;
        ensure!(inputs.len() == 1);
        let x = inputs[0].try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let reusable = self
            .out
            .as_mut()
            .and_then(Arc::get_mut)
            .is_some_and(|t| t.shape() == &*op.out_shape);
        if !reusable {
            // SAFETY: `compute` writes every element before the tensor is read.
            self.out = Some(Arc::new(unsafe {
                Tensor::uninitialized::<f32>(&op.out_shape)?
            }));
        }
        let out = self
            .out
            .as_mut()
            .and_then(Arc::get_mut)
            .context("a fresh output tensor is unshared")?;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            op.compute(x, view.as_slice_mut::<f32>()?, &mut self.scratch)?;
        }
        let out = self.out.as_ref().context("output set above")?;
        Ok(tvec!(TValue::from_const(Arc::clone(out))))
    }

    fn reset_lanes(&mut self, _lanes: &[LaneId]) -> TractResult<()> {
        Ok(())
    }
}

impl TypedOp for FusedDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    as_op!();
}

/// Reads a constant f32 tensor (initializer or `Constant` node output) of
/// the ONNX graph by name.
fn f32_tensor(
    name: &str,
    inits: &HashMap<&str, &pb::TensorProto>,
    consts: &HashMap<&str, &pb::TensorProto>,
) -> Option<Vec<f32>> {
    let t = inits.get(name).or_else(|| consts.get(name))?;
    crate::model::fold_dequantize::f32_const(t).map(|(v, _)| v)
}

fn ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

/// tract's node for an ONNX `Clip` with constant bounds: exactly a
/// `Max`+`Min` chain (nothing fused before or after it) named after the
/// Clip, reading one tensor plus its two constant bounds.
fn is_clamp_of(model: &TypedModel, node: &TypedNode, clip: &pb::NodeProto) -> bool {
    node.op.name() == "OptBinChain(Max+Min)"
        && node.name == format!("{}.max", clip.name)
        && node.inputs.len() == 3
        && node.inputs[1..]
            .iter()
            .all(|o| model.outlet_fact(*o).is_ok_and(|f| f.konst.is_some()))
        && node.outputs.len() == 1
}

/// The spatial `[.., C, H, W]` of a channel-first fact with `c` channels
/// (leading axes of size 1).
fn chw(shape: &[usize], c: usize) -> Option<(usize, usize)> {
    let n = shape.len();
    (n >= 3 && shape[n - 3] == c && shape[..n - 3].iter().all(|&d| d == 1))
        .then(|| (shape[n - 2], shape[n - 1]))
}

/// The spatial `[.., H, W, C]` of a channel-last fact with `c` channels, or
/// `None` for any other layout (e.g. NCHW `[1, C, H, W]`).
fn hwc(shape: &[usize], c: usize) -> Option<(usize, usize)> {
    let n = shape.len();
    (n >= 3 && shape[n - 1] == c && shape[..n - 3].iter().all(|&d| d == 1))
        .then(|| (shape[n - 3], shape[n - 2]))
}

/// Replaces every channel-last `DepthWise` → clamp pair of tract's optimised
/// `model` that comes from an ONNX `Conv(group = C)` → `Clip` pair of
/// `proto` with one [`FusedDepthwise`]; returns how many it replaced. Does
/// nothing (returns 0) on CPUs without AVX-512F or when
/// `CAMTRAPD_NO_FUSED_DEPTHWISE` is set.
///
/// # Errors
/// tract's errors from applying a patch (not expected: each patch only
/// rewires one node's consumers).
pub fn fuse(model: &mut TypedModel, proto: &pb::ModelProto) -> TractResult<usize> {
    let Some(graph) = proto.graph.as_ref() else {
        return Ok(0);
    };
    if !enabled() {
        return Ok(0);
    }
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let consts: HashMap<&str, &pb::TensorProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Constant" && n.output.len() == 1)
        .filter_map(|n| {
            let a = n.attribute.iter().find(|a| a.name == "value")?;
            Some((n.output[0].as_str(), a.t.as_ref()?))
        })
        .collect();
    // ONNX Clip nodes by the tensor they read.
    let clips: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Clip" && !n.input.is_empty())
        .map(|n| (n.input[0].as_str(), n))
        .collect();
    let producers: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    // Nodes are matched to tract's by name: only names used once qualify.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for n in &graph.node {
        *names.entry(n.name.as_str()).or_default() += 1;
    }
    let mut fused = 0;
    for conv in graph.node.iter().filter(|n| n.op_type == "Conv") {
        let Some(clip) = conv.output.first().and_then(|o| clips.get(o.as_str())) else {
            continue;
        };
        let Some((op, input, clip_id)) =
            build(conv, clip, model, &inits, &consts, &producers, &names)
        else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, input)?;
        let y = patch.wire_node(&conv.name, op, &[x])?[0];
        patch.shunt_outside(model, clip_id.into(), y)?;
        patch.apply(model)?;
        fused += 1;
    }
    if fused > 0 {
        model.compact()?;
        keep_outputs(model)?;
    }
    Ok(fused)
}

/// Operators that only read their input tensor and keep no reference to it
/// after their own evaluation (tract 0.23's `OptMatMulPack` copies it into
/// a packed buffer at once), so a fused node feeding only these can keep
/// its output between frames ([`OutputReuse`]). This list decides
/// performance, not safety: with another consumer, `Arc::get_mut` would
/// refuse to overwrite a held output and a fresh tensor would be allocated.
const READ_ONLY_CONSUMERS: &[&str] = &["OptMatMulPack", OP_NAME];

/// After [`fuse`]: folds a reshape (`IntoShape`) that follows a fused node
/// into the node's output shape (the data is contiguous either way, so the
/// reshape only renames the axes), then marks the nodes whose consumers all
/// just read the output as [`FusedDepthwise::reuse_output`].
fn keep_outputs(model: &mut TypedModel) -> TractResult<()> {
    use tract_onnx::tract_core::ops::change_axes::IntoShape;
    let ids: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<FusedDepthwise>())
        .map(|n| n.id)
        .collect();
    let mut folded = false;
    for id in ids {
        let node = model.node(id);
        let Some(op) = node.op_as::<FusedDepthwise>() else {
            continue;
        };
        // A model output stays as it is (tract would keep the old node
        // running for it).
        if model.output_outlets()?.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let Some(succ) = model.single_succ(id)? else {
            continue;
        };
        let Some(reshape) = succ.op_as::<IntoShape>() else {
            continue;
        };
        let len: usize = op.out_shape.iter().product();
        if reshape.len != len || reshape.strides != Tensor::natural_strides(&reshape.dims) {
            continue;
        }
        let mut op = op.clone();
        op.out_shape = reshape.dims.clone();
        let (name, input, reshape_id) = (node.name.clone(), node.inputs[0], succ.id);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, input)?;
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, reshape_id.into(), y)?;
        patch.apply(model)?;
        folded = true;
    }
    if folded {
        model.compact()?;
    }
    let readers_only: Vec<(usize, bool)> = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<FusedDepthwise>())
        .map(|n| {
            let succs = model.outlet_successors(OutletId::new(n.id, 0));
            let only = !succs.is_empty()
                && !model
                    .output_outlets()
                    .is_ok_and(|o| o.contains(&OutletId::new(n.id, 0)))
                && succs.iter().all(|i| {
                    READ_ONLY_CONSUMERS.contains(&model.node(i.node).op().name().as_ref())
                });
            (n.id, only)
        })
        .collect();
    for (id, only) in readers_only {
        if let Some(op) = model.node_mut(id).op_as_mut::<FusedDepthwise>() {
            op.reuse_output = only;
        }
    }
    Ok(())
}

/// The fused operator for one ONNX `Conv` → `Clip` pair, the tract outlet
/// it reads and the id of the clamp node whose output it replaces, if the
/// pair qualifies. Channel-first (NCHW) convolutions also take in the clamp
/// before them (the previous layer's `Clip`, possibly through a `Pad`) when
/// nothing else reads it.
fn build(
    conv: &pb::NodeProto,
    clip: &pb::NodeProto,
    model: &TypedModel,
    inits: &HashMap<&str, &pb::TensorProto>,
    consts: &HashMap<&str, &pb::TensorProto>,
    producers: &HashMap<&str, &pb::NodeProto>,
    names: &HashMap<&str, usize>,
) -> Option<(FusedDepthwise, OutletId, usize)> {
    // tract keeps the ONNX node name for the DepthWise node and names the
    // clamp chain after the Clip node.
    let unique = |name: &str| !name.is_empty() && names.get(name) == Some(&1);
    if !unique(&conv.name) || !unique(&clip.name) {
        return None;
    }
    let dw = model.nodes().iter().find(|n| n.name == conv.name)?;
    if dw.op.name() != "DepthWiseConv" || dw.inputs.len() != 3 {
        return None;
    }
    let succ = model.single_succ(dw.id).ok()??;
    if !is_clamp_of(model, succ, clip) || succ.inputs[0] != OutletId::new(dw.id, 0) {
        return None;
    }
    let w = f32_tensor(conv.input.get(1)?, inits, consts)?;
    let bias = match conv.input.get(2).filter(|s| !s.is_empty()) {
        Some(b) => Some(f32_tensor(b, inits, consts)?),
        None => None,
    };
    let wt = inits.get(conv.input.get(1)?.as_str())?;
    let dims: Vec<usize> = wt
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let [c, 1, kh, kw] = dims[..] else {
        return None;
    };
    let group = conv
        .attribute
        .iter()
        .find(|a| a.name == "group")
        .map_or(1, |a| a.i);
    if group as usize != c {
        return None;
    }
    // The geometry tract settled on, padding included: the exporter's explicit
    // `Pad` nodes (TF-style "same" padding) are folded into it.
    let info = dw.op.info().ok()?.join(" ");
    let spec = parse_patch(&info)?;
    let onnx_or = |name: &str, dflt: [i64; 2]| ints(conv, name).unwrap_or_else(|| dflt.to_vec());
    let as_usize = |v: &[i64]| {
        v.iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<Vec<_>>>()
    };
    if spec.kernel != [kh, kw]
        || Some(spec.strides.to_vec()) != as_usize(&onnx_or("strides", [1, 1]))
        || Some(spec.dil.to_vec()) != as_usize(&onnx_or("dilations", [1, 1]))
    {
        return None;
    }
    let ([sh, sw], [dh, dwx], [pt, pl], [pb, pr]) =
        (spec.strides, spec.dil, spec.before, spec.after);
    let in_shape: Vec<usize> = model
        .outlet_fact(dw.inputs[0])
        .ok()?
        .shape
        .as_concrete()?
        .to_vec();
    let out_fact = model.outlet_fact(succ.id.into()).ok()?;
    let out_shape: TVec<usize> = out_fact.shape.as_concrete()?.into();
    if model.outlet_fact(dw.inputs[0]).ok()?.datum_type != f32::datum_type()
        || out_fact.datum_type != f32::datum_type()
    {
        return None;
    }
    // tract's kernel input says the layout: [C, 1, kh·kw] for channel-first
    // data, [1, kh·kw, C] (tap-major) for channel-last.
    let kshape: Vec<usize> = model
        .outlet_fact(dw.inputs[1])
        .ok()?
        .shape
        .as_concrete()?
        .to_vec();
    let channel_first = match kshape[..] {
        [g, 1, t] if g == c && t == kh * kw => true,
        [1, t, g] if g == c && t == kh * kw => false,
        _ => return None,
    };
    let ((ih, iw), (oh, ow)) = if channel_first {
        (chw(&in_shape, c)?, chw(&out_shape, c)?)
    } else {
        (hwc(&in_shape, c)?, hwc(&out_shape, c)?)
    };
    if sh == 0
        || sw == 0
        || dh == 0
        || dwx == 0
        || in_shape.len() != out_shape.len()
        || spec.input != [ih, iw]
    {
        return None;
    }
    let span = |i: usize, k: usize, d: usize, s: usize, p0: usize, p1: usize| {
        (i + p0 + p1)
            .checked_sub((k - 1) * d + 1)
            .map(|v| v / s + 1)
    };
    if span(ih, kh, dh, sh, pt, pb)? != oh || span(iw, kw, dwx, sw, pl, pr)? != ow {
        return None;
    }
    let (lo, hi) = clip_bounds(clip, inits, consts)?;
    let g = Geometry {
        c,
        ih,
        iw,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw: dwx,
        pt,
        pl,
        oh,
        ow,
    };
    if !channel_first {
        let op = FusedDepthwise::new(g, &w, bias.as_deref(), lo, hi, out_shape)?;
        return Some((op, dw.inputs[0], succ.id));
    }
    // The clamp before: ONNX Clip (→ Pad) → Conv, which tract made a Max+Min
    // chain node named after the Clip, read only by this convolution.
    let mut before = producers.get(conv.input.first()?.as_str())?;
    if before.op_type == "Pad" {
        before = producers.get(before.input.first()?.as_str())?;
    }
    let pred = model.node(dw.inputs[0].node);
    let fused_input = (before.op_type == "Clip"
        && unique(&before.name)
        && is_clamp_of(model, pred, before)
        && pred.outputs[0].successors.len() == 1)
        .then(|| clip_bounds(before, inits, consts))
        .flatten();
    log::debug!(
        "{}: channel-first; before it {:?} ({}), tract node {:?} ({}, {} inputs, {} successors); input clamp fused: {}",
        conv.name,
        before.name,
        before.op_type,
        pred.name,
        pred.op.name(),
        pred.inputs.len(),
        pred.outputs[0].successors.len(),
        fused_input.is_some()
    );
    let input = if fused_input.is_some() {
        pred.inputs[0]
    } else {
        dw.inputs[0]
    };
    if model.outlet_fact(input).ok()?.shape.as_concrete()? != in_shape.as_slice() {
        return None;
    }
    let op = FusedDepthwise::new_channel_first(
        g,
        &w,
        bias.as_deref(),
        (lo, hi),
        fused_input,
        out_shape,
    )?;
    Some((op, input, succ.id))
}

/// tract's `DepthWise` geometry, from its description
/// (`input: 112,112 kernel: 3,3 strides: 2,2 dil: 1,1 pad: Explicit([0, 0], [1, 1])`).
#[derive(Debug, PartialEq)]
struct PatchSpec {
    input: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dil: [usize; 2],
    before: [usize; 2],
    after: [usize; 2],
}

/// Parses [`PatchSpec`] from tract 0.23.9's `Debug` of its patch; `None`
/// for anything else (other padding kinds, another format), which leaves the
/// node to tract.
fn parse_patch(info: &str) -> Option<PatchSpec> {
    fn pair(s: &str) -> Option<[usize; 2]> {
        let v: Vec<usize> = s
            .split(',')
            .map(|d| d.trim().parse().ok())
            .collect::<Option<_>>()?;
        v.try_into().ok()
    }
    let field = |key: &str| -> Option<&str> {
        let rest = &info[info.find(key)? + key.len()..];
        rest.split_whitespace().next()
    };
    let pad = &info[info.find("pad: ")? + 5..];
    let (before, after) = if let Some(p) = pad.strip_prefix("Explicit([") {
        let (b, rest) = p.split_once("], [")?;
        let (a, _) = rest.split_once("])")?;
        (pair(b)?, pair(a)?)
    } else if pad.starts_with("Valid") {
        ([0, 0], [0, 0])
    } else {
        return None;
    };
    Some(PatchSpec {
        input: pair(field("input: ")?)?,
        kernel: pair(field("kernel: ")?)?,
        strides: pair(field("strides: ")?)?,
        dil: pair(field("dil: ")?)?,
        before,
        after,
    })
}

/// `[min, max]` of an ONNX `Clip`: inputs 1 and 2 (opset ≥ 11, constants),
/// or the `min`/`max` attributes (older opsets); a missing bound is ±∞.
fn clip_bounds(
    clip: &pb::NodeProto,
    inits: &HashMap<&str, &pb::TensorProto>,
    consts: &HashMap<&str, &pb::TensorProto>,
) -> Option<(f32, f32)> {
    let scalar = |ix: usize, attr: &str, default: f32| -> Option<f32> {
        match clip.input.get(ix).filter(|s| !s.is_empty()) {
            Some(name) => match f32_tensor(name, inits, consts)?.as_slice() {
                [v] => Some(*v),
                _ => None,
            },
            None => Some(
                clip.attribute
                    .iter()
                    .find(|a| a.name == attr)
                    .map_or(default, |a| a.f),
            ),
        }
    };
    Some((
        scalar(1, "min", f32::NEG_INFINITY)?,
        scalar(2, "max", f32::INFINITY)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have_avx512() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Depthwise convolution + bias + clamp by the definition, NHWC.
    fn reference(g: &Geometry, x: &[f32], w_oihw: &[f32], b: &[f32], lo: f32, hi: f32) -> Vec<f32> {
        let mut y = vec![0f32; g.oh * g.ow * g.c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for c in 0..g.c {
                    let mut s = b[c];
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                            let ix = (ox * g.sw + kx * g.dw) as isize - g.pl as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.ih && (ix as usize) < g.iw {
                                s += w_oihw[(c * g.kh + ky) * g.kw + kx]
                                    * x[(iy as usize * g.iw + ix as usize) * g.c + c];
                            }
                        }
                    }
                    y[(oy * g.ow + ox) * g.c + c] = s.clamp(lo, hi);
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_definition_for_strides_pads_kernels_and_channel_tails() {
        if !have_avx512() {
            return;
        }
        // (c, ih, iw, k, stride, dilation, pad before, pad after)
        for (c, ih, iw, k, s, d, p0, p1) in [
            (32, 9, 11, 3, 1, 1, 1, 1),
            (40, 12, 12, 3, 2, 1, 0, 1),
            (16, 14, 14, 5, 1, 1, 2, 2),
            (21, 7, 9, 5, 2, 1, 1, 2),
            (48, 10, 13, 3, 1, 2, 2, 2),
            (5, 3, 3, 3, 1, 1, 1, 1),
        ] {
            let oh = (ih + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
            let ow = (iw + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
            let g = Geometry {
                c,
                ih,
                iw,
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                dh: d,
                dw: d,
                pt: p0,
                pl: p0,
                oh,
                ow,
            };
            let x: Vec<f32> = (0..ih * iw * c)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..c * k * k)
                .map(|i| ((i * 11 % 23) as f32 - 11.0) / 10.0)
                .collect();
            let b: Vec<f32> = (0..c).map(|i| i as f32 / 10.0 - 1.0).collect();
            let op = FusedDepthwise::new(g, &w, Some(&b), 0.0, 6.0, tvec![oh, ow, c]).unwrap();
            let mut y = vec![f32::NAN; oh * ow * c];
            op.compute(&x, &mut y, &mut Vec::new()).unwrap();
            let want = reference(&g, &x, &w, &b, 0.0, 6.0);
            for (i, (a, e)) in y.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 1e-4, "{g:?} at {i}: {a} vs {e}");
            }
        }
    }

    /// Channel-first, stride 1, with the previous layer's clamp fused on
    /// the input: the definition on NCHW data, input clamped before the
    /// zero padding (as ONNX Clip → Pad → Conv).
    #[test]
    fn channel_first_with_input_clamp_matches_the_definition() {
        if !have_avx512() {
            return;
        }
        for (c, ih, iw, k, p0, p1) in [(3, 9, 21, 3, 1, 1), (2, 5, 17, 5, 2, 2), (4, 6, 6, 3, 0, 1)]
        {
            let (oh, ow) = (ih + p0 + p1 - k + 1, iw + p0 + p1 - k + 1);
            let g = Geometry {
                c,
                ih,
                iw,
                kh: k,
                kw: k,
                sh: 1,
                sw: 1,
                dh: 1,
                dw: 1,
                pt: p0,
                pl: p0,
                oh,
                ow,
            };
            let x: Vec<f32> = (0..c * ih * iw)
                .map(|i| ((i * 37 % 101) as f32 - 40.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..c * k * k)
                .map(|i| ((i * 11 % 23) as f32 - 11.0) / 10.0)
                .collect();
            let b: Vec<f32> = (0..c).map(|i| i as f32 - 1.0).collect();
            let op = FusedDepthwise::new_channel_first(
                g,
                &w,
                Some(&b),
                (0.0, 6.0),
                Some((0.0, 6.0)),
                tvec![1, c, oh, ow],
            )
            .unwrap();
            let mut y = vec![f32::NAN; c * oh * ow];
            op.compute(&x, &mut y, &mut Vec::new()).unwrap();
            // The definition, through the channel-last reference on
            // transposed, clamped data.
            let nhwc = |v: &[f32], h: usize, wd: usize, f: &dyn Fn(f32) -> f32| {
                let mut o = vec![0f32; v.len()];
                for ch in 0..c {
                    for i in 0..h * wd {
                        o[i * c + ch] = f(v[ch * h * wd + i]);
                    }
                }
                o
            };
            let xc = nhwc(&x, ih, iw, &|v| v.clamp(0.0, 6.0));
            let want = reference(&g, &xc, &w, &b, 0.0, 6.0);
            let got = nhwc(&y, oh, ow, &|v| v);
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 1e-4, "{g:?} at {i}: {a} vs {e}");
            }
        }
        // Other strides are left to tract.
        let mut g2 = Geometry {
            c: 1,
            ih: 4,
            iw: 4,
            kh: 3,
            kw: 3,
            sh: 2,
            sw: 2,
            dh: 1,
            dw: 1,
            pt: 1,
            pl: 1,
            oh: 2,
            ow: 2,
        };
        assert!(FusedDepthwise::new_channel_first(
            g2,
            &[0.0; 9],
            None,
            (0.0, 6.0),
            None,
            tvec![1, 1, 2, 2]
        )
        .is_none());
        g2.sh = 1;
        g2.sw = 1;
        g2.oh = 4;
        g2.ow = 4;
        assert!(FusedDepthwise::new_channel_first(
            g2,
            &[0.0; 9],
            None,
            (0.0, 6.0),
            None,
            tvec![1, 1, 4, 4]
        )
        .is_some());
    }

    /// A 3×3, stride 1, "same"-padded geometry: `c` channels, `h × w` in and out.
    fn same_3x3(c: usize, h: usize, w: usize) -> Geometry {
        Geometry {
            c,
            ih: h,
            iw: w,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 1,
            pl: 1,
            oh: h,
            ow: w,
        }
    }

    #[test]
    fn a_kept_output_is_overwritten_only_when_nothing_else_holds_it() {
        if !have_avx512() {
            return;
        }
        let g = same_3x3(3, 6, 7);
        let w: Vec<f32> = (0..27).map(|i| (i % 5) as f32 / 4.0 - 0.5).collect();
        let mut op =
            FusedDepthwise::new_channel_first(g, &w, None, (0.0, 6.0), None, tvec![1, 3, 42])
                .unwrap();
        op.reuse_output = true;
        let input = |k: f32| -> TValue {
            let x: Vec<f32> = (0..3 * 42).map(|i| (i % 9) as f32 * k).collect();
            tensor1(&x).into_shape(&[3, 6, 7]).unwrap().into_tvalue()
        };
        let fresh = |x: &TValue| {
            op.eval(&EvalContext::out_of_plan(), tvec![x.clone()])
                .unwrap()[0]
                .clone()
        };
        let ctx = EvalContext::out_of_plan();
        let mut state = op.state(&ctx).unwrap().expect("reuse_output gives a state");
        let (a, b) = (input(0.5), input(-0.25));
        // First frame: a new tensor, kept.
        let ya = state.eval(&ctx, &op, tvec![a.clone()]).unwrap()[0].clone();
        assert_eq!(ya, fresh(&a));
        // While the caller still holds it, the next frame gets a new tensor
        // and the held one keeps its values.
        let yb = state.eval(&ctx, &op, tvec![b.clone()]).unwrap()[0].clone();
        assert_eq!(yb, fresh(&b));
        assert_eq!(ya, fresh(&a));
        let ptr_b = yb
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .as_ptr();
        // Once released, it is overwritten in place.
        drop((ya, yb));
        let ya = state.eval(&ctx, &op, tvec![a.clone()]).unwrap()[0].clone();
        assert_eq!(ya, fresh(&a));
        let again = ya
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .as_ptr();
        assert_eq!(again, ptr_b, "the released tensor was not reused");
        // Without reuse_output, no state: tract evaluates the op fresh.
        op.reuse_output = false;
        assert!(op.state(&ctx).unwrap().is_none());
    }

    #[test]
    fn wrong_sizes_are_refused() {
        let g = same_3x3(4, 3, 3);
        assert!(FusedDepthwise::new(g, &[0.0; 35], None, 0.0, 6.0, tvec![3, 3, 4]).is_none());
        let op = FusedDepthwise::new(g, &[0.0; 36], None, 0.0, 6.0, tvec![3, 3, 4]).unwrap();
        assert!(op
            .compute(&[0.0; 35], &mut [0.0; 36], &mut Vec::new())
            .is_err());
    }

    #[test]
    fn tract_patch_description_is_parsed() {
        let p = parse_patch(
            "input: 112,112 kernel: 3,3 strides: 2,2 dil: 1,1 pad: Explicit([0, 0], [1, 1])",
        );
        assert_eq!(
            p,
            Some(PatchSpec {
                input: [112, 112],
                kernel: [3, 3],
                strides: [2, 2],
                dil: [1, 1],
                before: [0, 0],
                after: [1, 1]
            })
        );
        let v = parse_patch("input: 7,7 kernel: 5,5 strides: 1,1 dil: 1,1 pad: Valid").unwrap();
        assert_eq!((v.kernel, v.before, v.after), ([5, 5], [0, 0], [0, 0]));
        assert_eq!(
            parse_patch("input: 7,7 kernel: 5,5 strides: 1,1 dil: 1,1 pad: SameUpper"),
            None
        );
        assert_eq!(parse_patch("something else"), None);
    }

    #[test]
    fn layout_check_accepts_channel_last_only() {
        assert_eq!(hwc(&[56, 56, 96], 96), Some((56, 56)));
        assert_eq!(hwc(&[1, 14, 14, 672], 672), Some((14, 14)));
        assert_eq!(hwc(&[1, 32, 112, 112], 32), None);
        assert_eq!(chw(&[1, 32, 112, 112], 32), Some((112, 112)));
        // H == C: the shape alone cannot tell; `build` asks tract's kernel layout.
        assert_eq!(hwc(&[1, 96, 96, 96], 96), Some((96, 96)));
    }
}
