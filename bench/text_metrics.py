"""text_metrics.py: the metrics of `contrast eval` on a text checkpoint, in NumPy, for
the baselines (bench/text_baselines.py, bench/torch_text.py). Same definitions as
ct_evaluate_text (src/train/text.c) and ct_eval_retrieval / ct_knn_eval
(src/eval/knn.c):

  * retrieval: every test pair's anchor (the short description) is a query; the
    gallery is the distinct positive texts (long descriptions), numbered in order
    of their first pair; each query has exactly one relevant item. Items are ranked
    by cosine similarity, ties going to the lower gallery number. R@k: the relevant
    item is among the first k; MRR@10: 1/rank when rank <= 10, else 0 (mAP@10 with
    one relevant item).
  * kNN: cosine top-k neighbours among the training anchors, votes
    exp((s - s_best) / T) per label, ties between labels to the lower label.
"""
import numpy as np


def first_copies(texts):
    """uniq[i]: the index of the first text equal to texts[i] (ct_text_dataset's uniq).
    A pairs dataset keeps a text once per occurrence; the gallery and the batch
    planner compare texts by their bytes, so ids go through this."""
    first, uniq = {}, np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        uniq[i] = first.setdefault(t, i)
    return uniq


def gallery(anchors, positives):
    """gal: the distinct positive text ids in order of first appearance (pass ids
    through first_copies); target[i]: the position of pair i's positive in gal."""
    slot, gal = {}, []
    target = np.empty(len(positives), dtype=np.int64)
    for i, p in enumerate(positives.tolist()):
        if p not in slot:
            slot[p] = len(gal)
            gal.append(p)
        target[i] = slot[p]
    return np.asarray(gal, dtype=np.int64), target


def _dense(block):
    return block.toarray() if hasattr(block, "toarray") else np.asarray(block)


def l2_rows(x):
    """Unit rows (zero rows stay zero) with the C side's rounding (normalize_rows in
    src/eval/knn.c): the sum of squares in double, one float32 factor per row."""
    x = np.asarray(x, dtype=np.float32)
    ss = (x.astype(np.float64) ** 2).sum(1, keepdims=True)
    inv = np.where(ss > 0, 1.0 / np.sqrt(np.where(ss > 0, ss, 1)), 0).astype(np.float32)
    return x * inv


def ranks(q, g, target, block=512):
    """0-based rank of target[i] for query row i against gallery rows g, by the dot
    product of the rows (pass unit rows for cosine: l2_rows, or TF-IDF's l2-normed
    sparse rows). rank = #items scoring higher + #items scoring the same with a lower
    number."""
    n = q.shape[0]
    out = np.empty(n, dtype=np.int64)
    gt = g.T
    cols = np.arange(g.shape[0])
    for s in range(0, n, block):
        e = min(n, s + block)
        sim = _dense(q[s:e] @ gt)
        t = target[s:e]
        st = sim[np.arange(e - s), t][:, None]
        out[s:e] = (sim > st).sum(1) + ((sim == st) & (cols[None, :] < t[:, None])).sum(1)
    return out


def retrieval_summary(rk):
    """R@1, R@10 and MRR@10 from 0-based ranks."""
    rk = np.asarray(rk)
    return {"r1": float((rk < 1).mean()), "r10": float((rk < 10).mean()),
            "mrr10": float(np.where(rk < 10, 1.0 / (rk + 1), 0.0).mean())}


def chance(n_gallery):
    """Expected R@1, R@10, MRR@10 of a random ranking of n_gallery items."""
    k = min(10, n_gallery)
    return {"r1": 1.0 / n_gallery, "r10": k / n_gallery,
            "mrr10": sum(1.0 / r for r in range(1, k + 1)) / n_gallery}


def knn_top1(train_feat, train_labels, test_feat, test_labels, nlabels, k=200, T=0.1, block=256):
    """Weighted kNN top-1 accuracy (Wu et al. 2018), as ct_knn_eval. Dense features are
    normalised here; sparse ones (scipy) must have unit rows already (TF-IDF's)."""
    sparse = hasattr(train_feat, "toarray")
    tr, te = (train_feat, test_feat) if sparse else (l2_rows(train_feat), l2_rows(test_feat))
    k = min(k, tr.shape[0])
    trt = tr.T
    hits = 0
    for s in range(0, te.shape[0], block):
        sim = _dense(te[s:s + block] @ trt)
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sim, idx, 1).astype(np.float64)
        w = np.exp((top - top.max(1, keepdims=True)) / T)
        votes = np.zeros((sim.shape[0], nlabels))
        np.add.at(votes, (np.repeat(np.arange(sim.shape[0]), k), train_labels[idx].ravel()), w.ravel())
        hits += int((votes.argmax(1) == test_labels[s:s + block]).sum())
    return hits / te.shape[0]


def _selfcheck(checkpoint, contrast_bin):
    """python3 bench/text_metrics.py CHECKPOINT [CONTRAST_BIN]: the retrieval metrics
    above on the checkpoint's embeddings (contrast.load(...).embed_texts) against
    `contrast eval --json` on the same checkpoint; exits 1 when they differ."""
    import json
    import os
    import subprocess
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
    import contrast
    te = contrast.text_dataset("debian-descriptions", train=False)
    u = first_copies(te.texts)
    gal, target = gallery(u[te.anchors], u[te.positives])
    m = contrast.load(checkpoint)
    q = l2_rows(m.embed_texts([te.texts[i] for i in te.anchors]))
    g = l2_rows(m.embed_texts([te.texts[i] for i in gal]))
    ours = retrieval_summary(ranks(q, g, target))
    out = subprocess.run([contrast_bin, "eval", "--checkpoint", checkpoint, "--data", "debian-descriptions", "--json"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    ref = json.loads(out)
    bad = [k for k in ("r1", "r10", "mrr10") if abs(ours[k] - ref[k]) > 5e-5]
    print("text_metrics: %s; contrast eval: %s" % (
        ", ".join("%s %.4f" % (k, ours[k]) for k in ("r1", "r10", "mrr10")),
        ", ".join("%s %.4f" % (k, ref[k]) for k in ("r1", "r10", "mrr10"))))
    if bad:
        sys.exit("text_metrics: differs from contrast eval in " + ", ".join(bad))


if __name__ == "__main__":
    import sys
    if len(sys.argv) < 2:
        sys.exit("usage: python3 bench/text_metrics.py CHECKPOINT [CONTRAST_BIN]")
    _selfcheck(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "./contrast")
