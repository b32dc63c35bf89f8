#!/usr/bin/env python3
"""Reference values for camtrapd's score functions and calibration
(src/decision/score.rs, src/decision/knn.rs, src/eval/calibrate.rs).

Writes tests/data/score_reference.json and tests/data/knn_bank_small.npy,
computed independently of camtrapd's code:

  temperature   temperature scaling (Guo et al. 2017): the T in [0.05, 20]
                minimising the mean negative log-likelihood of the true label
                (with label groups: of the summed probability of the true
                group's member classes), by scipy.optimize.minimize_scalar
                (bounded), in float64
  knn           kNN OOD score (Sun et al. 2022): minus the Euclidean distance
                from the L2-normalised query embedding to its k-th nearest
                L2-normalised bank embedding, by
                sklearn.neighbors.NearestNeighbors; the bank is also written
                with numpy.save so that camtrapd's .npy reader is checked
                against numpy's writer
  calibration   per label, the lowest threshold at which the label's precision
                reaches the target, by brute force over every candidate
                threshold with numpy: images whose top label is the label and
                whose score reaches the threshold are accepted; true positives
                are those whose true label is the label; unknown images
                (label -1) and misclassified known images are false positives.
                The threshold written is halfway between the lowest accepted
                score and the highest rejected score of that label below it
                (the lowest accepted score when nothing below it is rejected).

    python3 -m venv /work/venv5 && /work/venv5/bin/pip install scikit-learn==1.7.2 numpy
    /work/venv5/bin/python scripts/score_reference.py
"""
import json
import os

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from sklearn.neighbors import NearestNeighbors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "score_reference.json")
BANK = os.path.join(ROOT, "tests", "data", "knn_bank_small.npy")


def f32(a):
    return np.asarray(a, dtype=np.float32)


def nll(t, logits, labels, groups):
    z = logits.astype(np.float64) / t
    total = logsumexp(z, axis=1)
    if groups is None:
        true = z[np.arange(len(labels)), labels]
    else:
        true = np.array([logsumexp(z[i, groups[y]]) for i, y in enumerate(labels)])
    return float(np.mean(total - true))


def temperature_case(name, rng, n, classes, groups, sharpness):
    labels_n = len(groups) if groups is not None else classes
    labels = rng.integers(0, labels_n, n)
    logits = rng.normal(0, 1, (n, classes))
    # Over-confident logits: the true class is boosted, then everything is scaled up.
    for i, y in enumerate(labels):
        cls = groups[y][rng.integers(0, len(groups[y]))] if groups is not None else y
        if rng.random() < 0.7:
            logits[i, cls] += 2.0
        else:
            logits[i, rng.integers(0, classes)] += 2.0
    logits = f32(logits * sharpness)
    r = minimize_scalar(lambda t: nll(t, logits, labels, groups), bounds=(0.05, 20.0),
                        method="bounded", options={"xatol": 1e-7})
    return {
        "name": name,
        "logits": [[float(v) for v in row] for row in logits],
        "labels": [int(v) for v in labels],
        "groups": groups,
        "temperature": float(r.x),
        "nll_at_1": nll(1.0, logits, labels, groups),
        "nll_at_fit": float(r.fun),
    }


def knn_cases(rng):
    bank = f32(rng.normal(0, 1, (40, 8)))
    queries = f32(np.r_[rng.normal(0, 1, (6, 8)), bank[:2] * 3.0 + 0.01, rng.normal(5, 0.1, (2, 8))])
    np.save(BANK, bank)  # raw, not normalised: camtrapd normalises at load
    nb = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    nq = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = []
    for k in (1, 5, 40):
        d, _ = NearestNeighbors(n_neighbors=k).fit(nb.astype(np.float64)).kneighbors(nq.astype(np.float64))
        out.append({"k": k, "queries": [[float(v) for v in q] for q in queries],
                    "scores": [float(-v) for v in d[:, k - 1]]})
    return out


def calibration_case(rng, target):
    n_labels = 3
    n = 80
    true = rng.integers(-1, n_labels, n)  # -1 = unknown
    pred = np.where(true >= 0, np.where(rng.random(n) < 0.85, true, rng.integers(0, n_labels, n)),
                    rng.integers(0, n_labels, n))
    score = np.where(true >= 0, rng.beta(5, 2, n), rng.beta(2, 4, n))
    score = np.round(score, 3).astype(np.float32)
    # Label 2: every unknown it takes is confident, so the target is out of reach.
    score[(pred == 2) & (true == -1)] = np.float32(0.999)
    thresholds = {}
    for c in range(n_labels):
        mine = pred == c
        support = int(np.sum(true == c))
        cands = np.unique(score[mine])
        found = None
        for t in cands:  # ascending: the first is the lowest threshold
            acc = mine & (score >= t)
            tp = int(np.sum(acc & (true == c)))
            p = tp / int(np.sum(acc))
            if p >= target:
                below = score[mine & (score < t)]
                thr = float((np.float64(t) + np.float64(below.max())) / 2) if below.size else float(t)
                found = {"threshold": thr, "precision": p, "recall": tp / support, "accepted": int(np.sum(acc)),
                         "true_positives": tp, "support": support, "reached": True}
                break
        if found is None:
            found = {"reached": False, "support": support}
        thresholds[str(c)] = found
    return {
        "target": target,
        "true": [int(v) for v in true],
        "pred": [int(v) for v in pred],
        "score": [float(v) for v in score],
        "labels": thresholds,
    }


def main():
    rng = np.random.default_rng(20261129)
    ref = {
        "generator": f"scripts/score_reference.py (numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__})",
        "temperature": [
            temperature_case("plain softmax, over-confident", rng, 60, 5, None, 3.0),
            temperature_case("label groups, classes 5 and 6 outside every group", rng, 60, 7, [[0, 1], [2], [3, 4]], 2.5),
            temperature_case("under-confident", rng, 40, 4, None, 0.4),
        ],
        "knn": knn_cases(rng),
        "calibration": calibration_case(rng, 0.9),
    }
    with open(OUT, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} and {BANK}")


if __name__ == "__main__":
    main()
