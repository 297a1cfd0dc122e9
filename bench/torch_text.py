#!/usr/bin/python3
"""torch_text.py: the text model of `contrast train --method pairs --data
debian-descriptions` in PyTorch, trained for a given wall time on the same tokenized
data, then scored with the metrics of `contrast eval` (bench/text_metrics.py).

    /usr/bin/python3 bench/torch_text.py --checkpoint RUN/checkpoint.safetensors --seconds S
        [--threads N] [--warmup-epochs 1] [--no-knn] [--json FILE]
    /usr/bin/python3 bench/torch_text.py --checkpoint F --check-forward

Everything is read from the contrast checkpoint's metadata: the tokenizer (so both
sides see identical ids: contrast.Tokenizer.from_checkpoint), the model (width,
depth, heads, context, vocabulary, dropout, pooling; no head, as contrast's text
default) and the training options (batch, lr, weight decay, temperature, symmetric,
limit, seed). Without --checkpoint, the same defaults as `contrast train --method
pairs` and a tokenizer trained by contrast.Tokenizer.train on the training split's
distinct texts (contrast trains it on every text, repeats included, so its ids can
differ slightly): --vocab, --width, ... set them.

The same model, written as tests/reference/make_transformer_model_reference.py does
(whose whole forward and backward the C tests compare with contrast's), with the
checkpoint's parameter names (--check-forward loads a checkpoint into it and compares
its embeddings with contrast's): token +
learned position embeddings, dropout, pre-LN blocks (attention over the non-pad
keys with dropout on its probabilities and on the projection, MLP 4C with exact
GELU and dropout on its output), final LayerNorm, pooling over the valid tokens;
initialisation trunc normal 0.02 (weights, embeddings, positions), zero biases. The
same objective: cos(a_i, p_j) / tau, cross-entropy with the diagonal as targets
(both directions with symmetric). The same optimizer: AdamW (0.9, 0.999, 1e-8),
weight decay on the linear and token-embedding weights only, lr warm-up for
--warmup-epochs epochs then cosine decay to 0. The same batches: each epoch's pairs
permuted, then packed so that no batch holds a text twice (an item that clashes
waits for a later batch), short batches dropped.

Wall time: before training, a throwaway copy of the model times a few steps; the
schedule is then set for the number of steps that fit in --seconds, and training
stops before a step that would end past --seconds (judged by the mean step so far;
counted over training steps and batch planning only: not tokenization, the timing
steps or the evaluation).
Prints mrr10, r1, r10 (and knn_top1, the Section kNN, k 200, T 0.1) as `contrast
eval` does, and the steps, epochs and seconds trained.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import text_metrics as tm  # noqa: E402


def import_contrast():
    try:
        import contrast  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
    import contrast
    for need in ("text_dataset", "Tokenizer"):
        if not hasattr(contrast, need):
            sys.exit("torch_text: this contrast package has no %s (python/contrast too old)" % need)
    return contrast


# ---- the model --------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim, heads, p):
        super().__init__()
        self.heads, self.p = heads, p
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, valid):
        b, t, c = x.shape
        d = c // self.heads
        q, k, v = (u.reshape(b, t, self.heads, d).transpose(1, 2) for u in self.qkv(x).split(c, dim=2))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
        a = F.dropout(torch.softmax(s, dim=-1), self.p, self.training)
        return self.proj((a @ v).transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):  # parameter names are the checkpoint's (encoder.blocks.L.*)
    def __init__(self, dim, heads, p):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, p)
        self.ln2, self.mlp = nn.LayerNorm(dim), Mlp(dim)
        self.drop = nn.Dropout(p)

    def forward(self, x, valid):
        x = x + self.drop(self.attn(self.ln1(x), valid))
        return x + self.drop(self.mlp(self.ln2(x)))


class TextEncoder(nn.Module):
    def __init__(self, vocab, context, dim, depth, heads, p, pool):
        super().__init__()
        self.pool = pool
        self.tok_embed = nn.Embedding(vocab, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, context, dim))
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(Block(dim, heads, p) for _ in range(depth))
        self.ln_f = nn.LayerNorm(dim)
        for name, w in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(w)
            elif ".ln" in name or name.startswith("ln_f"):
                nn.init.ones_(w)
            else:
                nn.init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04)

    def forward(self, ids, valid):
        x = self.drop(self.tok_embed(ids) + self.pos_embed[:, :ids.shape[1]])
        for blk in self.blocks:
            x = blk(x, valid)
        x = self.ln_f(x)
        if self.pool == "cls":
            return x[:, 0]
        if self.pool == "eot":  # the last valid token
            return x[torch.arange(len(x)), valid.sum(1) - 1]
        w = valid.to(x.dtype)[:, :, None]
        return (x * w).sum(1) / w.sum(1).clamp(min=1)


def param_groups(model, wd):
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def mnrl(a, p, tau, symmetric):
    s = F.normalize(a, dim=1) @ F.normalize(p, dim=1).t() / tau
    y = torch.arange(len(a))
    loss = F.cross_entropy(s, y)
    return (loss + F.cross_entropy(s.t(), y)) / 2 if symmetric else loss


def lr_at(base, step, warmup, total):
    """ct_lr_schedule with final fraction 0: linear warm-up, then cosine to 0."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = total - 1 - max(warmup, 0)
    if span <= 0:
        return base
    pr = min(1.0, (step - max(warmup, 0)) / span)
    return base * 0.5 * (1 + math.cos(math.pi * pr))


# ---- batches ----------------------------------------------------------------------------
def epoch_batches(anchors, positives, B, seed, epoch):
    """ct_text_epoch_plan's packing: items permuted (from seed and epoch), a batch takes the
    next items none of whose texts it holds yet, clashing items wait; short batches dropped."""
    order = np.random.default_rng([seed, epoch]).permutation(len(anchors))
    waiting, out, pos = [], [], 0
    while True:
        batch, seen, keep = [], set(), []
        for it in waiting:
            if len(batch) < B and anchors[it] not in seen and positives[it] not in seen:
                batch.append(it)
                seen.update((anchors[it], positives[it]))
            else:
                keep.append(it)
        while len(batch) < B and pos < len(order):
            it = order[pos]
            pos += 1
            if anchors[it] in seen or positives[it] in seen:
                keep.append(it)
            else:
                batch.append(it)
                seen.update((anchors[it], positives[it]))
        waiting = keep
        if len(batch) < B:
            return out
        out.append(np.asarray(batch))


# ---- training ---------------------------------------------------------------------------
def config_from(args, contrast):
    cfg = dict(width=256, depth=4, heads=4, context=32, vocab=args.vocab, dropout=0.1, pool="mean", batch=256,
               lr=5e-4, weight_decay=0.01, temperature=0.05, symmetric=0, limit=0, seed=0)
    if args.checkpoint:
        meta = contrast.safetensors.read_metadata(args.checkpoint)
        if meta.get("train.method") != "pairs" or meta.get("model.encoder") != "transformer":
            sys.exit("torch_text: %s is not a --method pairs transformer checkpoint" % args.checkpoint)
        if meta.get("train.optimizer") != "adamw" or int(meta.get("model.head_hidden", "0")) != 0:
            sys.exit("torch_text: %s uses another optimizer or a head; this script mirrors AdamW without a head"
                     % args.checkpoint)
        if meta.get("train.data") != "debian-descriptions":
            sys.exit("torch_text: %s was trained on %s, not debian-descriptions" % (args.checkpoint,
                                                                                     meta.get("train.data")))
        for k in ("width", "depth", "heads", "context", "vocab"):
            cfg[k] = int(meta["model." + k])
        cfg["dropout"] = float(meta["model.dropout"])
        cfg["pool"] = meta["model.pool"] if meta["model.pool"] != "default" else "mean"
        for k in ("batch", "limit", "seed", "symmetric"):
            cfg[k] = int(meta["train." + k])
        for k in ("lr", "weight_decay", "temperature"):
            cfg[k] = float(meta["train." + k])
    for k in ("width", "depth", "heads", "context", "batch", "lr", "limit", "seed"):
        v = getattr(args, k)
        if v is not None:
            cfg[k] = v
    return cfg


def train(args, cfg, tr, ids, valid):
    torch.manual_seed(cfg["seed"])
    model = TextEncoder(cfg["vocab"], cfg["context"], cfg["width"], cfg["depth"], cfg["heads"], cfg["dropout"],
                        cfg["pool"])
    B, tau, sym = cfg["batch"], cfg["temperature"], bool(cfg["symmetric"])
    A, P = tr.anchors, tr.positives
    ids_t, valid_t = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(valid.astype(bool))

    def step(m, opt, batch, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        rows = torch.from_numpy(np.concatenate([A[batch], P[batch]]))
        z = m(ids_t[rows], valid_t[rows])
        loss = mnrl(z[:len(batch)], z[len(batch):], tau, sym)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    plan = epoch_batches(A, P, B, cfg["seed"], 0)
    if not plan:
        sys.exit("torch_text: fewer than one batch of %d pairs" % B)
    spe = len(plan)
    # timing on a throwaway copy: 2 warm-up steps, then the median of args.time_steps
    m2 = copy.deepcopy(model).train()
    o2 = torch.optim.AdamW(param_groups(m2, cfg["weight_decay"]), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    times = []
    for i in range(2 + args.time_steps):
        t0 = time.perf_counter()
        step(m2, o2, plan[i % spe], cfg["lr"] * 0.01)
        times.append(time.perf_counter() - t0)
    del m2, o2
    step_s = float(np.median(times[2:]))
    total = args.steps if args.steps > 0 else max(1, int(args.seconds / step_s))
    warmup = int(args.warmup_epochs * spe)
    opt = torch.optim.AdamW(param_groups(model, cfg["weight_decay"]), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    model.train()
    t_start, n, epoch, last, stopped = time.perf_counter(), 0, 0, float("nan"), "steps"
    while n < total:
        if epoch > 0:
            plan = epoch_batches(A, P, B, cfg["seed"], epoch)
        for batch in plan:
            if n >= total:
                break
            el = time.perf_counter() - t_start
            # no step that would end past the budget (mean step so far, the timed one before)
            if args.seconds > 0 and el + (el / n if n else step_s) > args.seconds:
                stopped = "time"
                break
            last = step(model, opt, batch, lr_at(cfg["lr"], n, warmup, total))
            n += 1
            if not math.isfinite(last):
                sys.exit("torch_text: loss became %g at step %d" % (last, n))
        if stopped == "time":
            break
        epoch += 1
    secs = time.perf_counter() - t_start
    info = {"steps": n, "planned_steps": total, "steps_per_epoch": spe, "epochs": n / spe, "seconds": secs,
            "timed_step_s": step_s, "stopped_by": stopped, "final_loss": last}
    return model.eval(), info


@torch.no_grad()
def embed(model, ids, valid, rows, batch=512):
    out = []
    for s in range(0, len(rows), batch):
        r = rows[s:s + batch]
        out.append(model(torch.from_numpy(ids[r].astype(np.int64)), torch.from_numpy(valid[r].astype(bool))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.ln_f.weight.shape[0]), np.float32)


def check_forward(args, cfg, contrast, tok, tr, n=64):
    """This module holding the checkpoint's weights must embed texts as contrast does
    (contrast.load(...).embed_texts, eval mode): 0 when the worst difference is within
    1e-5 of the largest feature (float32 sums in another order: ~1e-6 here; tanh GELU
    instead of erf: 2e-4), else 1."""
    if not args.checkpoint:
        return "torch_text: --check-forward needs --checkpoint"
    model = TextEncoder(cfg["vocab"], cfg["context"], cfg["width"], cfg["depth"], cfg["heads"], cfg["dropout"],
                        cfg["pool"])
    names = ["encoder." + k for k in model.state_dict()]
    w = contrast.safetensors.read_tensors(args.checkpoint, names)
    model.load_state_dict({k[len("encoder."):]: torch.from_numpy(v.reshape(model.state_dict()[k[8:]].shape))
                           for k, v in w.items()})
    texts = [tr.texts[i] for i in tr.anchors[:n // 2]] + [tr.texts[i] for i in tr.positives[:n // 2]]
    ids, valid = tok.encode(texts, context=cfg["context"])
    ours = embed(model.eval(), ids, valid, np.arange(len(texts)))
    ref = contrast.load(args.checkpoint).embed_texts(texts)
    worst, scale = float(np.abs(ours - ref).max()), float(np.abs(ref).max())
    print("check-forward: %d texts, worst |torch - contrast| %.3g, largest |feature| %.3g" % (len(texts), worst, scale))
    return 0 if worst <= 1e-5 * scale else 1


class Split:
    def __init__(self, d, limit=0):
        n = len(d.anchors) if limit <= 0 else min(limit, len(d.anchors))
        self.texts = d.texts
        u = tm.first_copies(d.texts)  # texts compared by bytes, as the C side's uniq
        self.anchors = u[np.asarray(d.anchors[:n], dtype=np.int64)]
        self.positives = u[np.asarray(d.positives[:n], dtype=np.int64)]
        self.lab_anchors = u[np.asarray(d.anchors, dtype=np.int64)]  # kNN bank: every pair, as contrast eval
        self.labels = None if d.labels is None else np.asarray(d.labels, dtype=np.int64)
        self.nlabels = 0 if d.label_names is None else len(d.label_names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="", help="a contrast pairs checkpoint: tokenizer, model and options")
    ap.add_argument("--seconds", type=float, default=0, help="training wall time")
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead (no time limit with 0 seconds)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads")
    ap.add_argument("--warmup-epochs", type=float, default=1.0, help="as contrast train --warmup-epochs (default 1)")
    ap.add_argument("--time-steps", type=int, default=5, help="steps timed before training (on a copy)")
    ap.add_argument("--vocab", type=int, default=8192, help="without --checkpoint: the tokenizer's vocabulary")
    for k, t in (("width", int), ("depth", int), ("heads", int), ("context", int), ("batch", int), ("lr", float),
                 ("limit", int), ("seed", int)):
        ap.add_argument("--" + k, type=t, default=None, help="override the checkpoint's (or the default) %s" % k)
    ap.add_argument("--no-knn", action="store_true", help="skip the Section kNN")
    ap.add_argument("--check-forward", action="store_true", help="only check that this model with the checkpoint's "
                    "weights embeds as contrast does (exit 1 if not)")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    if (args.seconds > 0) == (args.steps > 0) and not args.check_forward:
        sys.exit("torch_text: give one of --seconds S or --steps N")
    if args.threads < 1 or args.time_steps < 1:
        sys.exit("torch_text: --threads and --time-steps must be >= 1")
    torch.set_num_threads(args.threads)
    contrast = import_contrast()
    cfg = config_from(args, contrast)
    tr = Split(contrast.text_dataset("debian-descriptions", train=True), cfg["limit"])
    te = Split(contrast.text_dataset("debian-descriptions", train=False))
    if args.checkpoint:
        tok = contrast.Tokenizer.from_checkpoint(args.checkpoint)
    else:
        tok = contrast.Tokenizer.train(tr.texts, vocab=cfg["vocab"])
    cfg["vocab"] = max(cfg["vocab"], tok.vocab_size)
    ids, valid = tok.encode(tr.texts, context=cfg["context"])
    if args.check_forward:
        sys.exit(check_forward(args, cfg, contrast, tok, tr))
    model, info = train(args, cfg, tr, ids, valid)
    t0 = time.perf_counter()
    gal, target = tm.gallery(te.anchors, te.positives)
    tids, tvalid = tok.encode(te.texts, context=cfg["context"])
    q = tm.l2_rows(embed(model, tids, tvalid, te.anchors))
    g = tm.l2_rows(embed(model, tids, tvalid, gal))
    res = tm.retrieval_summary(tm.ranks(q, g, target))
    if not args.no_knn and tr.labels is not None:
        ftr = embed(model, ids, valid, tr.lab_anchors)
        res["knn_top1"] = tm.knn_top1(ftr, tr.labels, q, te.labels, tr.nlabels)
    info["eval_seconds"] = time.perf_counter() - t0
    res.update(info)
    res.update({"config": cfg, "threads": args.threads, "torch": torch.__version__, "n_pairs": int(len(te.anchors)),
                "n_gallery": int(len(gal))})
    print("mrr10 %.4f\nr1 %.4f\nr10 %.4f" % (res["mrr10"], res["r1"], res["r10"]))
    if "knn_top1" in res:
        print("knn_top1 %.4f" % res["knn_top1"])
    print("trained %d steps (%.2f epochs of %d) in %.1fs, stopped by %s; final loss %.4f" % (
        info["steps"], info["epochs"], info["steps_per_epoch"], info["seconds"], info["stopped_by"],
        info["final_loss"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
