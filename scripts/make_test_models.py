#!/usr/bin/env python3
"""Generate the tiny ONNX model bundles in tests/fixtures/models/ (no third-party files).

Each is a complete camtrapd bundle (model.onnx + model.toml with its sha256), small enough to commit:

  qlinear_add/      onnxruntime's QOperator form: QuantizeLinear -> com.microsoft QLinearAdd ->
                    DequantizeLinear -> GlobalAveragePool; tract has no QLinearAdd, so camtrapd must
                    refuse it, naming the node and the op and suggesting a QDQ export
  nhwc_u8/          what TF / AutoML exports converted with tf2onnx look like: input uint8 NHWC
                    [batch, 224, 224, 3] (symbolic batch), Cast -> ReduceMean over H, W -> MatMul W:
                    logits = [R, G, B, R+G+B] of the mean pixel
  softmax_opset11/  GlobalAveragePool -> MatMul [3, 12] -> Reshape [batch, 3, 4] -> Softmax(axis=1) -> Log
  softmax_opset13/  -> Reshape [batch, 12]: the same graph at opset 11 and 13, where Softmax(axis=1) means
                    different things (opset <= 12: over the flattened dims 1.. ; opset 13: over dim 1 only)
  softmax_noaxis_opset11/  the same with Softmax without an axis attribute: the default is axis=1 at
  softmax_noaxis_opset13/  opset <= 12 (over all 12 values) and axis=-1 at opset 13 (over the 4 of each row)
  qlinear_conv_pw/  onnxruntime's QOperator form of a 1x1 ("pointwise") convolution: QuantizeLinear (u8,
                    zero point 128) -> QLinearConv 3 -> 8 channels (int8 weights with zero point 0, a scale per
                    output channel, int32 bias) -> DequantizeLinear -> GlobalAveragePool; tests/data/qlinear_conv_reference.json
                    holds onnxruntime's output on a fixed input pattern (the zero-point pass, issue 24)
  probabilities_wrong_axis/  GlobalAveragePool -> MatMul [3, 12] -> Reshape [batch, 6, 2] -> Softmax(axis=2)
                    -> Reshape [batch, 12], declared kind = "probabilities": 6 stacked distributions,
                    every value in 0..1, summing to 6 (a softmax over the wrong axis, issue 21)

and tests/data/softmax_reference.json: the outputs numpy computes for both opsets, with and without
the axis attribute, on an input whose channels hold 0.1, 0.2, 0.3 (the reference tests/model_bundle.rs
compares tract with); each is checked against onnxruntime's output for the same model when
onnxruntime is installed.

Needs numpy and onnx (pip install numpy onnx; onnxruntime optional):  python3 scripts/make_test_models.py
"""
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")


def save(name, model, manifest):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.ir_version = 8
    data = model.SerializeToString(deterministic=True)
    open(os.path.join(d, "model.onnx"), "wb").write(data)
    sha = hashlib.sha256(data).hexdigest()
    text = manifest.strip() + "\n\n[provenance]\nsource = \"scripts/make_test_models.py\"\nlicence = \"Apache-2.0\"\nsha256 = \"%s\"\n" % sha
    open(os.path.join(d, "model.toml"), "w").write(text)


def nchw_input():
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])


NCHW_INPUT = """
[input]
name = "input"
layout = "NCHW"
width = 224
height = 224
datum_type = "f32"
colour_order = "RGB"
resize = "squash"
normalisation = { mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] }
"""


def qlinear_add():
    f = helper.make_tensor
    inits = [
        f("s", TensorProto.FLOAT, [], [0.5]),
        f("z", TensorProto.UINT8, [], [0]),
        f("s2", TensorProto.FLOAT, [], [1.0]),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"], name="quantize_input"),
        helper.make_node("QLinearAdd", ["xq", "s", "z", "xq", "s", "z", "s2", "z"], ["yq"], name="residual_add_7", domain="com.microsoft"),
        helper.make_node("DequantizeLinear", ["yq", "s2", "z"], ["y"], name="dequantize"),
        helper.make_node("GlobalAveragePool", ["y"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["logits"], name="flatten"),
    ]
    g = helper.make_graph(nodes, "qlinear_add", [nchw_input()],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    save("qlinear_add", m, 'name = "qlinear-add"\nlabels = ["a", "b", "c"]\n' + NCHW_INPUT +
         '\n[output]\nname = "logits"\nkind = "logits"\nactivation = "softmax"\n')


def qconv_pattern():
    """The fixed input of qlinear_conv_pw's reference: x[c, h, w] = ((7c + 3h + w) mod 17) / 16."""
    c, h, w = np.meshgrid(np.arange(3), np.arange(224), np.arange(224), indexing="ij")
    return (((7 * c + 3 * h + w) % 17) / 16.0).astype(np.float32)[None]


def qlinear_conv_pw():
    rng = np.random.default_rng(24)
    wq = rng.integers(-127, 128, size=(8, 3, 1, 1)).astype(np.int8)
    bias = rng.integers(-2000, 2000, size=8).astype(np.int32)
    f = helper.make_tensor
    inits = [
        f("xs", TensorProto.FLOAT, [], [1 / 255]),
        f("xz", TensorProto.UINT8, [], [128]),
        numpy_helper.from_array(wq, "wq"),
        # One scale and zero point per output channel, as onnxruntime writes
        # per-channel weights: tract then keeps the b0 compensation.
        f("ws", TensorProto.FLOAT, [8], [0.01, 0.012, 0.008, 0.011, 0.009, 0.01, 0.013, 0.007]),
        f("wz", TensorProto.INT8, [8], [0] * 8),
        f("ys", TensorProto.FLOAT, [], [0.02]),
        f("yz", TensorProto.UINT8, [], [100]),
        numpy_helper.from_array(bias, "bias"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"], name="quantize_input"),
        helper.make_node("QLinearConv", ["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "bias"], ["yq"],
                         name="pointwise_conv", kernel_shape=[1, 1]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"], name="dequantize"),
        helper.make_node("GlobalAveragePool", ["y"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["logits"], name="flatten"),
    ]
    g = helper.make_graph(nodes, "qlinear_conv_pw", [nchw_input()],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    save("qlinear_conv_pw", m, 'name = "qlinear-conv-pw"\nlabels = ["a", "b", "c", "d", "e", "f", "g", "h"]\n'
         + NCHW_INPUT + '\n[output]\nname = "logits"\nkind = "logits"\nactivation = "softmax"\n')
    try:
        import onnxruntime
    except ImportError:
        print("onnxruntime not installed: tests/data/qlinear_conv_reference.json not written")
        return
    s = onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    out = s.run(None, {"input": qconv_pattern()})[0].reshape(-1)
    ref = {"input": "x[c, h, w] = ((7c + 3h + w) mod 17) / 16", "output_scale": 0.02,
           "onnxruntime": [float(v) for v in out]}
    open(os.path.join(ROOT, "tests", "data", "qlinear_conv_reference.json"), "w").write(json.dumps(ref, indent=1) + "\n")


def nhwc_u8():
    w = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]], dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("ReduceMean", ["xf"], ["mean"], axes=[1, 2], keepdims=0, name="mean_hw"),
        helper.make_node("MatMul", ["mean", "w"], ["logits"], name="head"),
    ]
    g = helper.make_graph(nodes, "nhwc_u8",
                          [helper.make_tensor_value_info("input", TensorProto.UINT8, ["batch", 224, 224, 3])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    save("nhwc_u8", m, '''name = "nhwc-u8"
labels = ["red", "green", "blue", "sum"]

[input]
name = "input"
layout = "NHWC"
width = 224
height = 224
datum_type = "u8"
colour_order = "RGB"
resize = "squash"

[output]
name = "logits"
kind = "logits"
activation = "softmax"
''')


W12 = (np.arange(36, dtype=np.float32).reshape(3, 12) - 17.0) / 4.0
MEANS = np.array([0.1, 0.2, 0.3], dtype=np.float32)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_model(opset, axis=1):
    """softmax_opset<N> (Softmax(axis=1)), or with axis=None softmax_noaxis_opset<N> (no attribute)."""
    shape3 = numpy_helper.from_array(np.array([0, 3, 4], dtype=np.int64), "shape3")
    shape12 = numpy_helper.from_array(np.array([0, 12], dtype=np.int64), "shape12")
    if axis is None:
        name = "softmax_noaxis_opset%d" % opset
        soft = helper.make_node("Softmax", ["z3"], ["p3"], name="softmax_no_axis")
    else:
        name = "softmax_opset%d" % opset
        soft = helper.make_node("Softmax", ["z3"], ["p3"], axis=axis, name="softmax_axis%d" % axis)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w"], ["z"], name="head"),
        helper.make_node("Reshape", ["z", "shape3"], ["z3"], name="to_3x4"),
        soft,
        helper.make_node("Log", ["p3"], ["l3"], name="log"),
        helper.make_node("Reshape", ["l3", "shape12"], ["logits"], name="to_12"),
    ]
    g = helper.make_graph(nodes, name, [nchw_input()],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 12])],
                          [numpy_helper.from_array(W12, "w"), shape3, shape12])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    labels = ", ".join('"c%d"' % i for i in range(12))
    save(name, m, 'name = "%s"\nlabels = [%s]\n' % (name.replace("_", "-"), labels) + NCHW_INPUT +
         '\n[output]\nname = "logits"\nkind = "logits"\nactivation = "softmax"\n')
    return m


def probabilities_wrong_axis():
    shape62 = numpy_helper.from_array(np.array([0, 6, 2], dtype=np.int64), "shape62")
    shape12 = numpy_helper.from_array(np.array([0, 12], dtype=np.int64), "shape12")
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w"], ["z"], name="head"),
        helper.make_node("Reshape", ["z", "shape62"], ["z62"], name="to_6x2"),
        helper.make_node("Softmax", ["z62"], ["p62"], axis=2, name="softmax_per_pair"),
        helper.make_node("Reshape", ["p62", "shape12"], ["probs"], name="to_12"),
    ]
    g = helper.make_graph(nodes, "probabilities_wrong_axis", [nchw_input()],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 12])],
                          [numpy_helper.from_array(W12, "w"), shape62, shape12])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    labels = ", ".join('"c%d"' % i for i in range(12))
    save("probabilities_wrong_axis", m, 'name = "probabilities-wrong-axis"\nlabels = [%s]\n' % labels + NCHW_INPUT +
         '\n[output]\nname = "probs"\nkind = "probabilities"\nactivation = "softmax"\n')


def onnxruntime_outputs(model, means):
    """The model's output on an input whose channels hold `means` (None without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    s = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.broadcast_to(means.reshape(1, 3, 1, 1), (1, 3, 224, 224)).astype(np.float32)
    return s.run(None, {"input": x})[0].reshape(-1)


def main():
    qlinear_add()
    qlinear_conv_pw()
    nhwc_u8()
    models = {
        "opset11": softmax_model(11),
        "opset13": softmax_model(13),
        "noaxis_opset11": softmax_model(11, axis=None),
        "noaxis_opset13": softmax_model(13, axis=None),
    }
    probabilities_wrong_axis()
    z = (MEANS @ W12).reshape(1, 3, 4)
    ref = {
        "input_channel_values": MEANS.tolist(),
        # opset <= 12: Softmax(axis=1) coerces [1, 3, 4] to [1, 12] and normalises over all 12
        "opset11": np.log(softmax(z.reshape(1, 12), 1)).reshape(12).tolist(),
        # opset 13: normalises over dim 1 (3 values) for each of the 4 columns
        "opset13": np.log(softmax(z, 1)).reshape(12).tolist(),
        # no axis attribute, opset <= 12: the default axis=1, as above (all 12 values)
        "noaxis_opset11": np.log(softmax(z.reshape(1, 12), 1)).reshape(12).tolist(),
        # no axis attribute, opset 13: the default axis=-1, over the 4 values of each of the 3 rows
        "noaxis_opset13": np.log(softmax(z, -1)).reshape(12).tolist(),
    }
    for key, m in models.items():
        got = onnxruntime_outputs(m, MEANS)
        if got is None:
            print("onnxruntime not installed: references not cross-checked")
            break
        # onnxruntime's output on the same model agrees with numpy's reference.
        assert np.allclose(got, ref[key], atol=1e-5), (key, got, ref[key])
        print("onnxruntime agrees with numpy for", key)
    open(os.path.join(ROOT, "tests", "data", "softmax_reference.json"), "w").write(json.dumps(ref, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
