#!/usr/bin/env python3
"""Static int8 quantisation of a camtrapd model bundle with onnxruntime, in
the forms tract and onnxruntime run, for the int8-vs-fp32 comparison of
`camtrapd bench` and scripts/bench_onnxruntime.py.

Activations are calibrated on real photos (the `train` split of a
camtrapd manifest such as ../shared/data/zoo12/manifest.csv, known and
nothing images), preprocessed like the bundle's manifest says (shorter side
to height / crop_fraction, centre crop, (x - mean) / std, NCHW). Weights are
int8 per output channel, activations uint8 (onnxruntime's defaults for CNNs).

Forms (--form):
  qdq        QuantizeLinear/DequantizeLinear pairs around every Conv and Add:
             onnxruntime's recommended form, which its CPU provider fuses
             into integer kernels.
  qop-pw     QOperator form (QLinearConv) for the 1x1 "pointwise" Conv
             layers only; depthwise and the stem stay float between a
             DequantizeLinear and a QuantizeLinear. tract turns QLinearConv
             into an integer matrix product (VNNI on AVX-512 CPUs, dot
             product instructions on ARM).
  qop-conv   QLinearConv for every Conv (depthwise included).
  weight-only
             int8 weights only (per output channel, symmetric), each
             followed by a DequantizeLinear that tract folds at load: the
             model computes in float, as fp32 does, from a 4x smaller file.
             The shift each layer's rounding adds to its outputs on average
             is taken out of its bias (empirical bias correction: Nagel et
             al. 2019, "Data-Free Quantization Through Weight Equalization
             and Bias Correction", ICCV, section 4.2, with the input means
             measured on the calibration photos), and tensors under
             --float-below values stay float (the stem and the first
             depthwise layer, which alone move top-1 most; they weigh a
             few KB). --no-bias-correction and --float-below 256 give the
             plain form of scripts/export_efficientnet_lite0.py.

Each output is written as a camtrapd bundle folder (model.onnx, and the
source bundle's model.toml with the new sha256), e.g.

    target/venv-ort/bin/python scripts/quantize_int8.py --form qop-pw \\
        --out target/int8-qop-pw
    target/release/camtrapd bench -m target/int8-qop-pw \\
        --reference-model models/efficientnet-lite0-imagenet-fp32 --profile ...

Needs onnxruntime, onnx, numpy and pillow (no torch).
"""
import argparse
import csv
import hashlib
import os
import re
import shutil
import sys
import tomllib

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# weight-only: weight tensors with fewer values stay float.
FLOAT_BELOW = 1000


def preprocess(path, m):
    inp = m["input"]
    h, w = inp["height"], inp["width"]
    frac = inp.get("crop_fraction", 1.0)
    img = Image.open(path).convert("RGB")
    scale = max(h, w) / frac / min(img.size)
    img = img.resize((max(w, round(img.size[0] * scale)), max(h, round(img.size[1] * scale))),
                     Image.BILINEAR)
    left, top = (img.size[0] - w) // 2, (img.size[1] - h) // 2
    img = img.crop((left, top, left + w, top + h))
    x = np.asarray(img, dtype=np.float32)
    n = inp.get("normalisation", {})
    x = (x - np.array(n.get("mean", [0, 0, 0]), np.float32)) / np.array(n.get("std", [1, 1, 1]), np.float32)
    return x.transpose(2, 0, 1)[None].copy()


class Reader(CalibrationDataReader):
    def __init__(self, files, manifest, input_name):
        self.files = list(files)
        self.m = manifest
        self.name = input_name

    def get_next(self):
        if not self.files:
            return None
        return {self.name: preprocess(self.files.pop(0), self.m)}


def calibration_files(manifest_csv, split, limit):
    base = os.path.dirname(manifest_csv)
    rows = list(csv.DictReader(open(manifest_csv)))
    rows = [r for r in rows if r["split"] == split and r["kind"] in ("known", "nothing")]
    # Spread over labels: every k-th row.
    step = max(1, len(rows) // limit)
    return [os.path.join(base, r["path"]) for r in rows[::step][:limit]]


def calibration_dir_files(folder, limit):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def weight_consumers(model):
    """(node, output-channel axis of its weight) for each Conv and Gemm whose
    weight is an initialiser."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if len(n.input) > 1 and n.input[1] in inits:
            if n.op_type == "Conv":
                out.append((n, 0))
            elif n.op_type == "Gemm":
                trans_b = next((x.i for x in n.attribute if x.name == "transB"), 0)
                out.append((n, 0 if trans_b else 1))
    return out


def input_means(model, files, manifest):
    """Per-channel mean of each weight consumer's input over the photos:
    channels are axis 1 (NCHW, NCL or [N, C]); the mean runs over the rest."""
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    outputs = {o.name for o in m.graph.output}
    names = []
    for n, _ in weight_consumers(m):
        if n.input[0] not in names:
            names.append(n.input[0])
            if n.input[0] not in outputs:
                m.graph.output.append(onnx.helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    sums = {}
    for f in files:
        for name, v in zip(names, sess.run(names, {manifest["input"]["name"]: preprocess(f, manifest)})):
            mean = v.mean(axis=tuple(i for i in range(v.ndim) if i != 1))
            sums[name] = sums.get(name, 0.0) + mean.astype(np.float64)
    return {k: v / len(files) for k, v in sums.items()}


def quantize_weight_only(model, means, float_below):
    """Replaces each Conv/Gemm weight of at least `float_below` values by int8
    (symmetric, per output channel, zero point 0) + DequantizeLinear, and
    with `means` subtracts the expected output shift E[(W_q - W) x] from the
    layer's bias (adding a bias where there is none). Returns how many
    tensors became int8. Zero padding at the borders is ignored in the
    expectation, as in the paper."""
    from onnx import numpy_helper
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    done, new_nodes, renamed = 0, [], {}
    for n, axis in weight_consumers(model):
        if n.input[1] in renamed:  # a weight shared with a node already done
            n.input[1] = renamed[n.input[1]]
            continue
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        if w.size < float_below:
            continue
        wt = np.moveaxis(w, axis, 0)
        flat = wt.reshape(wt.shape[0], -1)
        scale = np.abs(flat).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.round(flat / scale[:, None]), -127, 127)
        dw = np.moveaxis(((q * scale[:, None]).reshape(wt.shape) - wt), 0, axis)
        if means is not None:
            mu = means[n.input[0]]
            if n.op_type == "Gemm":
                shift = dw @ mu if axis == 0 else mu @ dw
            else:
                group = next((x.i for x in n.attribute if x.name == "group"), 1)
                out_c, per_group = dw.shape[0], dw.shape[1]
                k = dw.reshape(out_c, per_group, -1).sum(axis=2)
                start = (np.arange(out_c) // (out_c // group)) * per_group
                shift = np.array([k[c] @ mu[start[c]:start[c] + per_group] for c in range(out_c)])
            if len(n.input) > 2 and n.input[2]:
                b = inits[n.input[2]]
                b.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(b) - shift).astype(np.float32), b.name))
            else:
                bname = n.input[1] + "_bias_correction"
                g.initializer.append(numpy_helper.from_array((-shift).astype(np.float32), bname))
                if len(n.input) == 2:
                    n.input.append(bname)
                else:
                    n.input[2] = bname
        qname = n.input[1] + "_dq"
        g.initializer.append(numpy_helper.from_array(np.moveaxis(q.reshape(wt.shape), 0, axis).astype(np.int8), qname + "_q"))
        g.initializer.append(numpy_helper.from_array(scale.astype(np.float32), qname + "_scale"))
        g.initializer.append(numpy_helper.from_array(np.zeros(len(scale), np.int8), qname + "_zero"))
        new_nodes.append(onnx.helper.make_node("DequantizeLinear", [qname + "_q", qname + "_scale", qname + "_zero"],
                                               [qname], name=qname, axis=axis))
        g.initializer.remove(inits[n.input[1]])
        renamed[n.input[1]] = qname
        n.input[1] = qname
        done += 1
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(new_nodes + nodes)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(ROOT, "models", "efficientnet-lite0-imagenet-fp32"),
                    help="fp32 source bundle (default: %(default)s)")
    ap.add_argument("--form", choices=["qdq", "qop-pw", "qop-conv", "weight-only"], required=True)
    ap.add_argument("--out", required=True, help="output bundle folder")
    ap.add_argument("--calib-manifest", default=os.path.join(ROOT, "..", "shared", "data", "zoo12", "manifest.csv"))
    ap.add_argument("--calib-split", default="train")
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--calib-dir", help="calibrate on the images under this folder instead of the manifest's split "
                    "(e.g. ../shared/data/generic_negatives, photos the agreement is not measured on)")
    ap.add_argument("--float-below", type=int, default=FLOAT_BELOW,
                    help="weight-only: weight tensors with fewer values stay float (default: %(default)s)")
    ap.add_argument("--no-bias-correction", action="store_true", help="weight-only: leave the biases as they are")
    ap.add_argument("--calibration", choices=["minmax", "entropy", "percentile"], default="minmax",
                    help="how activation ranges are set from the calibration photos (default: %(default)s)")
    ap.add_argument("--per-tensor", action="store_true",
                    help="one weight scale per layer instead of per output channel: tract then "
                         "requantises inside its integer matrix kernel (see docs/benchmarks.md, ARM)")
    a = ap.parse_args()

    manifest = tomllib.load(open(os.path.join(a.bundle, "model.toml"), "rb"))
    src = os.path.join(a.bundle, "model.onnx")
    model = onnx.load(src)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    inits = {i.name: i for i in model.graph.initializer}

    def is_pointwise(n):
        w = inits.get(n.input[1])
        group = next((x.i for x in n.attribute if x.name == "group"), 1)
        return w is not None and list(w.dims[2:]) == [1, 1] and group == 1

    kw = dict(per_channel=not a.per_tensor, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
              calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                "percentile": CalibrationMethod.Percentile}[a.calibration])
    if a.form == "qdq":
        kw.update(quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv", "Add", "Gemm"])
    else:
        kw.update(quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv"])
        if a.form == "qop-pw":
            kw["nodes_to_exclude"] = [n.name for n in convs if not is_pointwise(n)]
    if a.calib_dir:
        files = calibration_dir_files(a.calib_dir, a.calib_images)
        if not files:
            sys.exit(f"no .jpg/.jpeg/.png images under {a.calib_dir}")
    else:
        files = calibration_files(a.calib_manifest, a.calib_split, a.calib_images)
        if not files:
            sys.exit(f"no calibration images in {a.calib_manifest} (split {a.calib_split})")
    os.makedirs(a.out, exist_ok=True)
    dst = os.path.join(a.out, "model.onnx")
    if a.form == "weight-only":
        means = None if a.no_bias_correction else input_means(model, files, manifest)
        n = quantize_weight_only(model, means, a.float_below)
        onnx.checker.check_model(model)
        onnx.save(model, dst)
        print(f"weight-only: {n} weight tensors int8, bias correction "
              f"{'off' if means is None else f'from {len(files)} images'}", file=sys.stderr)
        return finish(a, manifest, dst, "weight-only")
    print(f"{a.form}: calibrating on {len(files)} images; "
          f"{sum(map(is_pointwise, convs))} of {len(convs)} Conv layers are pointwise", file=sys.stderr)
    quantize_static(src, dst, Reader(files, manifest, manifest["input"]["name"]), **kw)
    finish(a, manifest, dst, a.form + ("-pt" if a.per_tensor else ""))


def finish(a, manifest, dst, form):
    """Writes the bundle's model.toml (the source's, with the new sha256 and name) and LICENSE."""
    sha = hashlib.sha256(open(dst, "rb").read()).hexdigest()
    toml = open(os.path.join(a.bundle, "model.toml")).read()
    toml = re.sub(r'sha256 = "[0-9a-f]{64}"', f'sha256 = "{sha}"', toml, count=1)
    toml = re.sub(r'^name = ".*"$', f'name = "{manifest["name"]}-int8-{form}"', toml, count=1, flags=re.M)
    open(os.path.join(a.out, "model.toml"), "w").write(toml)
    lic = os.path.join(a.bundle, "LICENSE")
    if os.path.exists(lic):
        shutil.copy(lic, a.out)
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes, sha256 {sha})", file=sys.stderr)


if __name__ == "__main__":
    main()
