#!/usr/bin/env python3
"""Which decision rejects unseen species best? The levers of docs/open-set.md,
compared at one operating point: the single threshold that keeps 90 % of the
known test photos, so that every lever is judged at the same known recall.

For each lever it reports, on zoo12 (Caltech-101, CC BY 4.0) and the
camera-trap frames of ../shared/data/camera_trap:
  species-out  share of the six unknown zoo12 species published (none of them
               is in training; a single global threshold does not depend on
               negatives, so every one of them is unseen by the threshold too)
  label-out    mean over the 12 labels of the share of the label's photos
               published when the head (and bank, profiles) is refitted
               without it and the threshold again keeps 90 % of the other
               labels' test photos
  empty        share of zoo12's empty test backgrounds published
  camera trap  share of the 27 camera-trap frames of unknown animals, people
               and vehicles published
  accuracy     closed-set accuracy of the lever's top label on the test photos

The backbone is the bundled EfficientNet-Lite0 (models/efficientnet-lite0-
imagenet, weight-only int8) run by onnxruntime with PIL preprocessing (shorter
side 256, centre crop 224, (x - 127) / 128); camtrapd decodes with
libjpeg-turbo and resizes with fast_image_resize, so the figures differ from
camtrapd's in the last digit. The head is the sigmoid head of `camtrapd
train` (class-balanced binary cross-entropy, "nothing" photos all-zero,
standardised inputs, L2 0.01, L-BFGS). camtrapd's own figures at calibrated
thresholds come from `camtrapd train` (docs/open-set.md).

    python3 -m venv /tmp/venv-levers
    /tmp/venv-levers/bin/pip install numpy scipy onnxruntime pillow
    /tmp/venv-levers/bin/python scripts/open_set_levers.py [--data ../shared/data]

Takes about 10 minutes on 2 cores (most of it embedding 3,400 photos once;
the outputs are cached in /tmp/open_set_levers.npz).
"""
import argparse
import csv
import os

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps
from scipy.optimize import minimize

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "models", "efficientnet-lite0-imagenet", "model.onnx")


def read_rows(data):
    rows = []
    for ds in ["zoo12", "generic_negatives", "camera_trap"]:
        for r in csv.DictReader(open(os.path.join(data, ds, "manifest.csv"))):
            rows.append(dict(ds=ds, path=os.path.join(data, ds, r["path"]), label=r["label"],
                             kind=r.get("kind", ""), split=r.get("split", "")))
    return rows


def prep(path, flip=False):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    if flip:
        im = ImageOps.mirror(im)
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
    w, h = im.size
    l, t = (w - 224) // 2, (h - 224) // 2
    a = (np.asarray(im.crop((l, t, l + 224, t + 224)), dtype=np.float32) - 127) / 128
    return a.transpose(2, 0, 1)[None]


def features(rows, cache):
    if os.path.exists(cache):
        f = np.load(cache)
        if len(f["logits"]) == len(rows):
            return f["logits"], f["emb"], f["flip_logits"], f["flip_emb"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(MODEL, so)
    out = {k: [] for k in ["logits", "emb", "flip_logits", "flip_emb"]}
    for i, r in enumerate(rows):
        lo, em = sess.run(["logits", "embedding"], {"input": prep(r["path"])})
        out["logits"].append(lo[0])
        out["emb"].append(em[0])
        train = r["ds"] == "zoo12" and r["split"] == "train"
        if train:
            lo, em = sess.run(["logits", "embedding"], {"input": prep(r["path"], flip=True)})
        out["flip_logits"].append(lo[0])
        out["flip_emb"].append(em[0])
        if i % 500 == 0:
            print(f"embedded {i} of {len(rows)}", flush=True)
    out = {k: np.array(v) for k, v in out.items()}
    np.savez(cache, **out)
    return out["logits"], out["emb"], out["flip_logits"], out["flip_emb"]


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def train_head(x, t, n, l2=1e-2):
    """camtrapd's sigmoid head: weighted BCE, negatives all-zero, L2 on standardised inputs."""
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-6] = np.inf
    xs = (x - mu) / sd
    m, d = xs.shape
    y = np.zeros((m, n))
    for i, ti in enumerate(t):
        if ti >= 0:
            y[i, ti] = 1
    grp = np.where(t >= 0, t, n)
    cnt = np.bincount(grp, minlength=n + 1)
    w = m / ((cnt > 0).sum() * cnt[grp])
    w = w / w.sum()

    def f(p):
        W, b = p[: n * d].reshape(n, d), p[n * d:]
        z = xs @ W.T + b
        val = (w[:, None] * (np.logaddexp(0, z) - y * z)).sum() + 0.5 * l2 * (W ** 2).sum()
        g = (1 / (1 + np.exp(-z)) - y) * w[:, None]
        return val, np.concatenate([(g.T @ xs + l2 * W).ravel(), g.sum(0)])

    p0 = np.random.default_rng(42).normal(0, 0.01, n * d + n)
    p0[n * d:] = 0
    r = minimize(f, p0, jac=True, method="L-BFGS-B", options=dict(maxiter=300))
    W, b = r.x[: n * d].reshape(n, d) / sd, r.x[n * d:]
    return W, b - (W * mu).sum(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--cache", default="/tmp/open_set_levers.npz")
    a = ap.parse_args()
    rows = read_rows(a.data)
    LOG, EMB, FLOG, FEMB = features(rows, a.cache)
    ds = np.array([r["ds"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    split = np.array([r["split"] for r in rows])
    lab = np.array([r["label"] for r in rows])
    labels = sorted({r["label"] for r in rows if r["kind"] == "known"})
    sel = lambda m: np.nonzero(m)[0]
    TR = sel((ds == "zoo12") & (split == "train"))
    TE = sel((ds == "zoo12") & (split == "test"))
    UNK = sel((ds == "zoo12") & (kind == "unknown"))
    BG = sel((ds == "zoo12") & (split == "test") & (kind == "nothing"))
    CT = sel((ds == "camera_trap") & (kind != "empty"))
    GN = sel(ds == "generic_negatives")
    unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)

    heads = {}

    def fit(labs, oe=False, aug=False):
        key = (tuple(labs), oe, aug)
        if key in heads:
            return heads[key]
        keep = np.array([kind[i] != "known" or lab[i] in labs for i in TR])
        tr = TR[keep]
        t = np.array([labs.index(lab[i]) if kind[i] == "known" else -1 for i in tr])
        x, lg = EMB[tr], LOG[tr]
        if aug:
            x, lg, t = np.concatenate([x, FEMB[tr]]), np.concatenate([lg, FLOG[tr]]), np.concatenate([t, t])
        if oe:
            x, lg, t = np.concatenate([x, EMB[GN]]), np.concatenate([lg, LOG[GN]]), np.concatenate([t, -np.ones(len(GN), int)])
        W, b = train_head(x, t, len(labs))
        k = t >= 0
        h = dict(labels=list(labs), W=W, b=b, bank=unit(x[k]), bank_lab=t[k], lg=lg[k])
        heads[key] = h
        return h

    def feats(h, ii, T):
        n = len(h["labels"])
        z = EMB[ii] @ h["W"].T + h["b"]
        sims = unit(EMB[ii]) @ h["bank"].T
        P, Pk = softmax(LOG[ii] / T), softmax(h["lg"] / T)
        lb, k1 = np.zeros((len(ii), n)), np.zeros((len(ii), n))
        for l in range(n):
            m = h["bank_lab"] == l
            lb[:, l] = np.log(np.sqrt(P * Pk[m].mean(0)).sum(1) + 1e-6)
            k1[:, l] = sims[:, m].max(1)
        knn5 = np.sort(sims, 1)[:, -5][:, None].repeat(n, 1)
        return dict(z=z, lb=lb, k1=k1, knn5=knn5)

    # (name, score per label from features, top label from the head (True) or the score, T, OE, augmentation)
    levers = [
        ("head: sigmoid logit (the old default)", lambda F: F["z"], True, 1.0, False, False),
        ("head + outlier exposure (1,020 generic negatives)", lambda F: F["z"], True, 1.0, True, False),
        ("head + flips of the training photos", lambda F: F["z"], True, 1.0, False, True),
        ("kNN, k = 5, any label (score = knn)", lambda F: F["knn5"], True, 1.0, False, False),
        ("kNN to the label's own photos, k = 1", lambda F: F["k1"], True, 1.0, False, False),
        ("ImageNet agreement (BC, T = 1)", lambda F: F["lb"], True, 1.0, False, False),
        ("ImageNet agreement + 5 kNN-label (T = 1)", lambda F: F["lb"] + 5 * F["k1"], False, 1.0, False, False),
        ("head/8 + ImageNet (T = 0.5) + 10 kNN-label (new default)", lambda F: F["z"] / 8 + F["lb"] + 10 * F["k1"], False, 0.5, False, False),
        ("new default + outlier exposure", lambda F: F["z"] / 8 + F["lb"] + 10 * F["k1"], False, 0.5, True, False),
        ("new default + flips", lambda F: F["z"] / 8 + F["lb"] + 10 * F["k1"], False, 0.5, False, True),
    ]
    truth = lambda labs, ii: np.array([labs.index(lab[i]) if kind[i] == "known" and lab[i] in labs else -1 for i in ii])

    def decide(h, ii, c, headtop, T):
        F = feats(h, ii, T)
        S = c(F)
        top = F["z"].argmax(1) if headtop else S.argmax(1)
        return top, S[np.arange(len(ii)), top]

    print("| lever | accuracy | species-out | label-out (mean, max) | empty | camera trap |")
    print("|---|---|---|---|---|---|")
    for name, c, headtop, T, oe, aug in levers:
        h = fit(labels, oe, aug)
        top, s = decide(h, TE, c, headtop, T)
        tr = truth(labels, TE)
        known = tr >= 0
        acc = (top == tr)[known].mean()
        g = np.quantile(s[known], 0.10)
        pub = lambda ii: (decide(h, ii, c, headtop, T)[1] >= g).mean()
        lo = []
        for L in labels:
            labs = [x for x in labels if x != L]
            hh = fit(labs, oe, aug)
            te = TE[lab[TE] != L]
            t2, s2 = decide(hh, te, c, headtop, T)
            g2 = np.quantile(s2[truth(labs, te) >= 0], 0.10)
            held = sel((ds == "zoo12") & (lab == L) & (split != "train"))
            lo.append((decide(hh, held, c, headtop, T)[1] >= g2).mean())
        print(f"| {name} | {acc * 100:.1f}% | {pub(UNK) * 100:.1f}% | {np.mean(lo) * 100:.1f}% ({max(lo) * 100:.0f}%) | "
              f"{pub(BG) * 100:.1f}% | {pub(CT) * 100:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
