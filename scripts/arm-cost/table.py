#!/usr/bin/env python3
"""Joins `camtrapd bench --insn-markers` legends (stdout, JSON) with the
insnmark plugin's counts (stderr) into instructions per frame, per stage and
per operator. Used by scripts/arm-cost.sh; stdlib only.

    table.py RUN...            RUN = LABEL=LEGEND.json:COUNTS.txt
    table.py --ops RUN...      also the per-operator breakdown of inference
    table.py --json RUN...     machine-readable

Instructions are a proxy for cost on the core qemu emulates: exact and
repeatable, blind to caches, memory bandwidth and latency.
"""
import json
import re
import sys

# Lower bounds of instructions per multiply-accumulate for the inference row.
BOUNDS = "bound: 0.25 insn/MAC with 4-wide fp32 FMLA; 0.0625 with int8 SDOT (A76, 16 MACs per instruction)"
# Stages that make up "the pipeline" around inference for one frame
# (the daemon's path for a 640x480 MJPEG camera frame, no snapshot).
PIPELINE = ["decode 640x480", "resize+normalise", "decision", "sink (JSON)"]
GATE = "motion gate 640x480 (JPEG luma at 1/4)"


def load(run):
    label, rest = run.split("=", 1)
    legend_path, counts_path = rest.rsplit(":", 1)
    legend = json.load(open(legend_path))
    counts = {}
    for line in open(counts_path):
        m = re.match(r"mark (\d+) (\d+) (\d+)$", line.strip())
        if m:
            counts[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    if not counts:
        sys.exit(f"{counts_path}: no 'mark' lines: was the run made under qemu with -plugin libinsnmark.so -d plugin?")
    stages, ops, nodes = {}, {}, []
    for mk in legend["markers"]:
        hits, total = counts.get(mk["id"], (0, 0))
        if mk["kind"] == "stage":
            stages[mk["name"]] = total / hits if hits else float("nan")
        else:
            per = total / max(1, legend["node_frames"])
            o = ops.setdefault(mk["op"], [0, 0.0])
            o[0] += 1
            o[1] += per
            nodes.append((per, mk["name"], mk["op"], mk.get("info", "")))
    inf = stages["inference"]
    pipe = sum(stages[s] for s in PIPELINE)
    return {
        "label": label,
        "model": legend["model"],
        "input": legend["input"],
        "macs": legend["macs"],
        "stages": stages,
        "inference": inf,
        "insn_per_mac": inf / legend["macs"] if legend["macs"] else None,
        "pipeline": pipe,
        "pipeline_share": pipe / inf,
        "pipeline_share_with_gate": (pipe + stages[GATE]) / inf,
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1][1])),
        "top_nodes": sorted(nodes, reverse=True)[:12],
    }


def m(x):
    return f"{x / 1e6:.2f} M"


def main():
    args = sys.argv[1:]
    want_ops = "--ops" in args
    want_json = "--json" in args
    runs = [load(a) for a in args if not a.startswith("--")]
    if not runs:
        sys.exit(__doc__)
    if want_json:
        json.dump(runs, sys.stdout, indent=1)
        print()
        return
    def core(r):
        return r["label"].rsplit("@", 1)[-1]

    print(f"instructions per frame (qemu-user + insnmark plugin); {BOUNDS}")
    print("'vs first': inference against the first run on the same core; 'share': decode 640x480 + "
          "resize/normalise + decision + sink as a share of inference; '+gate': with the motion gate")
    print(f"{'run':<44} {'inference':>11} {'vs first':>8} {'insn/MAC':>8} {'pipeline':>10} {'share':>7} {'+gate':>7}")
    for r in runs:
        ref = next(x for x in runs if core(x) == core(r))["inference"]
        print(f"{r['label']:<44} {m(r['inference']):>11} {r['inference'] / ref:>8.2f} "
              f"{r['insn_per_mac']:>8.3f} {m(r['pipeline']):>10} {r['pipeline_share'] * 100:>6.1f}% "
              f"{r['pipeline_share_with_gate'] * 100:>6.1f}%")
    print()
    names = list(runs[0]["stages"])
    for i, r in enumerate(runs):
        print(f"[{i + 1}] {r['label']}: {r['model']}, input {r['input']}, {r['macs'] / 1e6:.1f} M MACs")
    print(f"{'stage':<40}" + "".join(f" {'[' + str(i + 1) + ']':>10}" for i in range(len(runs))))
    for s in names:
        print(f"{s:<40}" + "".join(f" {m(r['stages'][s]):>10}" for r in runs))
    if want_ops:
        for r in runs:
            print(f"\n{r['label']}: inference by operator (per frame)")
            for op, (n, v) in r["ops"].items():
                print(f"  {op:<28} {n:>4} nodes {m(v):>11} {v / r['inference'] * 100:>6.1f}%")
            print("  largest nodes:")
            for v, name, op, info in r["top_nodes"]:
                print(f"  {m(v):>11}  {op:<20} {name}  {info[:90]}")


if __name__ == "__main__":
    main()
