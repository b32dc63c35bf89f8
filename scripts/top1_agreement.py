#!/usr/bin/env python3
"""Top-1 agreement of two camtrapd model bundles (e.g. an int8 form against
its fp32 source) on the images of a camtrapd manifest, both run by camtrapd
(tract), plus the largest score difference of the shared top-1 label.

    target/venv-ort/bin/python scripts/top1_agreement.py \\
        models/efficientnet-lite0-imagenet-fp32 target/int8-qop-pw --every 4

Only the Python standard library is needed.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def classify(binary, bundle, files):
    out = subprocess.run([binary, "classify", "--json", "-k", "1", "-m", bundle, *files],
                         capture_output=True, text=True)
    if out.returncode not in (0,):
        sys.exit(f"camtrapd classify -m {bundle} failed ({out.returncode}): {out.stderr[-2000:]}")
    res = {}
    for line in out.stdout.splitlines():
        d = json.loads(line)
        if d.get("top_k"):
            res[d["source"]] = (d["top_k"][0]["label"], d["top_k"][0]["score"])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", help="reference bundle (e.g. the fp32 one)")
    ap.add_argument("candidate", help="bundle to compare")
    ap.add_argument("--manifest", default=os.path.join(ROOT, "..", "shared", "data", "zoo12", "manifest.csv"))
    ap.add_argument("--every", type=int, default=1, help="take every N-th image of the manifest")
    ap.add_argument("--camtrapd", default=os.path.join(ROOT, "target", "release", "camtrapd"))
    a = ap.parse_args()
    base = os.path.dirname(a.manifest)
    rows = list(csv.DictReader(open(a.manifest)))[:: a.every]
    files = [os.path.join(base, r["path"]) for r in rows]
    ref = classify(a.camtrapd, a.reference, files)
    cand = classify(a.camtrapd, a.candidate, files)
    both = [f for f in files if f in ref and f in cand]
    agree = [f for f in both if ref[f][0] == cand[f][0]]
    diff = max((abs(ref[f][1] - cand[f][1]) for f in agree), default=0.0)
    by_kind = {}
    for r, f in zip(rows, files):
        if f in ref and f in cand:
            k = by_kind.setdefault(r["kind"], [0, 0])
            k[0] += ref[f][0] == cand[f][0]
            k[1] += 1
    print(json.dumps({
        "images": len(both),
        "top1_agreement": len(agree) / max(1, len(both)),
        "by_kind": {k: v[0] / v[1] for k, v in by_kind.items()},
        "max_top1_score_difference": diff,
    }, indent=1))


if __name__ == "__main__":
    main()
