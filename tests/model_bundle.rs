//! The model bundle: the committed default model, and every way a manifest
//! can disagree with its ONNX graph, refused with a message that names the
//! field and what is wrong.

mod common;

use std::path::{Path, PathBuf};

use camtrapd::model::{sha256_file, Model, ModelError};
use common::{default_model, fp32_model};

/// SHA-256 of the committed default model (weight-only int8 EfficientNet-Lite0).
const DEFAULT_MODEL_SHA256: &str =
    "f3c696685252d9b77000a491d2942c5ae1accbc2c7b9fa16dd0713170d31da6d";

#[test]
fn default_model_file_is_the_committed_one() {
    let sha = sha256_file(&default_model().join("model.onnx")).unwrap();
    assert_eq!(
        sha, DEFAULT_MODEL_SHA256,
        "models/efficientnet-lite0-imagenet/model.onnx changed"
    );
    let size = std::fs::metadata(default_model().join("model.onnx"))
        .unwrap()
        .len();
    assert!(
        size < 6_000_000,
        "the int8 model should be about 4.9 MB, is {size} bytes"
    );
    assert!(default_model().join("LICENSE").is_file());
}

#[test]
fn default_model_loads_with_symbolic_batch_pinned_to_one() {
    // The ONNX graph declares input [batch, 3, 224, 224] with a symbolic batch.
    let proto = {
        use tract_onnx::prelude::Framework;
        tract_onnx::onnx()
            .proto_model_for_path(default_model().join("model.onnx"))
            .unwrap()
    };
    let input = &proto.graph.as_ref().unwrap().input[0];
    let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().unwrap().value.clone()
    else {
        panic!("input is not a tensor")
    };
    let dims = &t.shape.unwrap().dim;
    assert!(
        matches!(
            dims[0].value,
            Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam(_))
        ),
        "batch should be symbolic: {dims:?}"
    );
    let m = Model::load(&default_model()).unwrap();
    assert_eq!(m.input_shape(), [1, 3, 224, 224]);
    assert_eq!(m.labels().len(), 1000);
    assert_eq!(m.labels()[386], "African elephant");
    assert_eq!(m.labels()[101], "tusker");
    assert_eq!(m.labels()[385], "Indian elephant");
    assert_eq!(m.embedding_dim(), Some(1280));
    assert_eq!(m.sha256(), DEFAULT_MODEL_SHA256);
}

/// A copy of the default bundle in a temp dir, with `edit` applied to the manifest text.
fn bundle(edit: impl Fn(String) -> String, onnx: Option<&[u8]>) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    std::fs::create_dir(&dir).unwrap();
    let bytes = match onnx {
        Some(b) => b.to_vec(),
        None => std::fs::read(default_model().join("model.onnx")).unwrap(),
    };
    std::fs::write(dir.join("model.onnx"), &bytes).unwrap();
    let sha = sha256_file(&dir.join("model.onnx")).unwrap();
    let text = std::fs::read_to_string(default_model().join("model.toml"))
        .unwrap()
        .replace(DEFAULT_MODEL_SHA256, &sha);
    std::fs::write(dir.join("model.toml"), edit(text)).unwrap();
    (tmp, dir)
}

fn load_err(dir: &Path) -> String {
    let e = Model::load(dir).unwrap_err();
    e.to_string()
}

#[test]
fn label_count_mismatch_names_both_counts() {
    let (_t, dir) = bundle(
        |t| {
            let start = t.find("labels = [").unwrap();
            let end = start + t[start..].find(']').unwrap();
            let twelve: Vec<String> = (0..12).map(|i| format!("\"animal {i}\"")).collect();
            format!(
                "{}labels = [{}{}",
                &t[..start],
                twelve.join(", "),
                &t[end..]
            )
        },
        None,
    );
    let e = load_err(&dir);
    assert!(
        e.contains("manifest lists 12 labels, output 'logits' has 1000"),
        "{e}"
    );
}

#[test]
fn wrong_layout_says_which_layout_the_graph_has() {
    let (_t, dir) = bundle(
        |t| t.replace("layout = \"NCHW\"", "layout = \"NHWC\""),
        None,
    );
    let e = load_err(&dir);
    assert!(
        e.ends_with(
            "manifest input.layout does not match model.onnx: input \"input\" is f32 ?×3×224×224; layout: the manifest says \"NHWC\", the graph's input is NCHW: set layout = \"NCHW\""
        ),
        "{e}"
    );
}

#[test]
fn wrong_datum_type_is_refused() {
    let (_t, dir) = bundle(
        |t| {
            t.replace("datum_type = \"f32\"", "datum_type = \"u8\"")
                .replace(
                    "normalisation = { mean = [127.0, 127.0, 127.0], std = [128.0, 128.0, 128.0] }",
                    "",
                )
        },
        None,
    );
    let e = load_err(&dir);
    assert!(
        e.ends_with(
            "manifest input.datum_type does not match model.onnx: input \"input\" is f32 ?×3×224×224; datum_type: the manifest says \"u8\", the graph takes f32: set datum_type = \"f32\" and give the normalisation the model was trained with, if any"
        ),
        "{e}"
    );
}

#[test]
fn wrong_size_input_and_output_names_are_refused() {
    let (_t, dir) = bundle(|t| t.replace("width = 224", "width = 256"), None);
    let e = load_err(&dir);
    assert!(
        e.ends_with(
            "manifest input.width does not match model.onnx: input \"input\" is f32 ?×3×224×224; width: the manifest says 256, the graph's input is 224 pixels: set width = 224"
        ),
        "{e}"
    );
    let (_t, dir) = bundle(
        |t| t.replace("[input]\nname = \"input\"", "[input]\nname = \"images\""),
        None,
    );
    let e = load_err(&dir);
    assert!(
        e.contains("input.name") && e.contains("no input \"images\"") && e.contains("\"input\""),
        "{e}"
    );
    let (_t, dir) = bundle(
        |t| t.replace("embedding = \"embedding\"", "embedding = \"features\""),
        None,
    );
    let e = load_err(&dir);
    assert!(
        e.contains("output.embedding") && e.contains("\"logits\", \"embedding\""),
        "{e}"
    );
}

#[test]
fn checksum_mismatch_is_refused() {
    let (_t, dir) = bundle(|t| t, None);
    let text = std::fs::read_to_string(dir.join("model.toml")).unwrap();
    let bad = text.replace(
        &sha256_file(&dir.join("model.onnx")).unwrap(),
        &"ab".repeat(32),
    );
    std::fs::write(dir.join("model.toml"), bad).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("provenance.sha256") && e.contains("sha256sum"),
        "{e}"
    );
}

#[test]
fn not_onnx_and_truncated_onnx_are_refused() {
    let (_t, dir) = bundle(|t| t, Some(b"this is not an ONNX file"));
    let e = Model::load(&dir).unwrap_err();
    assert!(matches!(e, ModelError::Onnx { .. }), "{e}");
    let full = std::fs::read(default_model().join("model.onnx")).unwrap();
    let (_t, dir) = bundle(|t| t, Some(&full[..full.len() / 3]));
    let e = Model::load(&dir).unwrap_err();
    assert!(matches!(e, ModelError::Onnx { .. }), "{e}");
}

#[test]
fn missing_parts_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_err(&tmp.path().join("nope"));
    assert!(e.contains("no such folder"), "{e}");
    let e = load_err(tmp.path());
    assert!(e.contains("model.toml not found"), "{e}");
    std::fs::copy(
        default_model().join("model.toml"),
        tmp.path().join("model.toml"),
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.onnx not found"), "{e}");
}

#[test]
fn fp32_reference_bundle_loads() {
    let m = Model::load(&fp32_model()).unwrap();
    assert_eq!(m.labels().len(), 1000);
    assert_eq!(m.manifest().name, "efficientnet-lite0-imagenet-fp32");
}

#[test]
fn symbolic_batch_in_value_info_does_not_clash_with_pinned_batch() {
    // onnxruntime's quant_pre_process writes `value_info` shape annotations with
    // the symbolic batch; they must not conflict with batch = 1.
    use prost::Message;
    use tract_onnx::pb;
    let bytes = std::fs::read(default_model().join("model.onnx")).unwrap();
    let mut proto = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let conv = graph
        .node
        .iter()
        .find(|n| n.op_type == "Conv")
        .unwrap()
        .output[0]
        .clone();
    let dim = |v: pb::tensor_shape_proto::dimension::Value| pb::tensor_shape_proto::Dimension {
        denotation: String::new(),
        value: Some(v),
    };
    use pb::tensor_shape_proto::dimension::Value::{DimParam, DimValue};
    graph.value_info.push(pb::ValueInfoProto {
        name: conv,
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![
                        dim(DimParam("batch".into())),
                        dim(DimValue(32)),
                        dim(DimValue(112)),
                        dim(DimValue(112)),
                    ],
                }),
            })),
        }),
        doc_string: String::new(),
    });
    let (_t, dir) = bundle(|t| t, Some(&proto.encode_to_vec()));
    let m = Model::load(&dir).unwrap();
    assert_eq!(m.input_shape(), [1, 3, 224, 224]);
}

#[test]
fn logits_declared_as_probabilities_are_refused() {
    // Clamping logits to 0..1 would make every frame a "1.000" detection.
    let (_t, dir) = bundle(
        |t| t.replace("kind = \"logits\"", "kind = \"probabilities\""),
        None,
    );
    let e = load_err(&dir);
    assert!(
        e.contains("output.kind") && e.contains("set kind = \"logits\""),
        "{e}"
    );
}

#[test]
fn bad_normalisation_is_refused() {
    for (norm, want) in [
        ("normalisation = {}", "is empty"),
        ("normalisation = { scale = 0.0 }", "greater than 0"),
        (
            "normalisation = { mean = 127.0, std = -128.0 }",
            "greater than 0",
        ),
        (
            "normalisation = { mean = 127.0, std = [128.0, 128.0] }",
            "a number, or a list of 3 numbers",
        ),
    ] {
        let (_t, dir) = bundle(
            |t| {
                t.replace(
                    "normalisation = { mean = [127.0, 127.0, 127.0], std = [128.0, 128.0, 128.0] }",
                    norm,
                )
            },
            None,
        );
        let e = load_err(&dir);
        assert!(
            e.contains("input.normalisation") && e.contains(want),
            "{norm}: {e}"
        );
    }
}

#[test]
fn probabilities_declared_as_logits_are_refused() {
    // A graph that already ends in softmax, declared as logits, would be
    // softmaxed twice: every score about 1/1000, every frame rejected.
    use prost::Message;
    use tract_onnx::pb;
    let bytes = std::fs::read(default_model().join("model.onnx")).unwrap();
    let mut proto = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    graph.node.push(pb::NodeProto {
        input: vec!["logits".into()],
        output: vec!["probs".into()],
        name: "softmax_out".into(),
        op_type: "Softmax".into(),
        attribute: vec![pb::AttributeProto {
            name: "axis".into(),
            i: 1,
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut out = graph.output[0].clone();
    out.name = "probs".into();
    graph.output.push(out);
    let onnx = proto.encode_to_vec();
    let (_t, dir) = bundle(
        |t| t.replace("[output]\nname = \"logits\"", "[output]\nname = \"probs\""),
        Some(&onnx),
    );
    let e = load_err(&dir);
    assert!(
        e.contains("output.kind") && e.contains("set kind = \"probabilities\""),
        "{e}"
    );
    let (_t, dir) = bundle(
        |t| {
            t.replace(
                "[output]\nname = \"logits\"\nkind = \"logits\"",
                "[output]\nname = \"probs\"\nkind = \"probabilities\"",
            )
        },
        Some(&onnx),
    );
    let m = Model::load(&dir).unwrap();
    assert_eq!(m.manifest().output.name, "probs");
}

/// A bundle from tests/fixtures/models (made by scripts/make_test_models.py).
fn fixture_model(name: &str) -> PathBuf {
    common::fixture("models").join(name)
}

#[test]
fn qoperator_int8_graph_is_refused_naming_the_node_and_op() {
    // onnxruntime's QOperator form: com.microsoft QLinearAdd, which tract lacks.
    let e = load_err(&fixture_model("qlinear_add"));
    for part in ["\"residual_add_7\"", "QLinearAdd", "QDQ form"] {
        assert!(e.contains(part), "{part} missing in: {e}");
    }
    let out = common::camtrapd_cmd()
        .args(["classify", "--model"])
        .arg(fixture_model("qlinear_add"))
        .arg(common::fixture("one_pixel.png"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn nhwc_uint8_graph_runs_when_the_manifest_says_so() {
    // Like a tf2onnx export: uint8 NHWC [batch, 224, 224, 3], raw 0..255 pixels.
    let mut m = Model::load(&fixture_model("nhwc_u8")).unwrap();
    assert_eq!(m.input_shape(), [1, 224, 224, 3]);
    let img = image::RgbImage::from_pixel(50, 40, image::Rgb([10, 20, 30]));
    let mut pre = camtrapd::preprocess::Preprocessor::new(m.manifest());
    pre.run(&img, m.input_mut()).unwrap();
    m.run().unwrap();
    // logits = [R, G, B, R+G+B] of the mean pixel (see make_test_models.py).
    assert_eq!(m.scores_output().unwrap(), &[10.0, 20.0, 30.0, 60.0]);
    // The same graph declared NCHW f32 (issue 21's case) is refused with
    // both mismatches and both fixes in one message.
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.onnx", "model.toml"] {
        std::fs::copy(fixture_model("nhwc_u8").join(f), dir.path().join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(dir.path().join("model.toml")).unwrap();
    let edited = toml
        .replace("layout = \"NHWC\"", "layout = \"NCHW\"")
        .replace("datum_type = \"u8\"", "datum_type = \"f32\"");
    assert_ne!(edited, toml);
    std::fs::write(dir.path().join("model.toml"), edited).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.ends_with(
            "manifest input.datum_type, input.layout does not match model.onnx: input \"input\" is u8 ?×224×224×3; datum_type: the manifest says \"f32\", the graph takes u8: set datum_type = \"u8\"; layout: the manifest says \"NCHW\", the graph's input is NHWC: set layout = \"NHWC\""
        ),
        "{e}"
    );
}

#[test]
fn softmax_axis_follows_the_graphs_opset() {
    // Softmax(axis=1) on [1, 3, 4]: opset 11 normalises over all 12 values,
    // opset 13 over the 3 values of each column (the two differ by up to 1.6
    // here, far above the tolerance). Without an axis attribute the default
    // is axis=1 at opset 11 (all 12 values again) and axis=-1 at opset 13
    // (the 4 values of each row). Reference: numpy, in
    // tests/data/softmax_reference.json, which scripts/make_test_models.py
    // checked against onnxruntime 1.22.1 on the same four models.
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("tests/data/softmax_reference.json")).unwrap(),
    )
    .unwrap();
    let values: Vec<f32> = reference["input_channel_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let all = ["opset11", "opset13", "noaxis_opset11", "noaxis_opset13"];
    let reference_of = |key: &str| -> Vec<f64> {
        reference[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    // The four cases are three different computations.
    assert_eq!(reference_of("noaxis_opset11"), reference_of("opset11"));
    for (a, b) in [
        ("opset11", "opset13"),
        ("noaxis_opset13", "opset11"),
        ("noaxis_opset13", "opset13"),
    ] {
        let gap = reference_of(a)
            .iter()
            .zip(reference_of(b))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(gap > 0.1, "{a} and {b} differ by only {gap}");
    }
    // One value computed here: no axis at opset 13, row 0 = z[0..4] with
    // z = means · W12 (steps of 0.15 along a row): log softmax of
    // [0, 0.15, 0.3, 0.45] at index 0 is -ln(1 + e^0.15 + e^0.3 + e^0.45).
    let first = -(1.0f64 + 0.15f64.exp() + 0.3f64.exp() + 0.45f64.exp()).ln();
    assert!((reference_of("noaxis_opset13")[0] - first).abs() < 1e-5);
    for opset in all {
        let mut m = Model::load(&fixture_model(&format!("softmax_{opset}"))).unwrap();
        let input = tract_onnx::prelude::tract_ndarray::Array4::from_shape_fn(
            (1, 3, 224, 224),
            |(_, c, _, _)| values[c],
        );
        *m.input_mut() = input.into();
        m.run().unwrap();
        let got = m.scores_output().unwrap();
        let want: Vec<f64> = reference[opset]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), 12);
        for (g, w) in got.iter().zip(&want) {
            // tract's softmax uses a fast exp: 3e-5 from numpy's float64.
            assert!(
                (f64::from(*g) - w).abs() < 1e-4,
                "{opset}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn profiled_run_gives_the_same_scores_and_depthwise_runs_channel_last_with_a_kernel() {
    let mut m = Model::load(&fp32_model()).unwrap();
    m.run().unwrap();
    let plain = m.scores_output().unwrap().to_vec();
    let mut profile = Vec::new();
    m.run_profiled(&mut profile).unwrap();
    assert_eq!(m.scores_output().unwrap(), plain.as_slice());
    m.run_profiled(&mut profile).unwrap();
    assert!(profile.iter().all(|t| t.ms >= 0.0 && !t.op.is_empty()));
    // EfficientNet-Lite0 has 16 depthwise convolutions: tract's `DepthWise`
    // or, channel-last on AVX-512 CPUs, our depthwise + ReLU6 operator.
    let dw: Vec<&camtrapd::model::NodeTime> = profile
        .iter()
        .filter(|t| {
            t.op == "DepthWiseConv" || t.op == camtrapd::model::kernels::depthwise_fused::OP_NAME
        })
        .collect();
    assert_eq!(dw.len(), 16, "{profile:?}");
    // Our operator says its layout ("HWC ..." or "CHW ..."; its output may
    // be reshaped, e.g. [3136, 96], for the pointwise convolution after it).
    // For tract's: channel-last output [H, W, C] has equal first dims; NCHW
    // [C, H, W] or [1, C, H, W] has equal last dims.
    let channel_last = dw
        .iter()
        .filter(|t| {
            if t.op == camtrapd::model::kernels::depthwise_fused::OP_NAME {
                return t.info.starts_with("HWC");
            }
            let d: Vec<usize> = t
                .output_shape
                .split(',')
                .map(|d| d.trim().parse().unwrap())
                .collect();
            d.len() == 3 && d[0] == d[1] && d[2] != d[1]
        })
        .count();
    let dw: Vec<(&str, &str)> = dw
        .iter()
        .map(|t| (t.info.as_str(), t.output_shape.as_str()))
        .collect();
    if camtrapd::model::kernels::depthwise_x86::selected().is_some() {
        // All but the first block's, which follows the stem's NCHW output.
        assert!(channel_last >= 15, "{dw:?}");
        if camtrapd::model::kernels::matmul_x86::available() {
            // AVX-512: all 16 run fused with their ReLU6 (block 0's
            // channel-first, taking in the stem's ReLU6 too), so no separate
            // Max+Min node is left.
            let fused = profile
                .iter()
                .filter(|t| t.op == camtrapd::model::kernels::depthwise_fused::OP_NAME)
                .count();
            assert_eq!(fused, 16, "{profile:?}");
            // Each feeds only the packing of a pointwise convolution (block
            // 0's through a reshape, folded into it), so each keeps its
            // output tensor between frames.
            let kept = profile
                .iter()
                .filter(|t| t.info.ends_with("output kept between runs"))
                .count();
            assert_eq!(kept, 16, "{profile:?}");
            let clamps = profile
                .iter()
                .filter(|t| t.op.starts_with("OptBinChain"))
                .count();
            assert_eq!(clamps, 0, "{profile:?}");
        }
    } else {
        assert_eq!(channel_last, 0, "{dw:?}");
    }
}

/// The short-K 1×1 convolutions (K = 16, 24, 32, 40 input channels) run on camtrapd's AVX-512 16×16 kernel where the CPU has
/// AVX-512F, every other product on tract's own kernels. (That the scores
/// stay right is the golden tests' business.)
#[test]
fn short_k_products_run_on_the_avx512_kernel_where_the_cpu_has_it() {
    use camtrapd::model::kernels::matmul_x86;
    let mut m = Model::load(&fp32_model()).unwrap();
    let mut profile = Vec::new();
    m.run_profiled(&mut profile).unwrap();
    let ours: Vec<&str> = profile
        .iter()
        .filter(|t| t.op == "OptMatMul" && t.info.contains(matmul_x86::KERNEL_NAME))
        .map(|t| t.node.as_str())
        .collect();
    let matmuls = profile.iter().filter(|t| t.op == "OptMatMul").count();
    if matmul_x86::available() {
        // Block 0 project (K 32), blocks 1–5 expand (K 16, 24, 24, 40, 40);
        // not the stem (K 27, but M 32 < N 12544).
        assert_eq!(ours.len(), 6, "{ours:?}");
        assert!(!ours.iter().any(|n| n.contains("_conv_stem")), "{ours:?}");
        assert!(ours.iter().any(|n| n.contains("_blocks.1/")), "{ours:?}");
        assert!(matmuls > 30, "the other products stay on tract's kernels");
    } else {
        assert!(ours.is_empty(), "{ours:?}");
    }
}

/// The default (weight-only int8) bundle is dequantised once at load: its
/// plan has no per-frame `Cast` or dequantisation of weights and has the
/// same operators as the fp32 plan (before the fold it cast and re-packed
/// the classifier's int8 weights on every frame).
#[test]
fn weight_only_int8_bundle_runs_the_fp32_plan() {
    let mut q = Model::load(&default_model()).unwrap();
    let mut f = Model::load(&fp32_model()).unwrap();
    let (mut pq, mut pf) = (Vec::new(), Vec::new());
    q.run_profiled(&mut pq).unwrap();
    f.run_profiled(&mut pf).unwrap();
    let ops = |p: &[camtrapd::model::NodeTime]| {
        let mut v: Vec<String> = p.iter().map(|t| t.op.clone()).collect();
        v.sort();
        v
    };
    assert!(
        !pq.iter()
            .any(|t| t.op.contains("Cast") || t.op.contains("Dequantize")),
        "{:?}",
        ops(&pq)
    );
    assert_eq!(ops(&pq), ops(&pf));
}

/// camtrapd's own x86 operators (the AVX-512 short-K matmul kernel and the
/// fused depthwise + ReLU6) give the scores tract's own kernels give: the
/// same top-3 labels and scores within 1e-5 on the sample photos (labels,
/// backgrounds and other animals), with both
/// on and with both turned off through their environment variables.
#[test]
fn own_kernels_give_the_scores_of_tracts_kernels() {
    let photos = common::sample_photos();
    let run = |off: bool| -> Vec<serde_json::Value> {
        let mut cmd = common::camtrapd_cmd();
        cmd.args(["classify", "--json", "-k", "3", "-m"])
            .arg(fp32_model())
            .arg(&photos);
        if off {
            cmd.env(camtrapd::model::kernels::depthwise_fused::DISABLE_ENV, "1")
                .env(camtrapd::model::kernels::matmul_x86::DISABLE_ENV, "1");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (ours, tracts) = (run(false), run(true));
    assert!(ours.len() >= 25, "{} photos", ours.len());
    assert_eq!(ours.len(), tracts.len());
    for (a, b) in ours.iter().zip(&tracts) {
        assert_eq!(a["source"], b["source"]);
        let (ta, tb) = (
            a["top_k"].as_array().unwrap(),
            b["top_k"].as_array().unwrap(),
        );
        assert_eq!(ta.len(), 3);
        for (x, y) in ta.iter().zip(tb) {
            assert_eq!(x["label"], y["label"], "{a} vs {b}");
            let (sx, sy) = (x["score"].as_f64().unwrap(), y["score"].as_f64().unwrap());
            assert!((sx - sy).abs() <= 1e-5, "{a} vs {b}");
        }
    }
}

/// Issue 21: probabilities that are 6 stacked distributions (a softmax over
/// the wrong axis; every value in 0..1, summing to 6) are not called logits:
/// the message says what the evidence shows.
#[test]
fn probabilities_over_the_wrong_axis_are_not_called_logits() {
    let e = load_err(&fixture_model("probabilities_wrong_axis"));
    assert!(
        e.ends_with(
            "manifest output.activation does not match model.onnx: the manifest says probabilities from a softmax, but on a grey test image the 12 values of output 'probs' are all in 0..1 and sum to 6.000, not 1: a softmax over the wrong axis (e.g. one distribution per row of a reshaped output; fix the export), or independent sigmoid scores: then set activation = \"sigmoid\""
        ),
        "{e}"
    );
}

/// Following the old hint (`kind = "logits"`) loaded the bundle and
/// squashed every score to about 1/12, so every frame was rejected without
/// a word. The start-up self-test now refuses it: with outputs in 0..1, no
/// label's score can exceed e / (e + 11) = 0.198, below the threshold 0.5.
/// `check-config` (and `run`) exit 78.
#[test]
fn a_bundle_whose_scores_can_never_reach_a_threshold_is_refused_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    std::fs::create_dir(&dir).unwrap();
    let src = fixture_model("probabilities_wrong_axis");
    std::fs::copy(src.join("model.onnx"), dir.join("model.onnx")).unwrap();
    let toml = std::fs::read_to_string(src.join("model.toml")).unwrap();
    let edited = toml.replace("kind = \"probabilities\"", "kind = \"logits\"");
    assert_ne!(edited, toml);
    std::fs::write(dir.join("model.toml"), edited).unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    std::fs::copy(
        common::sample_photo("elephant/c101_image_0004.jpg"),
        frames.join("a.jpg"),
    )
    .unwrap();
    let cfg = common::files_config(
        tmp.path(),
        &frames,
        &dir,
        "[decision]\ndefault_threshold = 0.5\n",
    );
    let (code, err) = common::check_config(&cfg);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains(&format!(
            "model bundle {}: manifest output.kind does not match model.onnx: on the start-up self-test's grey image, output 'probs' holds 12 values all in 0..1 (sum 6.000): probabilities, not logits. Taken as logits (softmax over them), no label's score can exceed 0.198, below every threshold of the published labels (lowest 0.500), so no frame could ever be published. Set kind = \"probabilities\"",
            dir.display()
        )),
        "{err}"
    );
    // The model itself loads: it is the decision that could never publish.
    assert!(Model::load(&dir).is_ok());
}

/// Runs the qlinear_conv_pw fixture on the reference input pattern of
/// tests/data/qlinear_conv_reference.json and returns its 8 outputs.
fn qlinear_conv_outputs(m: &mut Model) -> Vec<f32> {
    let input = tract_onnx::prelude::tract_ndarray::Array4::from_shape_fn(
        (1, 3, 224, 224),
        |(_, c, h, w)| ((7 * c + 3 * h + w) % 17) as f32 / 16.0,
    );
    *m.input_mut() = input.into();
    m.run().unwrap();
    m.scores_output().unwrap().to_vec()
}

#[test]
fn quantised_pointwise_conv_matches_onnxruntime_without_the_zero_point_terms() {
    // QuantizeLinear (u8, zero point 128) -> QLinearConv 1x1 with int8
    // weights whose zero point is 0 -> DequantizeLinear -> mean. tract wires
    // the compensation `b0·Σa` for the weights' zero point anyway; the
    // zero_point pass removes it, so the plan has no `Sub` node left (with
    // CAMTRAPD_NO_ZERO_POINT_FOLD=1 it has one: the next test).
    let mut m = Model::load(&fixture_model("qlinear_conv_pw")).unwrap();
    let got = qlinear_conv_outputs(&mut m);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("tests/data/qlinear_conv_reference.json"))
            .unwrap(),
    )
    .unwrap();
    let scale = reference["output_scale"].as_f64().unwrap();
    let want: Vec<f64> = reference["onnxruntime"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), 8);
    for (g, w) in got.iter().zip(&want) {
        // Each output is a mean of u8 codes times the output scale: tract and
        // onnxruntime may round a code differently, never by a whole step
        // on average.
        assert!(
            (f64::from(*g) - w).abs() < scale,
            "{got:?} vs onnxruntime {want:?}"
        );
    }
    let ops: Vec<String> = m.plan_nodes().into_iter().map(|n| n.op).collect();
    assert!(!ops.iter().any(|o| o == "Sub"), "{ops:?}");
}

#[test]
fn dropping_the_zero_point_terms_changes_no_output() {
    // The same model through the CLI, with the pass and without: integer
    // arithmetic both ways, so the scores are identical, not just close.
    let photos = common::sample_photos();
    let run = |off: bool| -> Vec<serde_json::Value> {
        let mut cmd = common::camtrapd_cmd();
        cmd.args(["classify", "--json", "-k", "8", "-m"])
            .arg(fixture_model("qlinear_conv_pw"))
            .arg(&photos);
        if off {
            cmd.env(camtrapd::model::kernels::zero_point::DISABLE_ENV, "1");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Timings differ from run to run; everything else must not.
                v.as_object_mut().unwrap().remove("latency_ms");
                v
            })
            .collect()
    };
    let (with, without) = (run(false), run(true));
    assert!(with.len() >= 25, "{} photos", with.len());
    assert_eq!(with, without);
    // The pass did something: without it tract's plan keeps the Sub node.
    let mut cmd = common::camtrapd_cmd();
    let out = cmd
        .args([
            "bench",
            "--profile",
            "-n",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "-m",
        ])
        .arg(fixture_model("qlinear_conv_pw"))
        .arg(&photos)
        .env(camtrapd::model::kernels::zero_point::DISABLE_ENV, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("Sub ")),
        "{text}"
    );
}
