//! Drops the zero-point terms tract adds for a zero zero point: a load-time
//! graph pass, on every architecture.
//!
//! tract 0.23.9 lowers a quantised convolution or matrix product (ONNX
//! `QLinearConv`, `QLinearMatMul`) into an integer product plus the
//! zero-point compensation of the identity
//! `Σ(a − a₀)(b − b₀) = Σab − a₀Σb − b₀Σa + k·a₀·b₀`
//! (`tract_core::ops::matmul::quant::compensate_zero_points`), then the
//! requantisation. It wires every term whatever the zero points are. With
//! symmetric int8 weights (onnxruntime's default for CNN weights) the
//! weights' zero point is 0, so `b₀Σa` is a frame-sized tensor of zeros that
//! is computed on every frame: a sum over each output point's inputs
//! (`Reduce<Sum>`), a multiplication by the constant 0, and a subtraction,
//! each a generic element-wise loop. Worse, that subtraction's operand is not
//! a per-row or per-column vector of the product, so tract cannot fuse it
//! into its matrix kernel, and every requantisation step after it (scale,
//! output zero point, clamp to 0..255, cast to u8) also stays a separate
//! generic pass over the tensor.
//!
//! On EfficientNet-Lite0 with QLinearConv on its 1×1 convolutions and
//! per-channel weights (`scripts/quantize_int8.py --form qop-pw`), dropping
//! them takes inference from 610 to 440 M instructions per frame on a
//! Cortex-A76 (`scripts/arm-cost.sh`). With one weight scale per layer
//! (`--per-tensor`) tract's own declutter already removes the term, and this
//! pass finds nothing to do.
//!
//! [`DropZeroTerms`] removes every integer `Sub(x, z)` or `Add(x, z)` whose
//! `z` is provably zero: a constant of zeros, or a product with one, through
//! casts and axis changes. It is exact: integer arithmetic, and the node is
//! only bypassed when `x` already has the node's datum type and shape. tract's
//! own passes then fuse what follows into the product. It is added to
//! tract's codegen optimiser ([`optimizer`]), so it runs to tract's fixpoint
//! with the other passes.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::optim::{Optimizer, OptimizerSession, TypedPass};

/// Environment variable that, when set (to anything), leaves tract's
/// zero-point terms in place (to compare, or to rule this pass out).
pub const DISABLE_ENV: &str = "CAMTRAPD_NO_ZERO_POINT_FOLD";

/// How deep [`is_zero`] follows casts, axis changes and products.
const MAX_DEPTH: usize = 8;

/// tract's codegen optimiser (`Optimizer::codegen`) with [`DropZeroTerms`]
/// added as its last pass, unless [`DISABLE_ENV`] is set.
pub fn optimizer() -> Optimizer {
    let mut opt = Optimizer::codegen();
    if std::env::var_os(DISABLE_ENV).is_none() {
        let at = opt.passes.len();
        opt.add_pass(at, Box::new(DropZeroTerms));
    }
    opt
}

/// The pass: bypasses integer `x − 0` and `x + 0` nodes (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct DropZeroTerms;

impl TypedPass for DropZeroTerms {
    fn reset(&mut self) -> TractResult<()> {
        Ok(())
    }

    fn next(
        &mut self,
        _session: &mut OptimizerSession,
        model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        for node in model.nodes() {
            if let Some(patch) = bypass(model, node)? {
                return Ok(Some(patch));
            }
        }
        Ok(None)
    }
}

/// The patch that bypasses `node` if it adds or subtracts a zero.
fn bypass(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(op) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    let sides: &[(usize, usize)] = match op.0.name() {
        "Sub" => &[(0, 1)],
        "Add" => &[(0, 1), (1, 0)],
        _ => return Ok(None),
    };
    if node.inputs.len() != 2 || node.outputs.len() != 1 {
        return Ok(None);
    }
    let out = &node.outputs[0].fact;
    if !out.datum_type.is_integer() {
        return Ok(None);
    }
    for &(keep, zero) in sides {
        let x = node.inputs[keep];
        let xf = model.outlet_fact(x)?;
        if xf.datum_type != out.datum_type || xf.shape != out.shape {
            continue;
        }
        if is_zero(model, node.inputs[zero], 0)? {
            let patch =
                TypedModelPatch::rewire(model, &[x], &[node.id.into()], &|_p, i| Ok(i.into()))?;
            return Ok(Some(
                patch.with_context("camtrapd: drop a zero zero-point term"),
            ));
        }
    }
    Ok(None)
}

/// Whether every element of `outlet` is 0 whatever the input: a constant (or
/// uniform) tensor of zeros, or a cast, axis change or product of one.
fn is_zero(model: &TypedModel, outlet: OutletId, depth: usize) -> TractResult<bool> {
    let fact = model.outlet_fact(outlet)?;
    if let Some(k) = fact.konst.as_ref().or(fact.uniform.as_ref()) {
        return all_zero(k);
    }
    if depth >= MAX_DEPTH {
        return Ok(false);
    }
    let node = model.node(outlet.node);
    if node.op_is::<Cast>() || node.op_is::<AxisOp>() {
        return match node.inputs.first() {
            Some(&i) => is_zero(model, i, depth + 1),
            None => Ok(false),
        };
    }
    if let Some(op) = node.op_as::<TypedBinOp>() {
        if op.0.name() == "Mul" && node.outputs[0].fact.datum_type.is_integer() {
            for &i in &node.inputs {
                if is_zero(model, i, depth + 1)? {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn all_zero(t: &Tensor) -> TractResult<bool> {
    let t = t.cast_to::<f64>()?;
    let v = t.try_as_plain_ram()?;
    Ok(v.as_slice::<f64>()?.iter().all(|&x| x == 0.0))
}
