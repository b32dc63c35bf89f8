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
//!   second opinions:  head logits, the backbone's own ImageNet logits and the embedding
//!                     ─► combined logits [batch, N] ─► Sigmoid ─► probabilities [batch, N]
//! ```
//!
//! With second opinions ([`super::evidence`]) the backbone's ImageNet
//! classifier stays in the graph (not as an output). The outputs are `logits`, `probabilities` and the embedding (kept for the
//! kNN score), all f32 with the backbone's symbolic batch dimension.

use std::collections::HashSet;

use prost::Message;
use tract_onnx::pb;

use super::evidence::{Evidence, BC_EPSILON};
use super::head::{Head, Loss};

/// Name of the raw head output `[batch, K]`.
pub const LOGITS: &str = "logits";
/// Name of the 0..1 per-label output `[batch, N]`.
pub const PROBABILITIES: &str = "probabilities";
/// The head's own logits inside a graph with second opinions.
pub const HEAD_LOGITS: &str = "head.logits";
/// The backbone's ImageNet logits inside a graph with second opinions.
pub const IMAGENET: &str = "evidence.imagenet_logits";

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

fn ints_attr(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
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
/// module docs). With `evidence` (the second opinions and the name of the
/// backbone's ImageNet logits output), the backbone's classifier is kept
/// inside the graph and `logits` is the combined per-label logit of
/// [`super::evidence`].
///
/// # Errors
/// [`ExportError`] when the backbone is not ONNX, has no output `embedding`
/// (or no ImageNet output for `evidence`), an opset below 11, or already
/// uses the names the head needs.
pub fn export(
    backbone: &[u8],
    embedding: &str,
    head: &Head,
    evidence: Option<(&Evidence, &str)>,
) -> Result<Vec<u8>, ExportError> {
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
    // The backbone's ImageNet logits stay inside the graph for the second
    // opinions, renamed so that they never clash with the head's names;
    // everything else the new outputs do not need (without evidence: the
    // whole classifier) is pruned at the end.
    if let Some((_, imagenet)) = evidence {
        if !g.output.iter().any(|o| o.name == imagenet) {
            return Err(ExportError::Graph(format!(
                "the backbone has no output {imagenet:?} (its ImageNet logits), which the second opinions need"
            )));
        }
        for n in &mut g.node {
            for t in n.output.iter_mut().chain(n.input.iter_mut()) {
                if t == imagenet {
                    *t = IMAGENET.to_string();
                }
            }
        }
    }
    g.output.retain(|o| o.name == embedding);
    g.value_info.clear();
    if evidence.is_none() {
        prune(g);
    }
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
        HEAD_LOGITS,
        "head.weight",
        "head.bias",
        "head.softmax",
        "head.starts",
        "head.ends",
        "head.axes",
    ];
    if let Some(n) = names.iter().find(|n| taken.contains(**n)).or_else(|| {
        taken
            .iter()
            .find(|t| t.starts_with("evidence.") && **t != IMAGENET)
    }) {
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
        if evidence.is_some() {
            HEAD_LOGITS
        } else {
            LOGITS
        },
        vec![int_attr("transB", 1)],
    ));
    if let Some((ev, _)) = evidence {
        if head.loss == Loss::SoftmaxNothing || ev.labels != n || ev.dim != head.dim {
            return Err(ExportError::Graph(format!(
                "second opinions need a {n}-label head without a \"nothing\" output on {}-wide embeddings (got {} labels, {}-wide, loss {})",
                head.dim, ev.labels, ev.dim, head.loss
            )));
        }
        append_evidence(g, opset, embedding, ev);
        g.node.push(node(
            "head/Sigmoid",
            "Sigmoid",
            &[LOGITS],
            PROBABILITIES,
            vec![],
        ));
    } else {
        append_activation(g, head);
    }
    g.output = vec![
        value_info(LOGITS, &batch, if evidence.is_some() { n } else { k }),
        value_info(PROBABILITIES, &batch, n),
        emb,
    ];
    prune(g);
    model.producer_name = "camtrapd train".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    Ok(model.encode_to_vec())
}

/// The second opinions as ONNX nodes (see [`super::evidence`]): from the
/// backbone's ImageNet logits ([`IMAGENET`]) and `embedding` to [`LOGITS`]:
///
/// ```text
/// imagenet ─► Mul(1/T) ─► Softmax ─► Sqrt ─► MatMul(√q [C, N]) ─► Add(ε) ─► Log ──────────┐
/// embedding ─► Div(‖x‖) ─► MatMul(bank [D, M]) ─► Reshape [B, 1, M] ─► Add(mask [N, M])     │
///           ─► ReduceMax(axis 2) ─► Mul(b) ──────────────────────────────────────────────┤
/// head logits ─► Mul(a) ─────────────────────────────────────────────────────────► Add ─► Add(c) ─► logits
/// ```
fn append_evidence(g: &mut pb::GraphProto, opset: i64, embedding: &str, ev: &Evidence) {
    let (n, c, d, m) = (ev.labels, ev.classes, ev.dim, ev.bank_labels.len());
    let p = &ev.params;
    let scalar = |name: &str, v: f32| f32_tensor(name, &[1], &[v]);
    // √q transposed to [C, N], the bank transposed to [D, M].
    let mut q_t = vec![0.0f32; c * n];
    for l in 0..n {
        for j in 0..c {
            q_t[j * n + l] = ev.sqrt_profile[l * c + j];
        }
    }
    let mut bank_t = vec![0.0f32; d * m];
    for r in 0..m {
        for j in 0..d {
            bank_t[j * m + r] = ev.bank[r * d + j];
        }
    }
    // 0 where the bank row belongs to the label, -10 elsewhere (cosines are >= -1).
    let mut mask = vec![-10.0f32; n * m];
    for (r, &l) in ev.bank_labels.iter().enumerate() {
        mask[l * m + r] = 0.0;
    }
    g.initializer.extend([
        scalar("evidence.inv_t", 1.0 / p.temperature),
        f32_tensor("evidence.sqrt_profile_t", &[c, n], &q_t),
        scalar("evidence.eps", BC_EPSILON),
        f32_tensor("evidence.ones", &[d, 1], &vec![1.0; d]),
        scalar("evidence.tiny", 1e-12),
        f32_tensor("evidence.bank_t", &[d, m], &bank_t),
        i64_tensor("evidence.shape", &[0, 1, m as i64]),
        f32_tensor("evidence.mask", &[n, m], &mask),
        scalar("evidence.a", p.head_weight),
        scalar("evidence.b", p.knn_weight),
        scalar("evidence.c", p.offset),
    ]);
    let nodes = [
        ("Mul", vec![IMAGENET, "evidence.inv_t"], "evidence.scaled"),
        ("Softmax", vec!["evidence.scaled"], "evidence.p"),
        ("Sqrt", vec!["evidence.p"], "evidence.sqrt_p"),
        (
            "MatMul",
            vec!["evidence.sqrt_p", "evidence.sqrt_profile_t"],
            "evidence.bc",
        ),
        (
            "Add",
            vec!["evidence.bc", "evidence.eps"],
            "evidence.bc_eps",
        ),
        ("Log", vec!["evidence.bc_eps"], "evidence.log_bc"),
        ("Mul", vec![embedding, embedding], "evidence.sq"),
        (
            "MatMul",
            vec!["evidence.sq", "evidence.ones"],
            "evidence.sumsq",
        ),
        ("Sqrt", vec!["evidence.sumsq"], "evidence.norm"),
        (
            "Max",
            vec!["evidence.norm", "evidence.tiny"],
            "evidence.norm_safe",
        ),
        (
            "Div",
            vec![embedding, "evidence.norm_safe"],
            "evidence.unit",
        ),
        (
            "MatMul",
            vec!["evidence.unit", "evidence.bank_t"],
            "evidence.sims",
        ),
        (
            "Reshape",
            vec!["evidence.sims", "evidence.shape"],
            "evidence.sims3",
        ),
        (
            "Add",
            vec!["evidence.sims3", "evidence.mask"],
            "evidence.masked",
        ),
        ("ReduceMax", vec!["evidence.masked"], "evidence.knn"),
        ("Mul", vec![HEAD_LOGITS, "evidence.a"], "evidence.z"),
        ("Mul", vec!["evidence.knn", "evidence.b"], "evidence.kw"),
        ("Add", vec!["evidence.z", "evidence.log_bc"], "evidence.s1"),
        ("Add", vec!["evidence.s1", "evidence.kw"], "evidence.s2"),
        ("Add", vec!["evidence.s2", "evidence.c"], LOGITS),
    ];
    for (i, (op, inputs, out)) in nodes.into_iter().enumerate() {
        let mut attrs = Vec::new();
        let mut inputs = inputs;
        match op {
            "Softmax" => attrs.push(int_attr("axis", 1)),
            // ReduceMax takes its axes as an attribute before opset 18, as an input from 18.
            "ReduceMax" if opset < 18 => {
                attrs.push(ints_attr("axes", &[2]));
                attrs.push(int_attr("keepdims", 0));
            }
            "ReduceMax" => {
                g.initializer.push(i64_tensor("evidence.axes", &[2]));
                inputs.push("evidence.axes");
                attrs.push(int_attr("keepdims", 0));
            }
            _ => {}
        }
        g.node.push(node(
            &format!("evidence/{i:02}_{op}"),
            op,
            &inputs,
            out,
            attrs,
        ));
    }
}

/// The head's activation nodes after its Gemm (no second opinions).
fn append_activation(g: &mut pb::GraphProto, head: &Head) {
    let n = head.labels;
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
}
