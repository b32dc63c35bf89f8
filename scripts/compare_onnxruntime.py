#!/usr/bin/env python3
"""Compare camtrapd (tract) with onnxruntime on the two EfficientNet-Lite0 bundles.

For every image under IMAGE_DIR (default: ../shared/data/zoo12/known relative
to the repository root) this script

  * runs onnxruntime (CPUExecutionProvider) on both bundles' model.onnx
    (models/efficientnet-lite0-imagenet = weight-only int8, the default, and
    models/efficientnet-lite0-imagenet-fp32 = the float reference), fed by
    two PIL preprocessings:
      - "pil-ref": `preprocess()` from export_efficientnet_lite0.py, the
        reference (shorter side to 256 bilinear, centre crop 224);
      - "pil-same-crop": the crop geometry camtrapd uses (a centred square
        box of 0.875 * the shorter side, float coordinates, resampled once
        to 224x224 with PIL's bilinear filter), so that only decoder and
        rounding differences remain;
  * runs `camtrapd classify --json -k 5 --model BUNDLE IMAGE_DIR` for both
    bundles;

and reports: the number of images, top-1 agreement int8 vs fp32 inside
camtrapd, top-1 agreement camtrapd vs onnxruntime for each bundle and each
PIL preprocessing, the largest |softmax score difference| of camtrapd's
top-1 label between camtrapd and onnxruntime, and how many images of the
`elephant` folder get a top-1 of "African elephant", "tusker" or "Indian
elephant".

It needs Python 3.11+ (tomllib), the export venv
(scripts/requirements-export.txt: onnxruntime, pillow, numpy; torch too,
because it imports export_efficientnet_lite0.py) and an already built
camtrapd. Extra bundles can be swapped in with --int8-model / --fp32-model
(e.g. onnxruntime's QDQ export, see models/README.md):

    /tmp/venv-export/bin/python scripts/compare_onnxruntime.py
    /tmp/venv-export/bin/python scripts/compare_onnxruntime.py \\
        --camtrapd target/debug/camtrapd --json-out /tmp/compare.json

The images in ../shared/data/zoo12 are from Caltech-101 (Fei-Fei, Fergus,
Perona, 2004; CC BY 4.0).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import tomllib

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_efficientnet_lite0 import MEAN, STD, imagenet_labels, preprocess  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLES = {
    "int8": os.path.join(ROOT, "models", "efficientnet-lite0-imagenet"),
    "fp32": os.path.join(ROOT, "models", "efficientnet-lite0-imagenet-fp32"),
}
ELEPHANT_LABELS = {"African elephant", "tusker", "Indian elephant"}
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SIZE = 224
CROP_FRACTION = 0.875


def preprocess_same_crop(img):
    """camtrapd's `center-crop` geometry in PIL terms: the centred box of
    CROP_FRACTION * the shorter side (float coordinates, square target),
    resampled once to 224x224 (bilinear, antialiased), (x - 127) / 128, NCHW."""
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h) * CROP_FRACTION
    left, top = (w - side) / 2.0, (h - side) / 2.0
    img = img.resize((SIZE, SIZE), resample=Image.BILINEAR, box=(left, top, left + side, top + side))
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return x.transpose(2, 0, 1)[None].copy()


PREPROCESSINGS = {"pil-ref": preprocess, "pil-same-crop": preprocess_same_crop}


def list_images(image_dir):
    files = []
    for d, dirs, fs in os.walk(image_dir):
        dirs.sort()
        files += [os.path.join(d, f) for f in sorted(fs) if f.lower().endswith(IMAGE_EXTS)]
    return sorted(os.path.realpath(f) for f in files)


def softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def bundle_labels(bundle):
    with open(os.path.join(bundle, "model.toml"), "rb") as f:
        return tomllib.load(f)["labels"]


def run_onnxruntime(bundle, files, threads):
    """{realpath: {preprocessing: softmax probabilities}}, images PIL cannot open are left out."""
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(os.path.join(bundle, "model.onnx"), so, providers=["CPUExecutionProvider"])
    out = {}
    for f in files:
        try:
            img = Image.open(f)
            img.load()
        except Exception as e:  # noqa: BLE001 - report and skip unreadable files
            print(f"onnxruntime side: cannot read {f}: {e}", file=sys.stderr)
            continue
        out[f] = {}
        for name, pre in PREPROCESSINGS.items():
            (logits,) = sess.run(["logits"], {"input": pre(img)})
            out[f][name] = softmax(logits[0].astype(np.float64))
    return out


def run_camtrapd(binary, bundle, image_dir):
    """{realpath: parsed JSON line} from `camtrapd classify --json -k 5`."""
    cmd = [binary, "classify", "--json", "-k", "5", "--model", bundle, image_dir]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"warning: {' '.join(cmd)} exited with {p.returncode}\n{p.stderr}", file=sys.stderr)
    out = {}
    for line in p.stdout.splitlines():
        if line.strip():
            r = json.loads(line)
            out[os.path.realpath(r["source"])] = r
    return out


def default_binary():
    for rel in ("target/release/camtrapd", "target/debug/camtrapd"):
        p = os.path.join(ROOT, rel)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return os.path.join(ROOT, "target/release/camtrapd")


def pct(a, n):
    return f"{a}/{n} ({100.0 * a / n:.1f}%)" if n else f"{a}/0"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image_dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "zoo12", "known"),
                    help="folder of images, searched recursively (default: ../shared/data/zoo12/known)")
    ap.add_argument("--camtrapd", default=None,
                    help="camtrapd binary (default: target/release/camtrapd, else target/debug/camtrapd)")
    ap.add_argument("--int8-model", default=BUNDLES["int8"], help="int8 bundle folder")
    ap.add_argument("--fp32-model", default=BUNDLES["fp32"], help="fp32 bundle folder")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--json-out", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()

    binary = os.path.abspath(args.camtrapd) if args.camtrapd else default_binary()
    image_dir = os.path.realpath(args.image_dir)
    bundles = {"int8": os.path.realpath(args.int8_model), "fp32": os.path.realpath(args.fp32_model)}

    labels = imagenet_labels()
    for name, b in bundles.items():
        if bundle_labels(b) != labels:
            sys.exit(f"{b}/model.toml labels differ from imagenet_labels()")

    files = list_images(image_dir)
    if not files:
        sys.exit(f"no images under {image_dir}")

    t0 = time.time()
    tract = {m: run_camtrapd(binary, b, image_dir) for m, b in bundles.items()}
    t_tract = time.time() - t0
    t0 = time.time()
    onnx = {m: run_onnxruntime(b, files, args.threads) for m, b in bundles.items()}
    t_ort = time.time() - t0

    # Images every runner could read.
    tract_ok = {m: {f for f, r in tract[m].items() if "label" in r} for m in bundles}
    common = [f for f in files if all(f in tract_ok[m] and f in onnx[m] for m in bundles)]
    missing_tract = {m: sorted(set(files) - set(tract[m])) for m in bundles}
    n = len(common)

    def top1_tract(m, f):
        return tract[m][f]["label"]

    def top1_ort(m, f, pre):
        return labels[int(np.argmax(onnx[m][f][pre]))]

    res = {
        "image_dir": image_dir,
        "camtrapd": binary,
        "onnxruntime": ort.__version__,
        "images_found": len(files),
        "images_compared": n,
        "unreadable_in_camtrapd": {m: sorted(set(files) - tract_ok[m] - set(missing_tract[m])) for m in bundles},
        "not_reported_by_camtrapd": missing_tract,
        "seconds": {"camtrapd_both_models": round(t_tract, 1), "onnxruntime_both_models_both_preprocessings":
                    round(t_ort, 1)},
    }
    res["top1_agree_tract_int8_vs_fp32"] = sum(top1_tract("int8", f) == top1_tract("fp32", f) for f in common)
    res["top1_agree_ort_int8_vs_fp32"] = {
        pre: sum(top1_ort("int8", f, pre) == top1_ort("fp32", f, pre) for f in common) for pre in PREPROCESSINGS}
    res["top1_agree_tract_vs_ort"] = {}
    res["top1_score_abs_diff_tract_vs_ort"] = {}
    for m in bundles:
        res["top1_agree_tract_vs_ort"][m] = {}
        res["top1_score_abs_diff_tract_vs_ort"][m] = {}
        for pre in PREPROCESSINGS:
            res["top1_agree_tract_vs_ort"][m][pre] = sum(top1_tract(m, f) == top1_ort(m, f, pre) for f in common)
            # |camtrapd's top-1 score - onnxruntime's softmax probability of that same label|
            d = np.array([abs(tract[m][f]["score"] - onnx[m][f][pre][labels.index(top1_tract(m, f))])
                          for f in common])
            res["top1_score_abs_diff_tract_vs_ort"][m][pre] = {
                "max": float(d.max()), "mean": float(d.mean()), "median": float(np.median(d))}

    eleph = [f for f in common if os.path.basename(os.path.dirname(f)) == "elephant"]
    res["elephant"] = {"images": len(eleph)}
    for m in bundles:
        res["elephant"][f"tract_{m}"] = sum(top1_tract(m, f) in ELEPHANT_LABELS for f in eleph)
        for pre in PREPROCESSINGS:
            res["elephant"][f"ort_{m}_{pre}"] = sum(top1_ort(m, f, pre) in ELEPHANT_LABELS for f in eleph)

    print(f"images: {len(files)} found under {image_dir}, {n} compared (readable by camtrapd and PIL)")
    for m in bundles:
        bad = res["unreadable_in_camtrapd"][m] + missing_tract[m]
        if bad:
            print(f"  {m}: camtrapd could not read / did not report {len(bad)}: {bad[:5]}")
    print(f"camtrapd: {binary}; onnxruntime {ort.__version__} (CPUExecutionProvider)")
    print(f"time: camtrapd {t_tract:.1f} s for both models; onnxruntime {t_ort:.1f} s "
          f"for both models x {len(PREPROCESSINGS)} preprocessings")
    print()
    print(f"top-1 agreement, camtrapd int8 vs fp32:            {pct(res['top1_agree_tract_int8_vs_fp32'], n)}")
    for pre in PREPROCESSINGS:
        print(f"top-1 agreement, onnxruntime int8 vs fp32 [{pre}]: {pct(res['top1_agree_ort_int8_vs_fp32'][pre], n)}")
    print()
    print("camtrapd (tract) vs onnxruntime        top-1 agreement      |top-1 score diff| max / mean")
    for m in bundles:
        for pre in PREPROCESSINGS:
            a = res["top1_agree_tract_vs_ort"][m][pre]
            d = res["top1_score_abs_diff_tract_vs_ort"][m][pre]
            print(f"  {m:4} [{pre:13}]                 {pct(a, n):20} {d['max']:.4f} / {d['mean']:.5f}")
    print()
    e = res["elephant"]
    print(f"elephant folder: top-1 in {sorted(ELEPHANT_LABELS)} out of {e['images']} images")
    for m in bundles:
        ort_s = ", ".join(f"onnxruntime [{pre}] {e[f'ort_{m}_{pre}']}" for pre in PREPROCESSINGS)
        print(f"  {m}: camtrapd {e[f'tract_{m}']}; {ort_s}")
    print()
    print("images: Caltech-101 (Fei-Fei, Fergus, Perona, 2004; CC BY 4.0)")

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
