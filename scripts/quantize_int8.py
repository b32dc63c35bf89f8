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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(ROOT, "models", "efficientnet-lite0-imagenet-fp32"),
                    help="fp32 source bundle (default: %(default)s)")
    ap.add_argument("--form", choices=["qdq", "qop-pw", "qop-conv"], required=True)
    ap.add_argument("--out", required=True, help="output bundle folder")
    ap.add_argument("--calib-manifest", default=os.path.join(ROOT, "..", "shared", "data", "zoo12", "manifest.csv"))
    ap.add_argument("--calib-split", default="train")
    ap.add_argument("--calib-images", type=int, default=64)
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
    files = calibration_files(a.calib_manifest, a.calib_split, a.calib_images)
    if not files:
        sys.exit(f"no calibration images in {a.calib_manifest} (split {a.calib_split})")
    print(f"{a.form}: calibrating on {len(files)} images; "
          f"{sum(map(is_pointwise, convs))} of {len(convs)} Conv layers are pointwise", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    dst = os.path.join(a.out, "model.onnx")
    quantize_static(src, dst, Reader(files, manifest, manifest["input"]["name"]), **kw)
    sha = hashlib.sha256(open(dst, "rb").read()).hexdigest()
    toml = open(os.path.join(a.bundle, "model.toml")).read()
    toml = re.sub(r'sha256 = "[0-9a-f]{64}"', f'sha256 = "{sha}"', toml, count=1)
    toml = re.sub(r'^name = ".*"$', f'name = "{manifest["name"]}-int8-{a.form}{"-pt" if a.per_tensor else ""}"', toml, count=1, flags=re.M)
    open(os.path.join(a.out, "model.toml"), "w").write(toml)
    lic = os.path.join(a.bundle, "LICENSE")
    if os.path.exists(lic):
        shutil.copy(lic, a.out)
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes, sha256 {sha})", file=sys.stderr)


if __name__ == "__main__":
    main()
