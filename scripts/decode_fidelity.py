#!/usr/bin/env python3
"""How close camtrapd's scores are to onnxruntime on PIL-decoded input.

For every JPEG under the given folders: onnxruntime (1 thread) runs the
bundle's model.onnx on PIL's full-size decode with camtrapd's `center-crop`
geometry (the centred box of 0.875 x the shorter side, resampled once to
224x224, bilinear with antialiasing, (x - 127) / 128, NCHW); camtrapd runs
`classify --json -k 5` on the same files, once per value of
CAMTRAPD_JPEG_SHRINK_MARGIN given (how far camtrapd may shrink a JPEG while
decoding it, src/decode.rs). Prints, for small (< 1000 px) and large photos,
the top-1 agreement and the mean / max |camtrapd's top-1 score - onnxruntime's
probability of that label|. No torch needed (unlike compare_onnxruntime.py).
The PIL side is fixed to the 224x224 centre crop of the bundled
EfficientNet-Lite0 models.

  target/venv-ort/bin/python scripts/decode_fidelity.py --camtrapd target/release/camtrapd \\
      --margins 4,2,100 models/efficientnet-lite0-imagenet-fp32 ../shared/data/camera_trap

Needs: pip install onnxruntime numpy pillow (Python >= 3.11 for tomllib).
"""
import argparse
import json
import os
import subprocess
import tomllib

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

MEAN, STD, SIZE, CROP_FRACTION = 127.0, 128.0, 224, 0.875


def preprocess_same_crop(img):
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h) * CROP_FRACTION
    left, top = (w - side) / 2.0, (h - side) / 2.0
    img = img.resize((SIZE, SIZE), resample=Image.BILINEAR, box=(left, top, left + side, top + side))
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return x.transpose(2, 0, 1)[None].copy()


def softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camtrapd", default="target/release/camtrapd")
    ap.add_argument("--margins", default="4", help="comma-separated CAMTRAPD_JPEG_SHRINK_MARGIN values")
    ap.add_argument("bundle")
    ap.add_argument("folders", nargs="+")
    a = ap.parse_args()
    with open(os.path.join(a.bundle, "model.toml"), "rb") as f:
        labels = tomllib.load(f)["labels"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(a.bundle, "model.onnx"), so, providers=["CPUExecutionProvider"])
    ref = {}
    for d in a.folders:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.lower().endswith((".jpg", ".jpeg")):
                    p = os.path.realpath(os.path.join(root, f))
                    # EXIF orientation applied, as camtrapd does.
                    img = ImageOps.exif_transpose(Image.open(p))
                    (logits,) = sess.run(["logits"], {"input": preprocess_same_crop(img)})
                    ref[p] = (softmax(logits[0].astype(np.float64)), img.size)
    for margin in a.margins.split(","):
        env = {**os.environ, "CAMTRAPD_JPEG_SHRINK_MARGIN": margin}
        ours = {}
        for d in a.folders:
            r = subprocess.run([a.camtrapd, "classify", "--json", "-k", "5", "--model", a.bundle, d],
                               capture_output=True, text=True, env=env)
            for line in r.stdout.splitlines():
                j = json.loads(line)
                ours[os.path.realpath(j["source"])] = j
        for name, keep in (("< 1000 px", lambda s: max(s) < 1000), (">= 1000 px", lambda s: max(s) >= 1000)):
            n = agree = 0
            diffs = []
            for p, (probs, size) in ref.items():
                if p not in ours or not keep(size):
                    continue
                top = ours[p]["top_k"][0]
                i = labels.index(top["label"])
                n += 1
                agree += int(np.argmax(probs) == i)
                diffs.append(abs(top["score"] - probs[i]))
            if n:
                print(f"margin {margin}, {name}: {n} photos, top-1 agreement {agree}/{n} ({100 * agree / n:.1f} %), "
                      f"|score difference| mean {np.mean(diffs):.4f} max {max(diffs):.3f}")


if __name__ == "__main__":
    main()
