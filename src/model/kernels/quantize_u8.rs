//! Vectorisable f32 → u8 quantisation, and no clamp before it where the
//! quantiser's own saturation already clamps: a load-time graph pass, on
//! every architecture.
//!
//! In a model whose 1×1 convolutions are integer (`QLinearConv`) and whose
//! depthwise convolutions stay float, every block goes
//! depthwise (f32) → ReLU6 (`Max` + `Min`) → `QuantizeLinear` (u8) → integer
//! product. tract 0.23.9's `QuantizeLinearU8` rounds one value at a time
//! through a branchy `round_ties_to_even`, which no compiler vectorises:
//! about 9.5 instructions per element on a Cortex-A76
//! (`scripts/arm-cost.sh --ops`), 12 % of such a model's inference.
//!
//! [`rewrite`] runs on the decluttered graph, before tract's code
//! generation:
//! * each `QuantizeLinearU8` on an f32 input becomes [`QuantizeU8`], the
//!   same arithmetic (`clamp(round_ties_even(x · scale) + zero_point, 0,
//!   255)`) in a loop the compiler turns into 4 (NEON) or 16 (AVX-512)
//!   values per instruction;
//! * a `Max(x, lo)` / `Min(·, hi)` pair with constant bounds right before
//!   it is dropped when quantising `lo` already gives 0 and `hi` 255 (ReLU6
//!   with a scale of 6/255, as onnxruntime calibrates it): the quantiser is
//!   monotonic and saturates, so the clamp changes no output. Not where the
//!   x86 depthwise fusion ([`super::depthwise_fused`]) runs: there the clamp
//!   is fused into the convolution, and dropping it cost more than it saved.
//!
//! Results are identical to tract's, except for inputs beyond ±2³¹
//! quantisation steps, where tract's integer sum wraps and this saturates.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::element_wise::{ElementWiseMiniOp, ElementWiseOp};
use tract_onnx::tract_core::ops::quant::QuantizeLinearU8;

/// Environment variable that, when set (to anything), keeps tract's
/// quantiser and clamps (to compare, or to rule this pass out).
pub const DISABLE_ENV: &str = "CAMTRAPD_NO_FAST_QUANTIZE";

/// Name of the operator in tract's profile.
pub const OP_NAME: &str = "QuantizeU8Simd";

/// `y = clamp(round_ties_even(x · scale) + zero_point, 0, 255)` for f32 `x`,
/// as ONNX `QuantizeLinear` to uint8 with `scale` = 1 / the ONNX scale
/// (tract's convention).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeU8 {
    /// Multiplier: 1 / the ONNX `y_scale`.
    pub scale: f32,
    /// Zero point, 0..=255.
    pub zero_point: i32,
}

impl Eq for QuantizeU8 {}

/// Quantises `x` into `y` (same length) with [`QuantizeU8`]'s arithmetic.
///
/// On aarch64 the rounding is `frintn`, one NEON instruction for 4 values.
/// Elsewhere (x86-64's baseline has no vector rounding instruction, so
/// `round_ties_even` would be a library call per value) the value is first
/// clamped to just outside the range that can reach 0..=255, then rounded
/// by adding and subtracting 1.5 · 2²³, which rounds to nearest, ties to
/// even, exactly for |v| < 2²²: the same result, in plain vector adds.
#[inline(never)]
pub fn quantize(x: &[f32], y: &mut [u8], scale: f32, zero_point: i32) {
    #[cfg(not(target_arch = "aarch64"))]
    let (lo, hi) = (-(zero_point as f32) - 1.0, 256.0 - zero_point as f32);
    for (y, x) in y.iter_mut().zip(x) {
        let v = x * scale;
        #[cfg(target_arch = "aarch64")]
        let r = v.round_ties_even();
        #[cfg(not(target_arch = "aarch64"))]
        let r = {
            const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
            (v.clamp(lo, hi) + MAGIC) - MAGIC
        };
        // `as i32` saturates (NaN gives 0, then the zero point), then the
        // u8 range.
        let q = (r as i32).saturating_add(zero_point);
        *y = q.clamp(0, 255) as u8;
    }
}

impl ElementWiseMiniOp for QuantizeU8 {
    fn name(&self) -> String {
        OP_NAME.to_string()
    }

    fn output_type(&self, _input_type: DatumType) -> Option<DatumType> {
        Some(u8::datum_type())
    }

    fn eval_out_of_place(&self, t: &Tensor, _out_dt: Option<DatumType>) -> TractResult<Tensor> {
        let plain = t.try_as_plain_ram()?;
        let x = plain.as_slice::<f32>()?;
        let mut out = Tensor::zero::<u8>(t.shape())?;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            quantize(x, view.as_slice_mut::<u8>()?, self.scale, self.zero_point);
        }
        Ok(out)
    }

    fn cost_per_element(&self, dt: DatumType) -> TVec<(Cost, usize)> {
        tvec!((Cost::FMA(dt), 1))
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "scale: {} zero_point: {}",
            self.scale, self.zero_point
        )])
    }
}

/// Applies both rewrites to `model` (decluttered, not yet optimised);
/// returns how many quantisers it replaced and clamps it dropped. Does
/// nothing when [`DISABLE_ENV`] is set.
///
/// # Errors
/// tract's, if a patch cannot be applied.
pub fn rewrite(model: &mut TypedModel) -> TractResult<(usize, usize)> {
    if std::env::var_os(DISABLE_ENV).is_some() {
        return Ok((0, 0));
    }
    let (mut replaced, mut dropped) = (0, 0);
    loop {
        let mut applied = false;
        for id in model.eval_order()? {
            let node = model.node(id);
            let Some(q) = node
                .op_as::<ElementWiseOp>()
                .and_then(|ew| ew.0.downcast_ref::<QuantizeLinearU8>())
            else {
                continue;
            };
            if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() {
                continue;
            }
            let (scale, zp) = (q.scale, i32::from(q.zero_point));
            // Where the x86 depthwise fusion runs, the clamp after a
            // depthwise convolution is fused into it at almost no cost, and
            // dropping it would undo that fusion: keep it there.
            let without_clamp = if super::depthwise_fused::enabled() {
                None
            } else {
                drop_clamp(model, node, scale, zp)?
            };
            if let Some(patch) = without_clamp {
                patch.apply(model)?;
                dropped += 1;
                applied = true;
                break;
            }
            let patch = TypedModelPatch::replace_single_op(
                model,
                node,
                &node.inputs,
                ElementWiseOp(
                    Box::new(QuantizeU8 {
                        scale,
                        zero_point: zp,
                    }),
                    None,
                ),
            )?;
            patch.apply(model)?;
            replaced += 1;
            applied = true;
            break;
        }
        if !applied {
            break;
        }
        model.compact()?;
    }
    Ok((replaced, dropped))
}

/// The quantiser's output for `x`.
fn q(x: f32, scale: f32, zp: i32) -> i32 {
    ((x * scale).round_ties_even() as i32)
        .saturating_add(zp)
        .clamp(0, 255)
}

/// A patch that feeds `quant` from before a `Max`/`Min` clamp it makes
/// redundant, if there is one.
fn drop_clamp(
    model: &TypedModel,
    quant: &TypedNode,
    scale: f32,
    zp: i32,
) -> TractResult<Option<TypedModelPatch>> {
    // Walk up through at most two Max/Min nodes with a scalar constant,
    // each read only by the next.
    let (mut lo, mut hi) = (None, None);
    let mut outlet = quant.inputs[0];
    for _ in 0..2 {
        let node = model.node(outlet.node);
        let Some(op) = node.op_as::<TypedBinOp>() else {
            break;
        };
        let name = op.0.name();
        if (name != "Max" && name != "Min")
            || node.inputs.len() != 2
            || node.outputs[0].successors.len() != 1
            || model.output_outlets()?.contains(&outlet)
        {
            break;
        }
        let Some((data, bound)) = split_const(model, node)? else {
            break;
        };
        if model.outlet_fact(data)?.shape != node.outputs[0].fact.shape
            || model.outlet_fact(data)?.datum_type != f32::datum_type()
        {
            break;
        }
        if name == "Max" && lo.is_none() {
            lo = Some(bound);
        } else if name == "Min" && hi.is_none() {
            hi = Some(bound);
        } else {
            break;
        }
        outlet = data;
    }
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(None);
    };
    if !(lo <= hi && q(lo, scale, zp) == 0 && q(hi, scale, zp) == 255) {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, outlet)?;
    let y = patch.wire_node(&quant.name, quant.op.clone(), &[x])?[0];
    patch.shunt_outside(model, quant.id.into(), y)?;
    Ok(Some(patch))
}

/// For a binary node with one scalar f32 constant input: (the other input,
/// the constant).
fn split_const(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(OutletId, f32)>> {
    for (c, d) in [(1, 0), (0, 1)] {
        let fact = model.outlet_fact(node.inputs[c])?;
        if let Some(k) = fact.konst.as_ref() {
            if k.len() == 1 && k.datum_type() == f32::datum_type() {
                let v = k.cast_to_scalar::<f32>()?;
                return Ok(Some((node.inputs[d], v)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract's own quantiser, for the comparison.
    fn tracts(x: f32, scale: f32, zp: i32) -> u8 {
        tract_onnx::tract_core::ops::quant::quantize_linear_f32_u8(x, scale, zp)
    }

    #[test]
    fn quantises_as_tract_does_including_ties_and_saturation() {
        let scale = 42.5;
        let mut xs: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.0037).collect();
        // Exact ties at this scale round to even: 0.5/42.5 → 0, 1.5/42.5 → 2.
        xs.extend([
            0.5 / 42.5,
            1.5 / 42.5,
            2.5 / 42.5,
            -0.5 / 42.5,
            6.0,
            6.01,
            -1e6,
            1e6,
        ]);
        for zp in [0, 100, 128, 255] {
            let mut y = vec![0u8; xs.len()];
            quantize(&xs, &mut y, scale, zp);
            for (x, y) in xs.iter().zip(&y) {
                assert_eq!(*y, tracts(*x, scale, zp), "x = {x}, zero point {zp}");
            }
        }
        // Beyond i32 (where tract's own sum overflows): saturated; NaN gives
        // the zero point.
        let mut y = [9u8; 5];
        quantize(
            &[0.5 / 42.5, 1.5 / 42.5, f32::NAN, 1e30, -1e30],
            &mut y,
            42.5,
            0,
        );
        assert_eq!(y, [0, 2, 0, 255, 0]);
    }

    #[test]
    fn a_clamp_is_redundant_only_when_its_bounds_quantise_to_0_and_255() {
        // ReLU6 at scale 255/6 = 42.5, zero point 0: both ends saturate.
        assert_eq!((q(0.0, 42.5, 0), q(6.0, 42.5, 0)), (0, 255));
        // A wider quantisation range: 6 maps to 128, the clamp matters.
        assert_eq!(q(6.0, 21.25, 0), 128);
        // A zero point of 10: 0 maps to 10, the lower bound matters.
        assert_eq!(q(0.0, 42.5, 10), 10);
    }
}
