//! ONNX graph surgery: one `model.onnx` = the backbone up to its embedding
//! output + the trained linear head, so that the daemon (and any other ONNX
//! runtime) runs the new model from a single file.
//!
//! The backbone's graph is decoded as `tract_onnx::pb::ModelProto` (prost
//! messages of the ONNX protobuf, <https://onnx.ai/onnx/repo-docs/IR.html>),
//! every output but the embedding is dropped together with the nodes and
//! initializers only they used (the ImageNet classifier), and the head is
//! appended:
//!
//! ```text
//! embedding [batch, D] ─► Gemm(W [K, D], b [K], transB = 1) ─► logits [batch, K]
//!   sigmoid:          logits ─► Sigmoid ─► probabilities [batch, N]
//!   entropic:         logits ─► Softmax(axis 1) ─► probabilities [batch, N]
//!   softmax-nothing:  logits [batch, N+1] ─► Softmax(axis 1) ─► Slice(columns 0..N) ─► probabilities [batch, N]
//! ```
//!
//! The outputs are `logits`, `probabilities` and the embedding (kept for the
//! kNN score), all f32 with the backbone's symbolic batch dimension.

use std::collections::HashSet;

use prost::Message;
use tract_onnx::pb;

use super::head::{Head, Loss};

/// Name of the raw head output `[batch, K]`.
pub const LOGITS: &str = "logits";
/// Name of the 0..1 per-label output `[batch, N]`.
pub const PROBABILITIES: &str = "probabilities";

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The backbone file is not an ONNX model.
    #[error("the backbone is not a readable ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The backbone graph lacks what the head needs.
    #[error("{0}")]
    Graph(String),
}

fn value_info(
    name: &str,
    batch: &pb::tensor_shape_proto::Dimension,
    k: usize,
) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        batch.clone(),
                        pb::tensor_shape_proto::Dimension {
                            denotation: String::new(),
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(
                                k as i64,
                            )),
                        },
                    ],
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: vec![data.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        name: name.to_string(),
        op_type: op.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

/// Keeps only the nodes, initializers and initializer inputs that the
/// graph's outputs need (nodes are topologically sorted in ONNX).
fn prune(g: &mut pb::GraphProto) {
    let mut needed: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; g.node.len()];
    for (i, n) in g.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let mut k = keep.into_iter();
    g.node.retain(|_| k.next().unwrap_or(false));
    let inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    g.initializer.retain(|t| needed.contains(&t.name));
    g.input
        .retain(|i| !inits.contains(&i.name) || needed.contains(&i.name));
}

/// Appends `head` to the backbone graph `backbone` (the bytes of its
/// `model.onnx`) after its output `embedding` (`[batch, D]`, D = `head.dim`)
/// and returns the new model's bytes, with the outputs `logits`
/// `[batch, K]`, `probabilities` `[batch, N]` and `embedding` (see the
/// module docs).
///
/// # Errors
/// [`ExportError`] when the backbone is not ONNX, has no output `embedding`,
/// an opset below 11, or already uses the names the head needs.
pub fn export(backbone: &[u8], embedding: &str, head: &Head) -> Result<Vec<u8>, ExportError> {
    let mut model = pb::ModelProto::decode(backbone)?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    if opset < 11 {
        return Err(ExportError::Graph(format!(
            "the backbone uses ONNX opset {opset}; the head needs opset 11 or later (re-export the backbone with a newer opset)"
        )));
    }
    let g = model
        .graph
        .as_mut()
        .ok_or_else(|| ExportError::Graph("the backbone file holds no graph".into()))?;
    let emb = g
        .output
        .iter()
        .find(|o| o.name == embedding)
        .cloned()
        .ok_or_else(|| {
            ExportError::Graph(format!(
                "the backbone has no output {embedding:?} (outputs: {})",
                g.output
                    .iter()
                    .map(|o| format!("{:?}", o.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let batch = match emb.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .and_then(|s| s.dim.first().cloned())
            .unwrap_or_default(),
        _ => pb::tensor_shape_proto::Dimension::default(),
    };
    // Drop the backbone's own classifier: keep only what the embedding needs.
    g.output.retain(|o| o.name == embedding);
    g.value_info.clear();
    prune(g);
    let taken: HashSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .chain(g.initializer.iter().map(|t| t.name.as_str()))
        .chain(g.input.iter().map(|i| i.name.as_str()))
        .collect();
    let names = [
        LOGITS,
        PROBABILITIES,
        "head.weight",
        "head.bias",
        "head.softmax",
        "head.starts",
        "head.ends",
        "head.axes",
    ];
    if let Some(n) = names.iter().find(|n| taken.contains(**n)) {
        return Err(ExportError::Graph(format!(
            "the backbone already has a tensor named {n:?}, which the head needs"
        )));
    }
    let (k, n) = (head.outputs(), head.labels);
    g.initializer
        .push(f32_tensor("head.weight", &[k, head.dim], &head.weight));
    g.initializer
        .push(f32_tensor("head.bias", &[k], &head.bias));
    g.node.push(node(
        "head/Gemm",
        "Gemm",
        &[embedding, "head.weight", "head.bias"],
        LOGITS,
        vec![int_attr("transB", 1)],
    ));
    match head.loss {
        Loss::Sigmoid => g.node.push(node(
            "head/Sigmoid",
            "Sigmoid",
            &[LOGITS],
            PROBABILITIES,
            vec![],
        )),
        Loss::Entropic => g.node.push(node(
            "head/Softmax",
            "Softmax",
            &[LOGITS],
            PROBABILITIES,
            vec![int_attr("axis", 1)],
        )),
        Loss::SoftmaxNothing => {
            g.node.push(node(
                "head/Softmax",
                "Softmax",
                &[LOGITS],
                "head.softmax",
                vec![int_attr("axis", 1)],
            ));
            g.initializer.push(i64_tensor("head.starts", &[0]));
            g.initializer.push(i64_tensor("head.ends", &[n as i64]));
            g.initializer.push(i64_tensor("head.axes", &[1]));
            g.node.push(node(
                "head/Slice",
                "Slice",
                &["head.softmax", "head.starts", "head.ends", "head.axes"],
                PROBABILITIES,
                vec![],
            ));
        }
    }
    g.output = vec![
        value_info(LOGITS, &batch, k),
        value_info(PROBABILITIES, &batch, n),
        emb,
    ];
    model.producer_name = "camtrapd train".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    Ok(model.encode_to_vec())
}
