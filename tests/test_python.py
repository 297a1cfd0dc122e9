#!/usr/bin/python3
"""tests/test_python.py: the Python binding (python/contrast) and the PyTorch loader
(contrast.torch) against the library and the CLI.

Run by `make test` through build/tests/test_python (PYTHONPATH=python,
CONTRAST_LIB=<build>/libcontrast.so, CONTRAST_BIN=./contrast), or by hand:
    PYTHONPATH=python CONTRAST_LIB=build/libcontrast.so /usr/bin/python3 tests/test_python.py
Prints "N passed, N failed" like the C tests. The PyTorch checks need python3-torch
(`sh tools/deps.sh torch`); without it they FAIL, unless CONTRAST_NO_TORCH=1 says
to leave them out on purpose.

It trains two tiny checkpoints (a CNN through contrast.train, a ResNet-18 through
the CLI) on 512 Fashion-MNIST images and embeds 1000 real test images with both the
CLI (contrast embed) and the binding."""
import ctypes
import gzip
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np

import contrast
from contrast import _abi, _lib

passed = failed = 0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, os.environ.get("CONTRAST_BIN", "./contrast"))
N_TEST = 1000


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL %s" % what, file=sys.stderr)


def raises(exc, fn, *a, **kw):
    """The exception fn raised, if it is an exc (else None)."""
    try:
        fn(*a, **kw)
    except exc as e:
        return e
    except Exception as e:  # the wrong kind
        print("  (raised %r)" % e, file=sys.stderr)
    return None


def run_cli(*args):
    r = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("%s %s failed (%d): %s" % (CLI, " ".join(map(str, args)), r.returncode, r.stderr))


def cli_embed(ckpt, out, *flags):
    run_cli("embed", "--checkpoint", ckpt, "--out", out, "--limit", N_TEST, *flags)
    return np.load(out)


def test_images():
    d = "/usr/share/datasets/fashion-mnist"
    with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x[:N_TEST], y[:N_TEST]


# ---- the struct mirrors ---------------------------------------------------------------

def test_abi():
    for cls in _abi.MIRRORS:
        bad = _abi.layout_problems(cls)
        check(not bad, "mirror of %s: %s" % (cls.c_name, bad))

    class Swapped(ctypes.Structure):  # ct_loss_stats with two fields swapped: must be caught
        c_name = "ct_loss_stats"
        _fields_ = [(n, t) for n, t in _abi.LossStats._fields_]
        _fields_[0], _fields_[1] = _fields_[1], _fields_[0]

    class Short(ctypes.Structure):  # ct_pair lacking its last field
        c_name = "ct_pair"
        _fields_ = _abi.Pair._fields_[:2]

    check(any("offsetof(ct_loss_stats, loss)" in p for p in _abi.layout_problems(Swapped)),
          "a swapped field is reported: %s" % _abi.layout_problems(Swapped))
    check(any("sizeof(ct_pair)" in p for p in _abi.layout_problems(Short)), "a missing field is reported")
    check(raises(ImportError, _abi.verify, Short) is not None, "verify refuses a wrong mirror")
    check(_lib.lib().ct_abi_layout(b"ct_no_such_struct", None) == -1, "unknown type: -1")


def test_library_lookup():
    env = dict(os.environ, CONTRAST_LIB="/nonexistent/libcontrast.so")
    r = subprocess.run([sys.executable, "-c", "import contrast; contrast.library_path()"], env=env,
                       capture_output=True, text=True)
    check(r.returncode != 0 and "CONTRAST_LIB=/nonexistent/libcontrast.so" in r.stderr,
          "a bad CONTRAST_LIB is an ImportError naming it: %s" % r.stderr[-300:])
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    env.pop("CONTRAST_LIB", None)  # the checkout's build/libcontrast.so
    r = subprocess.run([sys.executable, "-c", "import contrast; print(contrast.library_path())"], env=env,
                       capture_output=True, text=True, cwd="/")
    check(r.returncode == 0 and r.stdout.strip().endswith("libcontrast.so"),
          "found from the checkout without CONTRAST_LIB: %s %s" % (r.stdout, r.stderr[-300:]))
    with open(os.path.join(ROOT, "include/contrast/core.h")) as f:
        check('#define CT_VERSION "%s"' % contrast.__version__ in f.read(), "__version__ is CT_VERSION")
    with open(os.path.join(ROOT, "python/pyproject.toml")) as f:
        check('\nversion = "%s"\n' % contrast.__version__ in f.read(), "pyproject.toml's version is CT_VERSION")


# ---- the objectives ---------------------------------------------------------------------

def fd_grad(f, x, eps=1e-3):
    """Central differences of the float loss f at x (float32), in float64."""
    g = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def close(a, b, tol):
    return np.max(np.abs(np.asarray(a, np.float64) - b)) <= tol * (1 + np.max(np.abs(b)))


def test_losses():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 5)).astype(np.float32)
    loss, dz, st = contrast.losses.ntxent(z, 0.5)
    check(np.isfinite(loss) and dz.shape == z.shape and st["count"] == 8 and abs(st["loss"] - loss) < 1e-12,
          "ntxent: loss %r, stats %r" % (loss, st))
    check(close(dz, fd_grad(lambda v: contrast.losses.ntxent(v, 0.5)[0], z), 2e-3), "ntxent gradient")
    l2, dz2, _ = contrast.losses.supcon(z, np.arange(4), 0.5, views=2)
    check(abs(l2 - loss) < 1e-5 and np.allclose(dz2, dz, atol=1e-6), "supcon of distinct labels is ntxent")
    lab = np.array([0, 1, 0, 1])
    check(close(contrast.losses.supcon(z, lab, 0.5)[1],
                fd_grad(lambda v: contrast.losses.supcon(v, lab, 0.5)[0], z), 2e-3), "supcon gradient")
    q, p, ng = z[:3], z[3:6], rng.standard_normal((4, 5)).astype(np.float32)
    loss, (dq, dp, dn), _ = contrast.losses.infonce(q, p, ng, 0.2)
    check(close(dq, fd_grad(lambda v: contrast.losses.infonce(v, p, ng, 0.2)[0], q), 2e-3), "infonce dq")
    check(close(dn, fd_grad(lambda v: contrast.losses.infonce(q, p, v, 0.2)[0], ng), 2e-3), "infonce dneg")
    loss, (di, dt, ds), _ = contrast.losses.clip(q, p, 1.0)
    check(close(di, fd_grad(lambda v: contrast.losses.clip(v, p, 1.0)[0], q), 2e-3), "clip dimg")
    check(abs(ds - (contrast.losses.clip(q, p, 1.001)[0] - contrast.losses.clip(q, p, 0.999)[0]) / 0.002) < 2e-2,
          "clip dlogit_scale %r" % ds)
    lab6 = np.array([0, 1, 0, 1, 2, 2])
    x6 = z[:6]
    loss, dx, st = contrast.losses.margin(x6, lab6, 1.0)
    check(st["count"] == 15 and close(dx, fd_grad(lambda v: contrast.losses.margin(v, lab6, 1.0)[0], x6), 2e-3),
          "margin over all 15 pairs, gradient")
    loss, dx, st = contrast.losses.triplet(x6, lab6, 0.5, mining="all")
    check(np.isfinite(loss) and dx.shape == x6.shape and 0 <= st["active"] <= 1, "triplet: %r %r" % (loss, st))
    e = raises(contrast.ContrastError, contrast.losses.ntxent, z, 0.0)
    check(e is not None and e.status_name == "CT_ERR_ARG" and e.message and e.message in str(e),
          "a zero temperature raises ContrastError(CT_ERR_ARG) with the library's message: %r" % e)
    zn = z.copy()
    zn[0, 0] = np.nan
    e = raises(contrast.ContrastError, contrast.losses.ntxent, zn, 0.5)
    check(e is not None and e.status_name == "CT_ERR_NUMERIC", "NaN input: CT_ERR_NUMERIC (%r)" % e)
    check(raises(ValueError, contrast.losses.ntxent, z[:7], 0.5) is not None, "ntxent: odd rows refused")


# ---- training and embedding ----------------------------------------------------------

def test_train_config():
    c = contrast.training.make_config({"lr": 0.5, "model": {"width": 8, "encoder": "resnet18"},
                                       "optim.type": "adamw", "method": "moco", "data": "fashion-mnist"})
    check(abs(c.lr - 0.5) < 1e-7 and c.model.width == 8 and c.model.encoder == 1 and c.method == 1,
          "config dict fills the struct")
    check(abs(c.optim.weight_decay - 1e-6) < 1e-12 and abs(c.optim.beta2 - 0.999) < 1e-7,
          "optim.type resets the optimizer's defaults, keeping weight_decay (as --optimizer)")
    check(abs(c.temperature - 0.1) < 1e-7 and c.epochs == 16, "the rest stays at ct_train_config_default")
    for bad in ({"learning_rate": 1}, {"model.colour": 3}, {"on_event": 1}, {"method": "byol"},
                {"data": "x" * 600}, {"epochs": 1.5}, {"epochs": 2 ** 31}, {"seed": -1}):
        check(raises(ValueError, contrast.training.make_config, bad) is not None, "refused: %r" % bad)
    e = raises(contrast.ContrastError, contrast.training.make_config, {"model.encoder": "vgg"})
    check(e is not None and "vgg" in e.message, "an unknown encoder: the library's message")


def train_cnn(tmp):
    events = []
    res = contrast.train({"limit": 512, "batch": 64, "epochs": 1, "model": {"width": 8}, "eval_every": 0,
                          "final_probe": 0, "threads": 2, "out": os.path.join(tmp, "cnn")},
                         progress=events.append)
    kinds = [e["kind"] for e in events]
    check(kinds.count("step") == 8 and kinds[-1] == "epoch", "events: 8 steps then an epoch (%s)" % kinds)
    last = events[-1]
    check(last["epoch"] == 1 and last["step"] == 8 and np.isfinite(last["loss"]) and last["path"] is None,
          "epoch event fields: %r" % last)
    check(res["epochs_done"] == 1 and res["steps"] == 8 and res["out"] == os.path.join(tmp, "cnn") and
          0 < res["knn_top1"] <= 1 and res["probe_top1"] == -1, "result dict: %r" % res)
    m = contrast.read_metrics(res["out"])
    check(len(m) == 2 and m[0].get("epoch") == 1 and abs(m[0]["loss"] - last["loss"]) < 1e-3 and
          m[1].get("final") is True and m[1]["knn_top1"] == res["knn_top1"],
          "read_metrics: the epoch's line and the final one: %r" % m)
    # a refused run: ContrastError with the library's message naming the problem
    e = raises(contrast.ContrastError, contrast.train, {"limit": 32, "batch": 64, "epochs": 1,
                                                       "out": os.path.join(tmp, "small")})
    check(e is not None and e.status_name == "CT_ERR_ARG" and "fewer than one batch" in e.message,
          "a refused run raises ContrastError: %r" % e)

    def boom(ev):
        raise KeyError("from progress")
    e = raises(KeyError, contrast.train, {"limit": 128, "batch": 64, "epochs": 1, "model": {"width": 4},
                                          "eval_every": 0, "final_probe": 0, "out": os.path.join(tmp, "boom")},
               progress=boom)
    check(e is not None, "an exception in progress reaches the caller")
    return os.path.join(res["out"], "checkpoint.safetensors")


def test_embed(tmp, ckpt, label):
    x, _ = test_images()
    m = contrast.load(ckpt)
    cfg = m.config
    check(cfg["model"]["width"] == 8 and np.float32(cfg["data"]["mean"][0]) == np.float32(0.286) and
          cfg["train"]["data"] == "fashion-mnist", "%s: config from the metadata: %r" % (label, cfg["model"]))
    meta_old = {k: v for k, v in m.metadata.items() if not k.startswith("data.")}
    check(np.array_equal(np.float32(contrast.images.normalisation(meta_old)), np.float32(m.normalisation())),
          "%s: the fallback constants of fashion-mnist equal what the library records" % label)
    ref = {w: cli_embed(ckpt, os.path.join(tmp, "%s-%s.npy" % (label, w)), *f)
           for w, f in (("h", ()), ("h_raw", ("--no-whiten",)), ("z", ("--head",)))}
    check(m.feature_dim == ref["h"].shape[1] and m.embed_dim == ref["z"].shape[1], "%s: dims" % label)
    for which, r in ref.items():
        h = m.embed(x, which=which)
        check(h.dtype == np.float32 and np.array_equal(h, r),
              "%s %s: embed == contrast embed bit for bit (max diff %g)" % (label, which, np.abs(h - r).max()))
    h = ref["h"]
    check(np.array_equal(m.embed(x[:, None]), h), "%s: NCHW uint8" % label)
    check(np.array_equal(m.embed(np.ascontiguousarray(x[:, :, :, None])), h), "%s: NHWC uint8" % label)
    xf = x.astype(np.float32) * (np.float32(1) / np.float32(255))
    check(np.array_equal(m.embed(xf[:, None], layout="NCHW"), h), "%s: float in [0, 1]" % label)
    check(np.array_equal(m.embed(xf.astype(np.float64)), h), "%s: float64 in [0, 1]" % label)
    check(raises(ValueError, m.embed, x[:, :27]) is not None, "%s: wrong image size refused" % label)
    check(raises(ValueError, m.embed, x.astype(np.int16)) is not None, "%s: int16 refused" % label)
    check(raises(ValueError, m.embed, x, which="q") is not None, "%s: unknown feature kind" % label)
    m.close()
    check(raises(ValueError, m.embed, x[:2]) is not None, "%s: a closed model refuses" % label)
    return ref


def test_ambiguous_layout():
    check(raises(ValueError, contrast.images.to_nchw, np.zeros((2, 3, 3, 3), np.uint8), 3, 3, 3) is not None,
          "3x3x3 images fit both layouts: refused without layout=")
    check(contrast.images.to_nchw(np.zeros((2, 3, 3, 3), np.uint8), 3, 3, 3, "NHWC").shape == (2, 3, 3, 3),
          "layout= decides")


def test_stale_whitening(tmp):
    out = os.path.join(tmp, "stale")
    contrast.train({"limit": 128, "batch": 64, "epochs": 2, "stop_after": 1, "model": {"width": 4},
                    "eval_every": 0, "final_probe": 0, "out": out})
    ckpt = os.path.join(out, "checkpoint.safetensors")
    x, _ = test_images()
    with contrast.load(ckpt) as m:
        e = raises(contrast.ContrastError, m.embed, x[:4])
        check(e is not None and e.status_name == "CT_ERR_STATE" and "older parameters" in e.message,
              "a whitening older than the parameters: CT_ERR_STATE (%r)" % e)
        check(m.embed(x[:4], which="h_raw").shape == (4, 16 * 4), "h_raw still works")
    e = raises(contrast.ContrastError, contrast.load, os.path.join(tmp, "none.safetensors"))
    check(e is not None and e.status_name == "CT_ERR_IO" and "none.safetensors" in e.message,
          "a missing checkpoint: CT_ERR_IO naming it (%r)" % e)
    return ckpt


# ---- text and image-caption data, the tokenizer, text embeddings ------------------------

WORDS = ["red", "blue", "green", "cat", "dog", "bird", "runs", "jumps", "sleeps", "fast", "slow", "big", "small",
         "42", "7"]


def write_pairs(path, n=200, seed=0):
    """A tiny pairs file: anchor TAB anchor-plus-a-word TAB label; one anchor holds a
    byte that is not UTF-8 (0xff), which the binding must give back unchanged."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for i in range(n):
            a = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), 4))
            b = a + " " + WORDS[rng.integers(0, len(WORDS))]
            a = a.encode() + (b"\xff" if i == 3 else b"")
            f.write(a + b"\t" + b.encode() + b"\t" + (b"odd" if i % 2 else b"even") + b"\n")


def ref_encode(merges_text, text, context):
    """Our BPE encoding written again in plain Python from docs/text.md, for texts of
    words and single spaces: chunks are letter, digit or other runs each with the
    space before it; the merges apply by rank, every occurrence left to right; BOS,
    the tokens cut to fit, EOS, PAD."""
    import re
    lines = merges_text.strip("\n").split("\n")
    assert lines[0].startswith("contrast-bpe 1 merges ")
    tok = {i: bytes([i]) for i in range(256)}
    by_bytes = {v: k for k, v in tok.items()}
    merges, nxt = [], 259
    for ln in lines[1:]:
        a, b = map(int, ln.split())
        t = tok[a] + tok[b]
        if t not in by_bytes:
            by_bytes[t], tok[nxt] = nxt, t
            nxt += 1
        merges.append((a, b, by_bytes[t]))
    ids = []
    for chunk in re.findall(rb" ?[A-Za-z\x80-\xff]+| ?[0-9]+| ?[!-/:-@\[-`{-~]+", _bytes(text)):
        seq = list(chunk)
        for a, b, r in merges:
            i, out = 0, []
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    out.append(r)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seq = out
        ids += seq
    row = [257] + ids[:context - 2] + [258]
    return row + [256] * (context - len(row))


def _bytes(t):
    return t.encode("utf-8", "surrogateescape") if isinstance(t, str) else t


def train_text(tmp):
    pairs = os.path.join(tmp, "pairs.tsv")
    write_pairs(pairs)
    out = os.path.join(tmp, "text")
    run_cli("train", "--method", "pairs", "--data", "pairs:" + pairs, "--width", 32, "--depth", 2, "--heads", 2,
            "--context", 16, "--vocab", 300, "--batch", 32, "--epochs", 1, "--threads", 2, "--quiet", "--out", out)
    return pairs, os.path.join(out, "checkpoint.safetensors")


def test_text_dataset(tmp, pairs):
    d = contrast.text_dataset("pairs:" + pairs)
    check(d.name == "pairs" and len(d.anchors) == 200 and d.anchors.dtype == np.int64 and
          d.positives.dtype == np.int64 and d.labels.dtype == np.int32 and d.label_names == ["even", "odd"],
          "text_dataset: 200 pairs, labels even/odd: %r" % d)
    with open(pairs, "rb") as f:
        rows = [ln.rstrip(b"\n").split(b"\t") for ln in f]
    ok = all(_bytes(d.texts[d.anchors[i]]) == r[0] and _bytes(d.texts[d.positives[i]]) == r[1] and
             d.label_names[d.labels[i]] == r[2].decode() for i, r in enumerate(rows))
    check(ok, "text_dataset: every pair's texts and label as in the file")
    check(len(set(d.texts)) == len(d.texts), "text_dataset: texts are distinct")
    check(d.texts[d.anchors[3]].endswith("\udcff"), "a byte that is not UTF-8 arrives surrogate-escaped: %r" %
          d.texts[d.anchors[3]][-3:])
    lines = os.path.join(tmp, "lines.txt")
    with open(lines, "w") as f:
        f.write("one\n\ntwo\none\n")
    t = contrast.text_dataset("text:" + lines, train=False)
    check(t.texts == ["one", "two"] and len(t.anchors) == 0 and t.labels is None and t.label_names is None,
          "text:FILE: distinct non-empty lines, no pairs: %r" % t.texts)
    bad = os.path.join(tmp, "bad.tsv")
    with open(bad, "w") as f:
        f.write("a\tb\nonly one column\n")
    e = raises(contrast.ContrastError, contrast.text_dataset, "pairs:" + bad)
    check(e is not None and bad + ":2" in e.message, "a bad pairs file: ContrastError naming FILE:2 (%r)" % e)
    return d


def test_tokenizer(tmp, d, ckpt):
    tok = contrast.Tokenizer.train(d.texts, vocab=300)
    check(tok.vocab_size == 300, "Tokenizer.train: %d ids" % tok.vocab_size)
    # the CLI trained its tokenizer on the same texts: the same merges, byte for byte
    saved = os.path.join(tmp, "tok.txt")
    tok.save(saved)
    with open(saved) as f:
        merges = f.read()
    meta = contrast.safetensors.read_metadata(ckpt)
    check(merges == meta["tokenizer"], "Tokenizer.train == the tokenizer contrast train stored")
    ck = contrast.Tokenizer.from_checkpoint(ckpt)
    back = contrast.Tokenizer.load(saved)
    ids, valid = tok.encode(d.texts, context=40)
    check(ids.dtype == np.int32 and valid.dtype == np.uint8 and ids.shape == (len(d.texts), 40),
          "encode: (n, T) int32 and uint8")
    check(all(tok.decode(r) == t for r, t in zip(ids, d.texts)), "decode(encode(t)) == t for every text")
    check(np.array_equal(ck.encode(d.texts, 40)[0], ids) and np.array_equal(back.encode(d.texts, 40)[0], ids),
          "from_checkpoint and load encode the same")
    check(np.array_equal(valid, (ids != 256).astype(np.uint8)), "valid marks the non-PAD ids")
    ref = np.array([ref_encode(merges, t, 40) for t in d.texts], np.int32)
    check(np.array_equal(ids, ref), "encode == a plain-Python BPE of the merges (%d rows differ)" %
          int((ids != ref).any(1).sum()))
    short, _ = tok.encode(d.texts[:5], context=4)
    check(np.array_equal(short, np.array([ref_encode(merges, t, 4) for t in d.texts[:5]], np.int32)) and
          (short[:, -1] == 258).all(), "a short context cuts the tokens, keeps EOS")
    check(tok.decode_bytes(ids[d.anchors[3]]).endswith(b"\xff"), "decode_bytes gives the raw byte back")
    check(raises(ValueError, contrast.Tokenizer.train, d.texts, vocab=100) is not None, "vocab <= 259 refused")
    check(raises(TypeError, tok.encode, "one string") is not None, "a bare string refused (a list is needed)")
    e = raises(contrast.ContrastError, tok.decode, [5, 300])
    check(e is not None and e.status_name == "CT_ERR_ARG", "decode of an id outside the vocabulary: %r" % e)


def test_embed_texts(tmp, ckpt, image_ckpt):
    texts = ["red cat runs", "blue dog", "42 small birds jump fast and far away over the green hills again",
             "red cat runs"]
    args = []
    for t in texts:
        args += ["--text", t]
    r = os.path.join(tmp, "texts.npy")
    run_cli("embed", "--checkpoint", ckpt, "--out", r, *args)
    ref = np.load(r)
    m = contrast.load(ckpt)
    check(m.takes_tokens and m.encoder == "transformer", "a text checkpoint: takes_tokens")
    h = m.embed_texts(texts)
    err = float(np.abs(h - ref).max())
    check(h.dtype == np.float32 and h.shape == ref.shape and err <= 1e-5,
          "embed_texts == contrast embed --text (max |diff| %g)" % err)
    check(np.array_equal(h, ref), "... bit for bit")
    # another batch changes the GEMM's row blocking, so only rounding may differ
    check(np.abs(m.embed_texts(texts, batch=2) - h).max() <= 1e-5, "batch 2 gives the same to 1e-5")
    run_cli("embed", "--checkpoint", ckpt, "--out", r, "--head", *args)
    check(np.array_equal(m.embed_texts(texts, which="z"), np.load(r)), "which='z' == contrast embed --head")
    check(m.embed_texts([]).shape == (0, m.feature_dim), "no texts: (0, D)")
    check(np.isfinite(m.embed_texts([""])).all(), "an empty text embeds (BOS EOS)")
    check(raises(ValueError, m.embed, np.zeros((1, 1, 16, 1), np.uint8)) is not None, "embed on a text model: "
          "ValueError")
    check(raises(ValueError, m.embed_texts, texts, which="h_raw") is not None, "h_raw: not for text")
    m.close()
    check(raises(ValueError, m.embed_texts, texts) is not None, "a closed model refuses")
    with contrast.load(image_ckpt) as im:
        check(raises(ValueError, im.embed_texts, texts) is not None, "embed_texts on an image model: ValueError")
    return ref, texts


def write_png(path, rgba):
    """An 8-bit RGBA PNG of the (h, w, 4) uint8 array, with the standard library."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    h, w = rgba.shape[:2]
    raw = b"".join(b"\0" + rgba[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_caption_dataset(tmp):
    d = os.path.join(tmp, "caps")
    os.makedirs(d)
    red = np.zeros((8, 8, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 255
    clear = np.zeros((8, 8, 4), np.uint8)  # fully transparent: white on the library's side
    half = np.zeros((8, 8, 4), np.uint8)
    half[:, :, 2], half[:, :, 3] = 200, 255
    for name, img in (("red.png", red), ("clear.png", clear), ("blue.png", half)):
        write_png(os.path.join(d, name), img)
    with open(os.path.join(d, "captions.tsv"), "w") as f:
        f.write("# file, caption, class\nred.png\ta red square\tcolour\nclear.png\tnothing at all\tempty\n"
                "red.png\tall red\tcolour\nblue.png\ta blue square\tcolour\n")
    c = contrast.caption_dataset("captions:" + d, train=True, size=4)
    check(c.images.shape == (3, 3, 4, 4) and c.images.dtype == np.uint8, "caption_dataset images (3, 3, 4, 4): %s"
          % (c.images.shape,))
    byfile = {f: i for i, f in enumerate(c.files)}
    check(sorted(c.files) == ["blue.png", "clear.png", "red.png"], "files: %r" % c.files)
    i_red, i_clear, i_blue = byfile["red.png"], byfile["clear.png"], byfile["blue.png"]
    check(c.captions[i_red] == ["a red square", "all red"] and c.captions[i_clear] == ["nothing at all"],
          "every caption of an image, in file order: %r" % c.captions)
    check((c.images[i_red, 0] == 255).all() and (c.images[i_red, 1:] == 0).all() and
          (c.images[i_clear] == 255).all() and (c.images[i_blue, 2] == 200).all(),
          "pixels: red, transparent -> white, blue 200")
    check(c.class_names == ["colour", "empty"] and c.labels.dtype == np.int32 and
          [c.class_names[c.labels[i]] for i in (i_red, i_clear, i_blue)] == ["colour", "empty", "colour"],
          "classes: %r %r" % (c.class_names, c.labels))
    want = (c.images.astype(np.float64) / 255).mean(axis=(0, 2, 3))
    check(len(c.mean) == 3 and np.allclose(c.mean, want, atol=1e-5) and len(c.std) == 3 and all(s > 0 for s in c.std),
          "mean per channel measured on the split: %r vs %r" % (c.mean, want))
    with open(os.path.join(d, "captions.tsv"), "a") as f:
        f.write("missing.png\tgone\tcolour\n")
    e = raises(contrast.ContrastError, contrast.caption_dataset, "captions:" + d)
    check(e is not None and "captions.tsv:6" in e.message, "a missing image: ContrastError naming the line (%r)" % e)


# ---- the PyTorch loader -----------------------------------------------------------------

def test_torch(ckpts, refs, stale):
    if os.environ.get("CONTRAST_NO_TORCH") == "1":
        print("test_python: CONTRAST_NO_TORCH=1: the PyTorch loader is not tested", file=sys.stderr)
        return
    try:
        import torch
        import contrast.torch as ctorch
    except ImportError as e:
        check(False, "PyTorch is missing (%s): install it with `sh tools/deps.sh torch`, or set "
                     "CONTRAST_NO_TORCH=1 to leave the loader's test out" % e)
        return
    x, _ = test_images()
    for label, ckpt in ckpts.items():
        nets = {w: ctorch.load(ckpt, output=w) for w in ("h", "h_raw", "z")}
        net = nets["h"]
        check(not net.training and isinstance(net, torch.nn.Module), "%s: a Module in eval mode" % label)
        for which, net_w in nets.items():
            with torch.no_grad():
                h = net_w(net_w.preprocess(x)).numpy()
            r = refs[label][which]
            err = np.abs(h - r).max() / np.abs(r).max()
            check(h.shape == r.shape and err <= 1e-4,
                  "%s %s: torch features vs contrast embed, max |diff| / max |ref| = %.3g" % (label, which, err))
        with torch.no_grad():
            same = net.features(net.preprocess(x[:, :, :, None]), "z").numpy()
        check(np.abs(same - refs[label]["z"]).max() <= 1e-4 * np.abs(refs[label]["z"]).max(),
              "%s: features(which=) and NHWC preprocess" % label)
    meta = dict(contrast.safetensors.read_metadata(ckpts["cnn"]), **{"model.encoder": "vit"})
    e = raises(ValueError, ctorch.ContrastModel, meta)
    check(e is not None and "'vit'" in str(e) and "cnn" in str(e), "an unknown encoder is named: %r" % e)
    e = raises(ValueError, ctorch.load, stale)
    check(e is not None and "whitening" in str(e), "a stale whitening is refused for output h: %r" % e)
    check(ctorch.load(stale, output="h_raw") is not None, "... and loads for h_raw")


def main():
    tests = []
    with tempfile.TemporaryDirectory(prefix="contrast-py.") as tmp:
        def step(fn, *a):
            try:
                return fn(*a)
            except Exception:
                check(False, "%s raised:\n%s" % (fn.__name__, traceback.format_exc()))
                return None
        step(test_abi)
        step(test_library_lookup)
        step(test_losses)
        step(test_train_config)
        step(test_ambiguous_layout)
        cnn = step(train_cnn, tmp)
        rn = os.path.join(tmp, "rn")
        step(run_cli, "train", "--encoder", "resnet18", "--limit", 512, "--batch", 64, "--epochs", 1, "--width", 8,
             "--eval-every", 0, "--no-probe", "--quiet", "--threads", 2, "--out", rn)
        rn = os.path.join(rn, "checkpoint.safetensors")
        refs = {}
        if cnn:
            refs["cnn"] = step(test_embed, tmp, cnn, "cnn")
        refs["resnet18"] = step(test_embed, tmp, rn, "resnet18")
        stale = step(test_stale_whitening, tmp)
        pairs, text_ckpt = step(train_text, tmp) or (None, None)
        d = step(test_text_dataset, tmp, pairs) if pairs else None
        if d:
            step(test_tokenizer, tmp, d, text_ckpt)
        text_ref = step(test_embed_texts, tmp, text_ckpt, rn) if text_ckpt else None
        step(test_caption_dataset, tmp)
        if all(refs.values()) and stale:
            step(test_torch, {"cnn": cnn, "resnet18": rn}, refs, stale)
        else:
            check(False, "the torch loader was not tested: an earlier step failed")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
