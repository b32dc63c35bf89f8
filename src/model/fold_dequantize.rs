//! Load-time folding of `DequantizeLinear` over constant weights
//! ("weight-only" int8 models).
//!
//! A weight-only int8 export stores each convolution's and the classifier's
//! weights as int8 (or uint8) with a per-channel scale and zero point, and
//! puts an ONNX `DequantizeLinear` in front of the `Conv`/`Gemm`:
//! `w = (w_q − zero_point) · scale`. The file is 4× smaller than fp32 and the
//! computation stays in float.
//!
//! tract 0.23 folds a constant subgraph only when the result is no bigger
//! than its inputs (`PropConst`, to keep quantised weights small), so it
//! keeps the large dequantisations in the plan and, on every frame, casts the
//! int8 weights to f32 and packs them again for its matrix kernels (EfficientNet-Lite0's
//! classifier alone: 1000×1280 weights, ≈ 2 ms per frame). This module
//! evaluates those `DequantizeLinear` nodes once, when the model is loaded,
//! and replaces them with f32 initializers, so the plan is the fp32 plan and
//! the weights are packed once. Memory grows by 3 bytes per weight (EfficientNet-Lite0:
//! 4.6 M weights, ≈ 14 MiB); the file on disk stays small.
//!
//! The arithmetic is the ONNX operator's (`y = (x − x_zero_point) · x_scale`,
//! ONNX operator spec, `DequantizeLinear`, opsets 10–21): the difference in
//! integers, then one f32 multiply, as tract's own kernel does it.

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// One quantised constant: its integer values (widened to i32) and dims.
struct IntConst {
    values: Vec<i32>,
    dims: Vec<usize>,
}

/// Reads an int8 / uint8 / int32 initializer stored inline (`raw_data` or
/// `int32_data`). `None` for anything else (other types, external data,
/// a size that does not match the dims), which leaves the node to tract.
fn int_const(t: &pb::TensorProto) -> Option<IntConst> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return None;
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let n: usize = dims.iter().product();
    let dt = DataType::try_from(t.data_type).ok()?;
    let values: Vec<i32> = match (dt, t.raw_data.is_empty()) {
        (DataType::Int8, false) => t.raw_data.iter().map(|&b| i32::from(b as i8)).collect(),
        (DataType::Uint8, false) => t.raw_data.iter().map(|&b| i32::from(b)).collect(),
        (DataType::Int32, false) => t
            .raw_data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        (DataType::Int8, true) => t.int32_data.iter().map(|&v| i32::from(v as i8)).collect(),
        (DataType::Uint8, true) => t.int32_data.iter().map(|&v| i32::from(v as u8)).collect(),
        (DataType::Int32, true) => t.int32_data.clone(),
        _ => return None,
    };
    (values.len() == n).then_some(IntConst { values, dims })
}

/// Reads an f32 tensor stored inline (`raw_data` little-endian or
/// `float_data`) and its element count; `None` for another type, external
/// data, or a size that does not match the dims.
pub(crate) fn f32_const(t: &pb::TensorProto) -> Option<(Vec<f32>, usize)> {
    if t.data_type != DataType::Float as i32
        || t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
    {
        return None;
    }
    let n: usize = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .product::<Option<usize>>()?;
    let v: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    (v.len() == n).then_some((v, n))
}

/// `DequantizeLinear(x, scale, zero_point)` on three constants, in f32:
/// `(x − zero_point[c]) · scale[c]` with `c` the index along `axis` for a
/// per-channel (1-D) scale, or one scale for all (per-tensor, scalar).
/// `None` where the node is not one this folds (blocked quantisation,
/// mismatched sizes), which leaves it to tract.
fn dequantize(
    x: &IntConst,
    scale: &[f32],
    zero: Option<&[i32]>,
    axis: i64,
    block_size: i64,
) -> Option<Vec<f32>> {
    if block_size != 0 {
        return None;
    }
    if let Some(z) = zero {
        if z.len() != scale.len() {
            return None;
        }
    }
    let zp = |c: usize| zero.map_or(0, |z| z[c]);
    if scale.len() == 1 {
        let (s, z) = (scale[0], zp(0));
        return Some(
            x.values
                .iter()
                .map(|&v| (i64::from(v) - i64::from(z)) as f32 * s)
                .collect(),
        );
    }
    let rank = x.dims.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let axis = usize::try_from(axis).ok().filter(|&a| a < x.dims.len())?;
    if x.dims[axis] != scale.len() {
        return None;
    }
    let inner: usize = x.dims[axis + 1..].iter().product();
    let channels = x.dims[axis];
    Some(
        x.values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / inner.max(1)) % channels;
                (i64::from(v) - i64::from(zp(c))) as f32 * scale[c]
            })
            .collect(),
    )
}

/// Every tensor name a node of `graph` or of its subgraphs reads.
fn names_read(graph: &pb::GraphProto, out: &mut std::collections::HashSet<String>) {
    for n in &graph.node {
        out.extend(n.input.iter().cloned());
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                names_read(g, out);
            }
        }
    }
}

fn int_attr(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

/// Replaces every `DequantizeLinear` whose inputs are all inline
/// initializers (int8, uint8 or int32 values; f32 scale; optional zero
/// point) with an f32 initializer of the same name as its output, and drops
/// the quantised initializers nothing else reads. Returns how many nodes were
/// folded. Nodes it cannot fold (activations, external data, blocked
/// quantisation, other types) are left for tract, so the graph means the same
/// either way.
pub fn fold_constant_dequantize(graph: &mut pb::GraphProto) -> usize {
    use std::collections::{HashMap, HashSet};
    let index: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut folded_nodes = HashSet::new();
    let mut operands: HashSet<String> = HashSet::new();
    let mut new_inits = Vec::new();
    for (ni, node) in graph.node.iter().enumerate() {
        if node.op_type != "DequantizeLinear"
            || !(node.domain.is_empty() || node.domain == "ai.onnx")
            || node.output.len() != 1
            || !(2..=3).contains(&node.input.len())
            // Only attributes whose meaning is folded here: `axis`,
            // `block_size` (0 only, below) and `output_dtype` FLOAT.
            || node.attribute.iter().any(|a| match a.name.as_str() {
                "axis" | "block_size" => false,
                "output_dtype" => a.i != DataType::Float as i32 as i64,
                _ => true,
            })
        {
            continue;
        }
        let init = |k: usize| {
            node.input
                .get(k)
                .filter(|n| !n.is_empty())
                .and_then(|n| index.get(n))
                .map(|&i| &graph.initializer[i])
        };
        let (Some(x), Some(s)) = (init(0).and_then(int_const), init(1).and_then(f32_const)) else {
            continue;
        };
        let zero = match node.input.get(2).filter(|n| !n.is_empty()) {
            None => None,
            Some(_) => match init(2) {
                Some(t) if t.data_type == init(0).map_or(-1, |x| x.data_type) => {
                    match int_const(t) {
                        Some(z) => Some(z.values),
                        None => continue,
                    }
                }
                _ => continue,
            },
        };
        let Some(y) = dequantize(
            &x,
            &s.0,
            zero.as_deref(),
            int_attr(node, "axis", 1),
            int_attr(node, "block_size", 0),
        ) else {
            continue;
        };
        let mut raw = Vec::with_capacity(y.len() * 4);
        for v in &y {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        operands.extend(node.input.iter().filter(|n| !n.is_empty()).cloned());
        new_inits.push(pb::TensorProto {
            name: node.output[0].clone(),
            dims: x.dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: raw,
            ..Default::default()
        });
        folded_nodes.insert(ni);
    }
    if folded_nodes.is_empty() {
        return 0;
    }
    let mut i = 0;
    graph.node.retain(|_| {
        i += 1;
        !folded_nodes.contains(&(i - 1))
    });
    graph.initializer.extend(new_inits);
    // Drop the folded nodes' quantised operands (and their legacy
    // graph-input entries) that nothing reads any more: no node, including
    // those of subgraphs (If/Loop/Scan bodies), and no graph output.
    let mut used = HashSet::new();
    names_read(graph, &mut used);
    used.extend(graph.output.iter().map(|o| o.name.clone()));
    let dead: HashSet<String> = operands.into_iter().filter(|n| !used.contains(n)).collect();
    graph.initializer.retain(|t| !dead.contains(&t.name));
    graph.input.retain(|v| !dead.contains(&v.name));
    folded_nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_i8(name: &str, dims: &[i64], v: &[i8]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Int8 as i32,
            raw_data: v.iter().map(|&b| b as u8).collect(),
            ..Default::default()
        }
    }

    fn init_f32(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            float_data: v.to_vec(),
            ..Default::default()
        }
    }

    fn dq(x: &str, s: &str, z: Option<&str>, out: &str, axis: Option<i64>) -> pb::NodeProto {
        let mut input = vec![x.to_string(), s.to_string()];
        input.extend(z.map(str::to_string));
        pb::NodeProto {
            op_type: "DequantizeLinear".into(),
            input,
            output: vec![out.into()],
            attribute: axis
                .map(|a| pb::AttributeProto {
                    name: "axis".into(),
                    i: a,
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn floats(t: &pb::TensorProto) -> Vec<f32> {
        f32_const(t).map(|(v, _)| v).unwrap_or_default()
    }

    #[test]
    fn per_channel_weights_fold_to_the_onnx_formula() {
        // Two output channels of a 2×1×1×2 conv weight, scales 0.5 and 0.25,
        // zero points 1 and −2: y = (x − z[c]) · s[c].
        let mut g = pb::GraphProto {
            initializer: vec![
                init_i8("w_q", &[2, 1, 1, 2], &[3, -1, 6, -128]),
                init_f32("w_s", &[2], &[0.5, 0.25]),
                init_i8("w_z", &[2], &[1, -2]),
                init_f32("x", &[1], &[0.0]),
                init_f32("spare", &[1], &[0.0]),
            ],
            node: vec![
                dq("w_q", "w_s", Some("w_z"), "w", Some(0)),
                pb::NodeProto {
                    op_type: "Conv".into(),
                    input: vec!["x".into(), "w".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(fold_constant_dequantize(&mut g), 1);
        assert_eq!(g.node.len(), 1);
        assert_eq!(g.node[0].op_type, "Conv");
        let names: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["x", "spare", "w"],
            "the folded node's quantised operands are dropped, nothing else"
        );
        let w = &g.initializer[2];
        assert_eq!(w.dims, [2, 1, 1, 2]);
        assert_eq!(floats(w), [1.0, -1.0, 2.0, -31.5]);
    }

    #[test]
    fn per_tensor_scale_default_axis_and_no_zero_point() {
        // Scalar scale, no zero point, int32 data in int32_data (bias form).
        let mut g = pb::GraphProto {
            initializer: vec![
                pb::TensorProto {
                    name: "b_q".into(),
                    dims: vec![3],
                    data_type: DataType::Int32 as i32,
                    int32_data: vec![-4, 0, 10],
                    ..Default::default()
                },
                init_f32("b_s", &[], &[0.125]),
            ],
            node: vec![dq("b_q", "b_s", None, "b", None)],
            output: vec![pb::ValueInfoProto {
                name: "b".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(fold_constant_dequantize(&mut g), 1);
        assert!(g.node.is_empty());
        assert_eq!(floats(&g.initializer[0]), [-0.5, 0.0, 1.25]);
    }

    #[test]
    fn activations_and_shared_or_odd_inputs_are_left_to_tract() {
        let mut g = pb::GraphProto {
            initializer: vec![
                init_i8("w_q", &[2], &[1, 2]),
                init_f32("s", &[3], &[1.0, 2.0, 3.0]),
                init_f32("s1", &[], &[1.0]),
            ],
            node: vec![
                // Input is an activation, not an initializer.
                dq("act_q", "s1", None, "act", None),
                // Per-channel scale whose length does not match the axis.
                dq("w_q", "s", None, "w", Some(0)),
                // A second reader of w_q keeps it alive when another node folds.
                dq("w_q", "s1", None, "w2", None),
            ],
            output: vec![pb::ValueInfoProto {
                name: "w2".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(fold_constant_dequantize(&mut g), 1);
        let ops: Vec<&str> = g.node.iter().map(|n| n.output[0].as_str()).collect();
        assert_eq!(ops, ["act", "w"]);
        assert!(g.initializer.iter().any(|t| t.name == "w_q"));
        let w2 = g.initializer.iter().find(|t| t.name == "w2");
        assert_eq!(w2.map(floats), Some(vec![1.0, 2.0]));
    }
}
