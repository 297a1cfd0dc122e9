#!/usr/bin/python3
"""text_baselines.py: the baselines of `contrast eval` on text (issue 22, item 5), on
exactly the data `contrast train --data debian-descriptions` sees (contrast.text_dataset: the same
loading, train/test split and de-duplication), scored by the same metrics
(bench/text_metrics.py, which follows ct_evaluate_text):

  tfidf     scikit-learn's TfidfVectorizer (its defaults: lowercase, words of 2+
            word characters, smooth idf, l2 rows) fit on the training texts;
            short -> long retrieval by cosine; Section kNN from the short descriptions.
  fasttext  Debian's `fasttext` CLI: `skipgram` on the training texts, sentence
            vectors (`print-sentence-vectors`) for retrieval and Section kNN; its
            `supervised` classifier trained on the training pairs' short descriptions
            with their Section, accuracy on the test pairs' short descriptions (the
            target of contrast's probe). fastText sees the texts lowercased with
            punctuation split off (its own tokenizer splits on whitespace only).
  chance    the expected retrieval scores of a random ranking; the Section row is the
            majority class of the training split, scored on the test split.

    /usr/bin/python3 bench/text_baselines.py [--limit N]
        [--threads N] [--only tfidf,fasttext,chance] [--json FILE] [--seed S]
        [--ft-dim 100] [--ft-epoch 5] [--ft-sup-epoch 25] [--ft-sup-lr 0.5]

--limit N keeps the first N training pairs (as `contrast train --limit N`) for what
learns a representation (TF-IDF's vocabulary and idf, fastText's skipgram); the
Section kNN's memory bank and the classifier use every training pair, and the test
split is always whole, as in `contrast eval`. Needs `sh tools/deps.sh torch`
(python3-sklearn, fasttext) and a built libcontrast (`make`). Prints one markdown
table; --json FILE also writes the numbers. fastText's results vary a little with
--threads above 1 (its asynchronous SGD); --threads 1 repeats them.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import text_metrics as tm  # noqa: E402


def import_contrast():
    try:
        import contrast  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
    import contrast
    if not hasattr(contrast, "text_dataset"):
        sys.exit("text_baselines: this contrast package has no text_dataset (python/contrast too old)")
    return contrast


class Split:
    """One split's pairs as text ids: anchors[i], positives[i] (the first `limit`
    pairs: what a representation may be trained on) and lab_anchors, labels (every
    pair: the memory bank of the Section kNN and the classifier's training set, as
    `contrast eval`, which reads the whole training split)."""

    def __init__(self, d, limit=0):
        n = len(d.anchors) if limit <= 0 else min(limit, len(d.anchors))
        self.texts = d.texts
        u = tm.first_copies(d.texts)  # texts compared by bytes, as the C side's uniq
        self.anchors = u[np.asarray(d.anchors[:n], dtype=np.int64)]
        self.positives = u[np.asarray(d.positives[:n], dtype=np.int64)]
        self.lab_anchors = u[np.asarray(d.anchors, dtype=np.int64)]
        self.labels = None if d.labels is None else np.asarray(d.labels, dtype=np.int64)
        self.label_names = d.label_names
        used = np.unique(np.concatenate([self.anchors, self.positives]))
        self.used_texts = [d.texts[i] for i in used]  # what training may read: texts of the kept pairs

    def text_list(self, idx):
        return [self.texts[i] for i in idx]


def fail(msg):
    sys.exit("text_baselines: " + msg)


# ---- TF-IDF ---------------------------------------------------------------------------
def run_tfidf(tr, te, gal, target, args):
    from sklearn.feature_extraction.text import TfidfVectorizer
    t0 = time.time()
    vec = TfidfVectorizer(dtype=np.float64)
    vec.fit(tr.used_texts)
    q = vec.transform(te.text_list(te.anchors))
    g = vec.transform(te.text_list(gal))
    res = tm.retrieval_summary(tm.ranks(q, g, target))
    if tr.labels is not None and te.labels is not None:
        ftr = vec.transform(tr.text_list(tr.lab_anchors))
        res["knn_top1"] = tm.knn_top1(ftr, tr.labels, q, te.labels, len(tr.label_names), args.k, args.knn_t)
    res["seconds"] = time.time() - t0
    res["vocabulary"] = len(vec.vocabulary_)
    return res


# ---- fastText ------------------------------------------------------------------------
PUNCT = re.compile(r"([^\w\s])")


def ft_clean(s):
    """One line for fastText: lowercase, punctuation as words of its own, no newline."""
    return " ".join(PUNCT.sub(r" \1 ", s.lower()).split())


def ft(args, *cmd, stdin=None):
    r = subprocess.run(["fasttext", *cmd], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, errors="surrogateescape")
    if r.returncode != 0:
        fail("fasttext %s failed (%d): %s" % (cmd[0], r.returncode, r.stderr.strip()[-500:]))
    return r.stdout


def ft_vectors(args, model, texts, dim):
    out = ft(args, "print-sentence-vectors", model, stdin="".join(ft_clean(t) + "\n" for t in texts))
    v = np.array([[float(x) for x in line.split()] for line in out.splitlines()], dtype=np.float32)
    if v.shape != (len(texts), dim):
        fail("print-sentence-vectors gave %s for %d texts of dimension %d" % (v.shape, len(texts), dim))
    return v


def run_fasttext(tr, te, gal, target, args, tmp):
    if not shutil.which("fasttext"):
        fail("no fasttext on the PATH: sh tools/deps.sh torch")
    common = ["-thread", str(args.threads), "-seed", str(args.seed), "-verbose", "0"]
    res = {}
    t0 = time.time()
    corpus = os.path.join(tmp, "train.txt")
    with open(corpus, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.writelines(ft_clean(t) + "\n" for t in tr.used_texts)
    sg = os.path.join(tmp, "skipgram")
    ft(args, "skipgram", "-input", corpus, "-output", sg, "-dim", str(args.ft_dim), "-epoch", str(args.ft_epoch),
       *common)
    # one print-sentence-vectors call (each loads the model: 2M buckets x dim floats)
    labelled = tr.labels is not None and te.labels is not None
    nq, ng = len(te.anchors), len(gal)
    texts = te.text_list(te.anchors) + te.text_list(gal) + (tr.text_list(tr.lab_anchors) if labelled else [])
    v = ft_vectors(args, sg + ".bin", texts, args.ft_dim)
    q, g = tm.l2_rows(v[:nq]), tm.l2_rows(v[nq:nq + ng])
    res.update(tm.retrieval_summary(tm.ranks(q, g, target)))
    if labelled:
        res["knn_top1"] = tm.knn_top1(v[nq + ng:], tr.labels, q, te.labels, len(tr.label_names), args.k, args.knn_t)
        res["seconds_skipgram"] = time.time() - t0
        t1 = time.time()
        names = ["__label__" + n.replace(" ", "_") for n in tr.label_names]
        sup_in = os.path.join(tmp, "sup.txt")
        with open(sup_in, "w", encoding="utf-8", errors="surrogateescape") as f:
            for i, lab in zip(tr.lab_anchors.tolist(), tr.labels.tolist()):
                f.write(names[lab] + " " + ft_clean(tr.texts[i]) + "\n")
        clf = os.path.join(tmp, "clf")
        ft(args, "supervised", "-input", sup_in, "-output", clf, "-epoch", str(args.ft_sup_epoch), "-lr",
           str(args.ft_sup_lr), "-wordNgrams", "2", *common)
        test_in = os.path.join(tmp, "test.txt")
        with open(test_in, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(ft_clean(t) + "\n" for t in te.text_list(te.anchors))
        pred = ft(args, "predict", clf + ".bin", test_in).splitlines()
        if len(pred) != len(te.anchors):
            fail("fasttext predict gave %d labels for %d texts" % (len(pred), len(te.anchors)))
        index = {n: i for i, n in enumerate(names)}
        p = np.array([index.get(s.strip(), -1) for s in pred])
        res["classifier_top1"] = float((p == te.labels).mean())
        res["seconds_supervised"] = time.time() - t1
    res["seconds"] = time.time() - t0
    return res


def run_chance(tr, te, ng):
    res = tm.chance(ng)
    if tr.labels is not None and te.labels is not None:
        major = np.bincount(tr.labels, minlength=len(tr.label_names)).argmax()
        res["classifier_top1"] = float((te.labels == major).mean())
        res["majority_label"] = tr.label_names[major]
    return res


def fmt(x):
    return "-" if x is None else "%.4f" % x


def table(results):
    rows = ["| method | R@1 | R@10 | MRR@10 | Section kNN | Section classifier | seconds |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    names = {"tfidf": "TF-IDF (scikit-learn)", "fasttext": "fastText (skipgram vectors; supervised classifier)",
             "chance": "chance (Section: majority class)"}
    for key in ("tfidf", "fasttext", "chance"):
        r = results.get(key)
        if r is None:
            continue
        sec = r.get("seconds")
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            names[key], fmt(r["r1"]), fmt(r["r10"]), fmt(r["mrr10"]), fmt(r.get("knn_top1")),
            fmt(r.get("classifier_top1")), "-" if sec is None else "%.1f" % sec))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="debian-descriptions", help="the corpus (debian-descriptions, the one with a "
                    "held-out split)")
    ap.add_argument("--limit", type=int, default=0, help="first N training pairs (0: all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="fastText threads")
    ap.add_argument("--only", default="tfidf,fasttext,chance", help="comma-separated: tfidf, fasttext, chance")
    ap.add_argument("--json", default="", help="also write the results to this file")
    ap.add_argument("--seed", type=int, default=0, help="fastText's -seed")
    ap.add_argument("--k", type=int, default=200, help="kNN neighbours (contrast eval --k)")
    ap.add_argument("--knn-t", type=float, default=0.1, help="kNN temperature (contrast eval --knn-temperature)")
    ap.add_argument("--ft-dim", type=int, default=100)
    ap.add_argument("--ft-epoch", type=int, default=5, help="skipgram epochs")
    ap.add_argument("--ft-sup-epoch", type=int, default=25, help="supervised classifier epochs")
    ap.add_argument("--ft-sup-lr", type=float, default=0.5, help="supervised classifier learning rate")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in ("tfidf", "fasttext", "chance"):
            fail("unknown --only entry '%s' (tfidf, fasttext, chance)" % s)
    if args.threads < 1:
        fail("--threads must be >= 1")
    if args.data != "debian-descriptions":
        fail("--data: only debian-descriptions has a held-out split (got '%s')" % args.data)
    contrast = import_contrast()
    tr = Split(contrast.text_dataset(args.data, train=True), args.limit)
    te = Split(contrast.text_dataset(args.data, train=False))
    if len(te.anchors) == 0:
        fail("%s holds no test pairs" % args.data)
    gal, target = tm.gallery(te.anchors, te.positives)
    results = {"data": args.data, "n_pairs": int(len(te.anchors)), "n_gallery": int(len(gal)),
               "n_train_pairs": int(len(tr.anchors)), "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="text_baselines.") as tmp:
        if "tfidf" in only:
            results["tfidf"] = run_tfidf(tr, te, gal, target, args)
        if "fasttext" in only:
            results["fasttext"] = run_fasttext(tr, te, gal, target, args, tmp)
    if "chance" in only:
        results["chance"] = run_chance(tr, te, len(gal))
    print("%s: %d test queries, %d distinct positives; trained on %d pairs" % (
        args.data, results["n_pairs"], results["n_gallery"], results["n_train_pairs"]))
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
