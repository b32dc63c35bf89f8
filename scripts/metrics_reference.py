#!/usr/bin/env python3
"""Reference values for camtrapd's open-set metrics (src/eval/metrics.rs).

Writes tests/data/metrics_reference.json: fixed score arrays and the metrics
computed independently of camtrapd's code:

  auroc          sklearn.metrics.roc_auc_score (positives = known images)
  fpr_at_95_tpr  sklearn.metrics.roc_curve(drop_intermediate=False): the FPR of
                 the first operating point whose TPR reaches 0.95
  aupr           sklearn.metrics.average_precision_score (positives = known)
  oscr           open-set classification rate (Dhamija et al. 2018): area under
                 CCR(t) vs FPR(t), computed here by brute force over every
                 threshold with numpy (sklearn has no OSCR)

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install scikit-learn==1.7.2 numpy
    /tmp/venv/bin/python scripts/metrics_reference.py
"""
import json
import os

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "metrics_reference.json")


def oscr(known, correct, unknown):
    known, correct, unknown = np.asarray(known), np.asarray(correct, bool), np.asarray(unknown)
    thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([known, unknown]))[::-1]])
    ccr = np.array([np.mean((known >= t) & correct) for t in thresholds])
    fpr = np.array([np.mean(unknown >= t) for t in thresholds])
    return float(np.trapezoid(ccr, fpr))


def case(name, known, unknown, correct):
    y = np.r_[np.ones(len(known)), np.zeros(len(unknown))]
    s = np.r_[known, unknown]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "name": name,
        "known": [float(v) for v in known],
        "unknown": [float(v) for v in unknown],
        "correct": [bool(c) for c in correct],
        "auroc": float(roc_auc_score(y, s)),
        "fpr_at_95_tpr": float(fpr[np.argmax(tpr >= 0.95)]),
        "aupr": float(average_precision_score(y, s)),
        "oscr": oscr(known, correct, unknown),
    }


def main():
    rng = np.random.default_rng(7)
    cases = []
    k = rng.beta(5, 2, 200).astype(np.float32)
    u = rng.beta(2, 4, 150).astype(np.float32)
    cases.append(case("beta overlap", k, u, rng.random(200) < 0.9))
    # Scores rounded to 0.05: many ties within and across the two sets.
    k = np.round(rng.beta(4, 2, 60) * 20) / 20
    u = np.round(rng.beta(2, 3, 80) * 20) / 20
    cases.append(case("ties", k.astype(np.float32), u.astype(np.float32), rng.random(60) < 0.8))
    cases.append(case("separated", np.array([0.9, 0.8, 0.95], np.float32), np.array([0.1, 0.2], np.float32), [True, False, True]))
    cases.append(case("reversed", np.array([0.1, 0.2], np.float32), np.array([0.9, 0.8, 0.7], np.float32), [True, True]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": f"scripts/metrics_reference.py (scikit-learn {sklearn.__version__}, numpy {np.__version__})", "cases": cases}, f, indent=1)
    for c in cases:
        print(c["name"], {k: round(v, 6) for k, v in c.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
