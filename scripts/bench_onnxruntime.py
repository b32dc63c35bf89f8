#!/usr/bin/env python3
"""Inference speed of camtrapd (tract) against onnxruntime, in one run.

1. runs `camtrapd bench --json --dump-input T.npy --reference-model FP32 ...`
   on the default (weight-only int8) bundle: tract's per-stage figures, and
   tract int8 vs tract fp32 measured interleaved in the same process;
2. feeds onnxruntime (CPUExecutionProvider, intra_op_num_threads=1,
   inter_op_num_threads=1, sequential execution, all graph optimisations)
   the same preprocessed tensor T.npy, with the same model files (and any
   --extra ONNX files, e.g. onnxruntime's QDQ export), on one thread;
3. prints p50/p95 per engine and the ratios (this machine is shared and
   noisy: ratios from one run are what to compare, not absolute times);
4. then --rounds alternating rounds of tract fp32 (a fresh `camtrapd bench`)
   and onnxruntime fp32 (one warm session), and the median of the per-round
   ratios: the headline figure, robust to the load drifting during the run.

Only onnxruntime and numpy are needed (no torch):

    python3 -m venv target/venv-ort && target/venv-ort/bin/pip install onnxruntime numpy
    cargo build --release
    target/venv-ort/bin/python scripts/bench_onnxruntime.py -n 200
    target/venv-ort/bin/python scripts/bench_onnxruntime.py --json-out target/bench.json

Check that camtrapd's inference also runs on one thread: tract runs its
kernels on the calling thread unless built with tract-linalg's
`multithread-mm` feature, which camtrapd does not enable.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INT8 = os.path.join(ROOT, "models", "efficientnet-lite0-imagenet")
FP32 = os.path.join(ROOT, "models", "efficientnet-lite0-imagenet-fp32")


def stats(ms):
    v = sorted(ms)
    at = lambda p: v[min(len(v) - 1, round(p * (len(v) - 1)))]
    return {"n": len(v), "mean_ms": sum(v) / len(v), "p50_ms": at(0.5), "p95_ms": at(0.95)}


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_p50(s, x, frames, warmup):
    name = s.get_inputs()[0].name
    ms = []
    for i in range(warmup + frames):
        t = time.perf_counter()
        s.run(None, {name: x})
        if i >= warmup:
            ms.append((time.perf_counter() - t) * 1e3)
    return stats(ms)["p50_ms"]


def tract_fp32_p50(a):
    cmd = [a.camtrapd, "bench", "--json", "-n", str(a.frames), "--warmup", str(a.warmup),
           "--model", FP32, a.images]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {s["stage"]: s for s in out["stages"]}["inference"]["p50_ms"]


def ort_bench(path, x, input_name, frames, warmup):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name if input_name not in [i.name for i in s.get_inputs()] else input_name
    out = None
    ms = []
    for i in range(warmup + frames):
        t = time.perf_counter()
        out = s.run(None, {name: x})
        d = (time.perf_counter() - t) * 1e3
        if i >= warmup:
            ms.append(d)
    return stats(ms), out[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--camtrapd", default=os.path.join(ROOT, "target", "release", "camtrapd"))
    ap.add_argument("-n", "--frames", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--images", default=os.path.join(ROOT, "..", "shared", "data", "zoo12", "known", "elephant"))
    ap.add_argument("--extra", action="append", default=[], help="another ONNX file for onnxruntime (e.g. a QDQ export)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="alternating rounds of tract fp32 and onnxruntime fp32 for the headline ratio "
                         "(median of the per-round ratios; a shared machine's load drifts between runs)")
    ap.add_argument("--json-out")
    a = ap.parse_args()

    tensor = os.path.join(ROOT, "target", "bench-input.npy")
    os.makedirs(os.path.dirname(tensor), exist_ok=True)
    cmd = [a.camtrapd, "bench", "--json", "-n", str(a.frames), "--warmup", str(a.warmup),
           "--model", INT8, "--reference-model", FP32, "--dump-input", tensor, a.images]
    print("$", " ".join(cmd), file=sys.stderr)
    tract = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    with open(os.path.join(INT8, "model.toml"), "rb") as f:
        m = tomllib.load(f)
    inp = m["input"]
    h, w = inp["height"], inp["width"]
    shape = (1, 3, h, w) if inp.get("layout", "nchw").lower() == "nchw" else (1, h, w, 3)
    x = np.load(tensor).reshape(shape).astype(np.float32)

    engines = {}
    stage = {s["stage"]: s for s in tract["stages"]}
    engines["tract int8 (weight-only)"] = stage["inference"]
    ref = [c for c in tract["comparisons"] if c["reference"].startswith("inference of")]
    engines["tract fp32"] = ref[0]["stats"]
    tract_int8_over_fp32 = 1.0 / ref[0]["speedup"]

    r_int8, o_int8 = ort_bench(os.path.join(INT8, "model.onnx"), x, inp.get("name", "input"), a.frames, a.warmup)
    r_fp32, o_fp32 = ort_bench(os.path.join(FP32, "model.onnx"), x, inp.get("name", "input"), a.frames, a.warmup)
    engines["onnxruntime int8 (weight-only)"] = r_int8
    engines["onnxruntime fp32"] = r_fp32
    for e in a.extra:
        r, _ = ort_bench(e, x, inp.get("name", "input"), a.frames, a.warmup)
        engines[f"onnxruntime {os.path.basename(e)}"] = r

    p = {k: v["p50_ms"] for k, v in engines.items()}
    ratios = {
        "tract int8 / tract fp32 (interleaved)": tract_int8_over_fp32,
        "tract fp32 / onnxruntime fp32": p["tract fp32"] / p["onnxruntime fp32"],
        "tract int8 / onnxruntime fp32": p["tract int8 (weight-only)"] / p["onnxruntime fp32"],
        "tract int8 / onnxruntime int8 (weight-only)": p["tract int8 (weight-only)"] / p["onnxruntime int8 (weight-only)"],
    }
    for e in a.extra:
        k = f"onnxruntime {os.path.basename(e)}"
        ratios[f"tract int8 / {k}"] = p["tract int8 (weight-only)"] / p[k]
    agree = int(np.argmax(o_int8)) == int(np.argmax(o_fp32))

    print(f"{'engine (1 thread)':<36} {'p50 ms':>8} {'p95 ms':>8}")
    for k, v in engines.items():
        print(f"{k:<36} {v['p50_ms']:>8.2f} {v['p95_ms']:>8.2f}")
    for k, v in ratios.items():
        print(f"{k:<48} {v:>6.2f}x")
    print(f"pipeline overhead / inference: {tract['overhead_share'] * 100:.1f} % "
          f"({tract['overhead_share_with_gate'] * 100:.1f} % with the motion gate)")
    for t in tract["throughput"]:
        print(f"end to end: {t['fps']:.1f} frames/s with {t['threads']} pipeline(s)")
    print(f"peak RSS {tract['peak_rss_mib']:.1f} MiB, start to first decision {tract['first_decision_ms']:.0f} ms")
    print(f"onnxruntime int8 and fp32 agree on the top-1 of the tensor: {agree}")
    rounds = []
    if a.rounds > 0:
        sess = ort_session(os.path.join(FP32, "model.onnx"))
        for r in range(a.rounds):
            t = tract_fp32_p50(a)
            o = ort_p50(sess, x, a.frames, a.warmup)
            rounds.append({"tract_fp32_p50_ms": t, "onnxruntime_fp32_p50_ms": o, "ratio": t / o})
            print(f"round {r + 1}: tract fp32 {t:.2f} ms, onnxruntime fp32 {o:.2f} ms, ratio {t / o:.2f}x")
        med = sorted(x["ratio"] for x in rounds)[len(rounds) // 2]
        ratios["tract fp32 / onnxruntime fp32, median of alternating rounds"] = med
        print(f"tract fp32 / onnxruntime fp32, median of {len(rounds)} alternating rounds: {med:.2f}x")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"tract": tract, "engines": engines, "ratios": ratios, "rounds": rounds,
                       "onnxruntime_version": ort.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
