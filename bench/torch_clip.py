"""torch_clip.py: the PyTorch side of the CLIP comparison (issue 23, item 5).

The same two-tower model as `contrast train --method clip` (src/train/clip.c), in
PyTorch, on the same data, tokens and evaluation; parameter names are the C
checkpoint's, so a C checkpoint loads into it with load_state_dict(strict=True):

  image tower  visual.encoder: cnn | resnet18 (contrast.torch's modules) or a ViT
               (patch embedding, CLS token, learned positions, pre-LN blocks, final
               LayerNorm, CLS pooling); visual.head: a linear projection, no bias
  text tower   text.encoder: token + learned position embeddings, pre-LN blocks,
               final LayerNorm, EOT pooling (the last valid token) under a causal
               mask, or mean pooling over the valid tokens; text.head as above
  blocks       x + drop(proj(attn(ln1(x)))); x + drop(fc2(gelu(fc1(ln2(x))))): the
               library's ct_model_add_transformer_block, fused qkv, dropout on the
               attention probabilities, padded keys masked, exact (erf) GELU
  loss         the symmetric cross-entropy of min(exp(s), 100) * cos, s = logit_scale
               starting at ln(1/temperature), clamped to [0, ln 100] after every step
  optimiser    AdamW (0.9, 0.999, eps 1e-8); weight decay on matrices only (not on
               biases, norms, positions, CLS token, logit scale); linear warm-up
               then cosine decay
  init         the library's: trunc normal 0.02 inside the transformers, PyTorch's
               default for the projections, Kaiming fan-out for convolutions
Defaults are contrast's for --method clip; --like CHECKPOINT takes every shape and
setting from a C run's checkpoint metadata instead.

Data: contrast.caption_dataset(SPEC, train=True, size=S) (the C trainer's loading
and held-out split), images normalised with the training split's per-channel
mean/std, random resized crops of scale 0.6-1 (no flips, no colour: the C trainer's
pipeline), one caption per image per step drawn uniformly from its captions, tokens
from contrast.Tokenizer trained on every training caption with the same vocabulary
(the C trainer's tokenizer: the same ids).

Training runs for --seconds of wall time counted from the start of the script (data
loading and tokenizer training included, as they are in `contrast train`'s time).
The number of steps is not known in advance, so the cosine's progress is the
fraction of the time budget spent; the warm-up is the first --warmup-epochs epochs'
steps, as in ct_lr_schedule.

Evaluation on the held-out test split (and with --train-eval the training split), as
`contrast eval --data emoji` (src/eval/zeroshot.c):
  zero-shot top-1/top-5 among all the split's class names: each class's prompts
    (--templates, default the library's six emoji templates) embedded, normalised,
    averaged and renormalised (open_clip); ties ranked by index
  retrieval R@1/5/10 image -> text and text -> image over the split's distinct
    captions: a caption and an image match when the caption is one of the image's
  chance of each (exact expectations for random rankings).

Usage:
  torch_clip.py --seconds 600 --threads 2 [--like CKPT] [--train-eval] [--json F]
  torch_clip.py --eval-checkpoint CKPT [--train-eval] [--json F]
      evaluates a C checkpoint here: equal numbers to `contrast eval` show that the
      two sides compute the same model and the same metrics
  torch_clip.py --check
      the towers' features and the loss against the library (tiny C runs)
  torch_clip.py --bench --steps 5 [--warmup 2] [--batch 256] [--threads N] [--setting best]
      times training steps on random inputs (no data needed) and prints, like
      bench/torch_transformer.py (1 "image" = 1 image-caption pair):
      torch clip <setting> train_img_s <pairs/s> infer_img_s <pairs/s> peak_rss_mib <m> threads <n>
      (--models clip implies --bench: bench/run.sh's run_model can call this script as is)
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

LN_MAX_SCALE = math.log(100.0)
# the C trainer's image pipeline for clip before its --augment overrides (src/train/clip.c):
# mild crops, no flips, no colour changes (captions name colours and sides)
BASE_AUGMENT = "crop=0.6:1"

# The zero-shot prompts when --templates is not given ({} is the class name): the
# library's built-in emoji templates (ct_zeroshot_default_templates).
DEFAULT_TEMPLATES = ["an emoji of {}", "{}", "a {} emoji", "an icon of {}", "a picture of {}", "a drawing of {}"]


# ---- the towers ------------------------------------------------------------------

def trunc_normal_(t, std=0.02):
    """N(0, std^2) redrawn outside +-2 std (the library's fill_trunc_normal)."""
    with torch.no_grad():
        return nn.init.trunc_normal_(t, 0.0, std, -2.0 * std, 2.0 * std)


class Linear(nn.Linear):
    """A linear map over token rows: trunc normal 0.02 weight, zero bias."""

    def reset_parameters(self):
        trunc_normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class Attention(nn.Module):
    """attn.qkv (3C, C) -> heads, softmax over valid keys, dropout on the
    probabilities -> attn.proj (the library's attention node and its qkv layout)."""

    def __init__(self, dim, heads, p, causal):
        super().__init__()
        self.heads, self.p, self.causal = heads, p, causal
        self.qkv = Linear(dim, 3 * dim)
        self.proj = Linear(dim, dim)

    def forward(self, x, valid):
        B, T, C = x.shape
        H = self.heads
        q, k, v = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
        if valid is not None:
            s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
        if self.causal:
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        a = F.dropout(s.softmax(-1), self.p, self.training)
        return self.proj((a @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = Linear(dim, 4 * dim)
        self.fc2 = Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """ct_model_add_transformer_block: pre-LN, dropout after each branch."""

    def __init__(self, dim, heads, p, causal):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, heads, p, causal)
        self.ln2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = MLP(dim)
        self.p = p

    def forward(self, x, valid):
        x = x + F.dropout(self.attn(self.ln1(x), valid), self.p, self.training)
        return x + F.dropout(self.mlp(self.ln2(x)), self.p, self.training)


class TextEncoder(nn.Module):
    """build_transformer for text: names under the checkpoint's "<tower>.encoder."."""

    def __init__(self, vocab, context, dim, depth, heads, p, pool, causal):
        super().__init__()
        self.tok_embed = nn.Embedding(vocab, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, context, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, p, causal) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(dim, eps=1e-5)
        self.p, self.pool = p, pool
        trunc_normal_(self.tok_embed.weight)
        trunc_normal_(self.pos_embed)

    def forward(self, ids, valid):
        x = F.dropout(self.tok_embed(ids) + self.pos_embed, self.p, self.training)
        for b in self.blocks:
            x = b(x, valid)
        x = self.ln_f(x)
        if self.pool == "mean":
            w = valid.to(x.dtype).unsqueeze(-1)
            return (x * w).sum(1) / w.sum(1).clamp_min(1.0)
        if self.pool == "cls":
            return x[:, 0]
        # eot: the last valid token (right padding), ct_tokpool's CT_TOKPOOL_LAST
        last = valid.shape[1] - 1 - valid.flip(1).to(torch.int64).argmax(1)
        return x[torch.arange(x.shape[0]), last]


class ViTEncoder(nn.Module):
    """build_transformer for images: patch_embed (a p x p stride-p conv), cls_token,
    pos_embed, blocks, ln_f, CLS pooling."""

    def __init__(self, in_c, size, patch, dim, depth, heads, p):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_c, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (size // patch) ** 2, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, p, False) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(dim, eps=1e-5)
        self.p = p
        for t in (self.patch_embed.weight, self.cls_token, self.pos_embed):
            trunc_normal_(t)
        nn.init.zeros_(self.patch_embed.bias)
        self.feature_dim = dim

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        x = F.dropout(x, self.p, self.training)
        for b in self.blocks:
            x = b(x, None)
        return self.ln_f(x)[:, 0]


def kaiming_fan_out_(module):
    """conv_init: Kaiming normal, fan_out, gain sqrt(2) (torchvision's ResNet)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def image_encoder(a):
    if a.image_encoder == "vit":
        return ViTEncoder(3, a.size, a.patch, a.image_width, a.image_depth, a.image_heads, a.dropout)
    import contrast.torch as ct  # the library's CNN and ResNet-18, with its tensor names
    enc = ct.CNNEncoder(3, a.size, a.image_width, a.last_width) if a.image_encoder == "cnn" else \
        ct.ResNet18Encoder(3, a.image_width)
    kaiming_fan_out_(enc)
    return enc


class Tower(nn.Module):
    """encoder + "head", one linear projection without bias (head_hidden -1 in the
    library), PyTorch's default init (U(+-1/sqrt(fan_in)), the library's over vectors)."""

    def __init__(self, encoder, feature_dim, embed_dim):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, embed_dim, bias=False)


class CLIP(nn.Module):
    """State dict names are the C checkpoint's: visual.encoder.*, visual.head.weight,
    text.encoder.*, text.head.weight, logit_scale (a C checkpoint loads as is)."""

    def __init__(self, a, text_vocab):
        super().__init__()
        enc = image_encoder(a)
        self.visual = Tower(enc, enc.feature_dim, a.embed_dim)
        txt = TextEncoder(text_vocab, a.context, a.text_width, a.text_depth, a.text_heads, a.dropout, a.pool,
                          a.causal)
        self.text = Tower(txt, a.text_width, a.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / a.temperature), dtype=torch.float32))

    def encode_image(self, x):
        return self.visual.head(self.visual.encoder(x))

    def encode_text(self, ids, valid):
        return self.text.head(self.text.encoder(ids, valid))


def clip_loss(zi, zt, s):
    """Symmetric cross-entropy of min(exp(s), 100) * cos(image i, text j), target i = j."""
    ui, ut = F.normalize(zi, dim=1), F.normalize(zt, dim=1)
    logits = s.exp().clamp(max=100.0) * ui @ ut.t()
    target = torch.arange(zi.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)), logits


def make_optimizer(model, lr, wd):
    """AdamW; decay on matrices only (the library's CT_TENSOR_NO_DECAY rows: biases,
    norms, positions, CLS token; and the logit scale, as open_clip)."""
    decay, plain = [], []
    for n, p in model.named_parameters():
        no = p.ndim < 2 or n.endswith("pos_embed") or n.endswith("cls_token")
        (plain if no else decay).append(p)
    return torch.optim.AdamW([{"params": decay}, {"params": plain, "weight_decay": 0.0}], lr=lr,
                             betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)


# ---- data --------------------------------------------------------------------------

def parse_augment(s):
    """"crop=SMIN:SMAX[:RMIN:RMAX]|off,flip=P" (the keys of ct_augment_parse this uses)."""
    aug = {"crop": None, "ratio": (3.0 / 4.0, 4.0 / 3.0), "flip": 0.0}
    for part in filter(None, s.split(",")):
        k, _, v = part.partition("=")
        if k == "crop":
            if v != "off":
                f = [float(x) for x in v.split(":")]
                if len(f) not in (2, 4) or not 0 < f[0] <= f[1] <= 1:
                    raise SystemExit("torch_clip.py: --augment crop=%s: expected SMIN:SMAX[:RMIN:RMAX] in (0, 1]" % v)
                aug["crop"] = (f[0], f[1])
                if len(f) == 4:
                    aug["ratio"] = (f[2], f[3])
        elif k == "flip":
            aug["flip"] = float(v)
        elif k != "none":
            raise SystemExit("torch_clip.py: --augment: unknown key %r (crop, flip)" % k)
    return aug


def augment(x, aug, g):
    """Random resized crops (bilinear, torchvision's sampling of area and log-ratio,
    a crop that does not fit falls back to the whole image) and flips of a
    normalised float batch (N, C, S, S), all in one grid_sample."""
    n = x.shape[0]
    sx = torch.ones(n)
    sy = torch.ones(n)
    if aug["crop"]:
        lo, hi = aug["crop"]
        area = torch.empty(n).uniform_(lo, hi, generator=g)
        logr = torch.empty(n).uniform_(math.log(aug["ratio"][0]), math.log(aug["ratio"][1]), generator=g)
        r = logr.exp()
        sx, sy = (area * r).sqrt(), (area / r).sqrt()
        bad = (sx > 1) | (sy > 1)
        sx[bad], sy[bad] = 1.0, 1.0
    tx = (torch.rand(n, generator=g) * 2 - 1) * (1 - sx)
    ty = (torch.rand(n, generator=g) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(n, generator=g) < aug["flip"], -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def normalise(images, mean, std):
    """uint8 (N, 3, S, S) -> float32 (x * (1/255) - mean) * (1/std) per channel, as
    contrast.images.prepare and the library normalise (mean, std on the 0..1 scale)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().mul_(np.float32(1.0) / np.float32(255.0))
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    inv = 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) * inv


def load_templates(path):
    if not path:
        return list(DEFAULT_TEMPLATES)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                out.append(line.replace("{name}", "{}") if "{" in line else line + " {}")
    if not out:
        raise SystemExit("torch_clip.py: %s holds no templates" % path)
    return out


# ---- evaluation --------------------------------------------------------------------

@torch.no_grad()
def embed_texts(model, tok, texts, context, bs=512):
    out = []
    for i in range(0, len(texts), bs):
        ids, valid = tok.encode(texts[i:i + bs], context=context)
        out.append(F.normalize(model.encode_text(torch.from_numpy(ids.astype(np.int64)),
                                                 torch.from_numpy(valid.astype(bool))), dim=1))
    return torch.cat(out)


@torch.no_grad()
def embed_images(model, x, bs=512):
    return torch.cat([F.normalize(model.encode_image(x[i:i + bs]), dim=1) for i in range(0, x.shape[0], bs)])


def chance_any(n, m, k):
    """P(at least one of m relevant items among the first k of a random ranking of n)."""
    if k >= n:
        return 1.0
    if m == 0:
        return 0.0
    p_none = 1.0
    for i in range(k):  # hypergeometric: no relevant item in k draws without replacement
        p_none *= max(0.0, (n - m - i) / (n - i))
    return 1.0 - p_none


def ranks(sim):
    """rank[q, g]: the position of gallery item g in query q's order, score
    descending then index ascending (the library's one total order)."""
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(sim.shape[1]).expand_as(order).contiguous())
    return rank


def recall_at(sim, relevant, ks):
    """sim (Q, G); relevant: list of index lists per query -> {k: fraction of
    queries with a relevant item among the top k}."""
    rank = ranks(sim)
    best = torch.tensor([int(rank[q, rel].min()) for q, rel in enumerate(relevant)])
    return {k: float((best < k).float().mean()) for k in ks}


@torch.no_grad()
def evaluate(model, tok, test, mean, std, context, templates):
    model.eval()
    x = normalise(test.images, mean, std)
    img = embed_images(model, x)
    names = list(test.class_names)
    labels = torch.from_numpy(np.asarray(test.labels, dtype=np.int64))
    ncls = len(names)
    # open_clip's zero_shot_classifier: normalise each prompt, average, renormalise
    cls = torch.zeros(ncls, img.shape[1])
    for t in templates:
        cls += embed_texts(model, tok, [t.format(n) for n in names], context)
    cls = F.normalize(cls / len(templates), dim=1)
    r = ranks(img @ cls.t()).gather(1, labels[:, None])[:, 0]
    res = {"images": int(img.shape[0]), "classes": ncls, "templates": templates,
           "zeroshot_top1": float((r < 1).float().mean()),
           "zeroshot_top5": float((r < 5).float().mean()),
           "chance_top1": 1.0 / ncls, "chance_top5": min(5, ncls) / ncls}
    # retrieval over the distinct captions
    caps, index = [], {}
    img_caps = []
    for cl in test.captions:
        row = []
        for c in cl:
            if c not in index:
                index[c] = len(caps)
                caps.append(c)
            row.append(index[c])
        img_caps.append(sorted(set(row)))
    cap_imgs = [[] for _ in caps]
    for i, row in enumerate(img_caps):
        for j in row:
            cap_imgs[j].append(i)
    txt = embed_texts(model, tok, caps, context)
    sim = img @ txt.t()
    ks = (1, 5, 10)
    i2t, t2i = recall_at(sim, img_caps, ks), recall_at(sim.t(), cap_imgs, ks)
    res["captions"] = len(caps)
    for k in ks:
        res["i2t_r%d" % k] = i2t[k]
        res["t2i_r%d" % k] = t2i[k]
        res["chance_i2t_r%d" % k] = sum(chance_any(len(caps), len(r), k) for r in img_caps) / len(img_caps)
        res["chance_t2i_r%d" % k] = sum(chance_any(len(img_caps), len(r), k) for r in cap_imgs) / len(cap_imgs)
    return res


# ---- configuration from a C checkpoint ---------------------------------------------

def apply_like(a, path):
    """Sets the towers' shapes and the training settings from a `contrast train
    --method clip` checkpoint's metadata (the keys clip_save writes); returns
    "name=value" strings of what it set."""
    from contrast.safetensors import read_metadata
    meta = read_metadata(path)
    if meta.get("train.method") != "clip":
        raise SystemExit("torch_clip.py: %s is not a --method clip checkpoint (train.method %r)" %
                         (path, meta.get("train.method")))
    got = []
    pools = {"eot": "eot", "mean": "mean", "cls": "cls", "default": "mean"}
    for dest, key, conv in [
            ("data", "train.data", str), ("size", "train.image_size", int),
            ("image_encoder", "visual.model.encoder", str), ("image_width", "visual.model.width", int),
            ("last_width", "visual.model.last_width", int), ("image_depth", "visual.model.depth", int),
            ("image_heads", "visual.model.heads", int), ("patch", "visual.model.patch", int),
            ("text_width", "text.model.width", int),
            ("text_depth", "text.model.depth", int), ("text_heads", "text.model.heads", int),
            ("context", "text.model.context", int), ("pool", "text.model.pool", lambda v: pools[v]),
            ("causal", "text.model.causal", lambda v: bool(int(v))), ("vocab", "train.vocab", int),
            ("embed_dim", "clip.embed_dim", int), ("batch", "train.batch", int), ("lr", "train.lr", float),
            ("weight_decay", "train.weight_decay", float), ("temperature", "train.temperature", float),
            ("warmup_epochs", "train.warmup_epochs", float), ("final_lr_frac", "train.final_lr_frac", float),
            ("seed", "train.seed", int)]:
        if key in meta:
            setattr(a, dest, conv(meta[key]))
            got.append("%s=%s" % (dest, getattr(a, dest)))
    drops = {float(meta[k]) for k in ("visual.model.dropout", "text.model.dropout") if k in meta}
    if len(drops) > 1:  # a cnn/resnet18 tower has no dropout key
        raise SystemExit("torch_clip.py: %s: the towers' dropouts differ; this script has one --dropout" % path)
    if drops:
        a.dropout = drops.pop()
        got.append("dropout=%g" % a.dropout)
    if meta.get("train.optimizer", "adamw") != "adamw":
        raise SystemExit("torch_clip.py: %s was trained with %s; this script has AdamW only" %
                         (path, meta["train.optimizer"]))
    if int(meta.get("train.limit", "0")) > 0:
        raise SystemExit("torch_clip.py: %s was trained with --limit; this script trains on the whole split" % path)
    a.augment = BASE_AUGMENT + ("," + meta["train.augment"] if meta.get("train.augment") else "")
    got.append("augment=" + a.augment)
    return got


# ---- training ----------------------------------------------------------------------

def train(a, t0):
    import contrast
    tr = contrast.caption_dataset(a.data, train=True, size=a.size)
    te = contrast.caption_dataset(a.data, train=False, size=a.size)
    flat = [c for cl in tr.captions for c in cl]
    tok = contrast.Tokenizer.train(flat, vocab=a.vocab)
    # every caption tokenized once; caption j of image i is row start[i] + j
    ids, valid = tok.encode(flat, context=a.context)
    ids, valid = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(valid.astype(bool))
    counts = np.array([len(cl) for cl in tr.captions], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    x_all = normalise(tr.images, tr.mean, tr.std)
    n = x_all.shape[0]
    if n < a.batch:
        raise SystemExit("torch_clip.py: %d training images, fewer than one batch of %d" % (n, a.batch))
    torch.manual_seed(a.seed)
    model = CLIP(a, tok.vocab_size)  # the text tower's vocabulary is the tokenizer's, as in clip.c
    opt = make_optimizer(model, a.lr, a.weight_decay)
    aug = parse_augment(a.augment)
    g = torch.Generator().manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    steps_per_epoch = n // a.batch
    warm = int(a.warmup_epochs * steps_per_epoch)
    setup_s = time.time() - t0
    budget = a.seconds - setup_s
    if budget <= 0:
        raise SystemExit("torch_clip.py: loading took %.0f s, the whole budget of %.0f s" % (setup_s, a.seconds))
    t_train = time.time()
    step, epoch, last = 0, 0, {}
    done = False
    model.train()
    while not done:
        perm = torch.randperm(n, generator=g)
        for b in range(steps_per_epoch):
            frac = (time.time() - t_train) / budget
            if frac >= 1.0:
                done = True
                break
            fin = a.lr * a.final_lr_frac  # ct_lr_schedule, with the spent time as the cosine's progress
            lr = a.lr * (step + 1) / warm if step < warm else fin + (a.lr - fin) * 0.5 * (1 + math.cos(math.pi * frac))
            for grp in opt.param_groups:
                grp["lr"] = lr
            idx = perm[b * a.batch:(b + 1) * a.batch]
            pick = start[idx.numpy()] + (rng.random(len(idx)) * counts[idx.numpy()]).astype(np.int64)
            pick = torch.from_numpy(pick)
            xb = augment(x_all[idx], aug, g)
            opt.zero_grad(set_to_none=True)
            zi = model.encode_image(xb)
            zt = model.encode_text(ids[pick], valid[pick])
            loss, logits = clip_loss(zi, zt, model.logit_scale)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, LN_MAX_SCALE)
            step += 1
            with torch.no_grad():  # metrics.jsonl's: loss, scale, in-batch top-1 both ways
                tgt = torch.arange(len(idx))
                last = {"step": step, "epoch": epoch, "loss": float(loss), "lr": lr,
                        "logit_scale": float(model.logit_scale),
                        "i2t_top1": float((logits.argmax(1) == tgt).float().mean()),
                        "t2i_top1": float((logits.argmax(0) == tgt).float().mean()),
                        "elapsed_s": round(time.time() - t0, 1)}
            if step % a.log_every == 0 or step == 1:
                print("torch_clip: " + json.dumps(last), file=sys.stderr, flush=True)
        epoch += 1
    train_s = time.time() - t0
    templates = load_templates(a.templates)
    res = {"test": evaluate(model, tok, te, tr.mean, tr.std, a.context, templates)}
    if a.train_eval:
        res["train"] = evaluate(model, tok, tr, tr.mean, tr.std, a.context, templates)
    res.update({"steps": step, "epochs": round(step / steps_per_epoch, 3), "train_images": n,
                "seconds_budget": a.seconds, "seconds_used": round(train_s, 1), "setup_s": round(setup_s, 1),
                "threads": torch.get_num_threads(), "torch": torch.__version__, "final": last,
                "config": {k: getattr(a, k) for k in CONFIG_KEYS}})
    return res


CONFIG_KEYS = ["data", "size", "image_encoder", "image_width", "last_width", "image_depth", "image_heads", "patch",
               "text_width", "text_depth", "text_heads", "context", "vocab", "pool", "causal", "dropout", "embed_dim",
               "batch", "lr", "weight_decay", "temperature", "warmup_epochs", "final_lr_frac", "augment", "seed"]


def eval_checkpoint(a, path):
    """A C checkpoint's towers, scale and tokenizer loaded into CLIP (strict: every
    name and shape must match) and evaluated by evaluate(): the same numbers as
    `contrast zeroshot` show that the two sides compute the same model and metrics."""
    import contrast
    from contrast.safetensors import read_header, read_metadata, read_tensors
    if not a.like:
        apply_like(a, path)
    head = read_header(path)[0]
    names = [n for n in head if n.startswith(("visual.", "text.")) or n == "logit_scale"]
    state = {k: torch.from_numpy(np.array(v)) for k, v in read_tensors(path, set(names)).items()}
    state["logit_scale"] = state["logit_scale"].reshape(())
    tok = contrast.Tokenizer.from_checkpoint(path)
    meta = read_metadata(path)
    model = CLIP(a, int(meta["text.model.vocab"]))
    for k, v in model.state_dict().items():  # torch's BatchNorm counter, which the library does not keep
        if k.endswith(".num_batches_tracked") and k not in state:
            state[k] = v
    model.load_state_dict(state, strict=True)
    mean = [float(x) for x in meta["data.mean"].split(",")]
    std = [float(x) for x in meta["data.std"].split(",")]
    templates = load_templates(a.templates)
    res = {"checkpoint": path}
    for split in ("test", "train") if a.train_eval else ("test",):
        data = contrast.caption_dataset(a.data, train=split == "train", size=a.size)
        res[split] = evaluate(model, tok, data, mean, std, a.context, templates)
    return res


# ---- the parity check -----------------------------------------------------------------

def check(a):
    """The towers and the loss against the library: tiny ViT and text checkpoints
    trained by `contrast train` (CONTRAST_BIN, default ./contrast) loaded into this
    file's modules give the features `contrast.load(...).embed*` give, and the loss
    and its gradients are contrast.losses.clip's. Exits 1 when a difference exceeds
    1e-4 (float32 sums in another order differ by ~1e-6)."""
    import subprocess
    import tempfile
    import contrast
    from contrast import images as ci
    from contrast.safetensors import read_metadata, read_tensors
    binary = os.environ.get("CONTRAST_BIN", "./contrast")
    worst = 0.0
    tmp = tempfile.mkdtemp(prefix="torch_clip_check.")

    def report(what, got, ref):
        nonlocal worst
        d = float(np.abs(np.asarray(got) - np.asarray(ref)).max())
        worst = max(worst, d)
        print("check %-40s max |diff| %.2e (max |ref| %.2f)" % (what, d, float(np.abs(np.asarray(ref)).max())))

    def run(args):
        subprocess.run([binary, "train", "--epochs", "1", "--quiet", "--threads", "1", "--overwrite"] + args,
                       check=True, stdout=subprocess.DEVNULL)

    def encoder_state(path):
        return {k[len("encoder."):]: torch.from_numpy(v) for k, v in read_tensors(path).items()
                if k.startswith("encoder.")}

    rng = np.random.default_rng(0)
    # the ViT, trained on Fashion-MNIST (1 channel: ViTEncoder with in_c 1), fed random images
    out = os.path.join(tmp, "vit")
    run(["--encoder", "vit", "--width", "32", "--depth", "2", "--heads", "2", "--limit", "256", "--batch", "64",
         "--no-probe", "--eval-every", "0", "--out", out])
    path = os.path.join(out, "checkpoint.safetensors")
    meta = read_metadata(path)
    enc = ViTEncoder(1, 28, int(meta["model.patch"]), 32, 2, 2, 0.0)
    enc.load_state_dict(encoder_state(path), strict=True)
    enc.eval()
    imgs = rng.integers(0, 256, (8, 1, 28, 28), dtype=np.uint8)
    mean, std = ci.normalisation(meta)
    with torch.no_grad():
        got = enc(torch.from_numpy(ci.prepare(imgs, mean, std, 1, 28, 28, None))).numpy()
    report("vit features vs contrast embed", got, contrast.load(path).embed(imgs, which="h_raw"))
    # the text transformer, EOT and mean pooling, on captions of the data
    caps = [c for cl in contrast.caption_dataset(a.data, train=True, size=8).captions for c in cl]
    txt = os.path.join(tmp, "caps.txt")
    with open(txt, "w", encoding="utf-8") as f:
        f.write("\n".join(c.replace("\n", " ") for c in caps) + "\n")
    texts = ["an emoji of a red heart", "grinning face", "x", "thumbs up, hand, yes, approve, ok, like " * 4]
    for pool in ("eot", "mean"):
        out = os.path.join(tmp, "text-" + pool)
        run(["--data", "text:" + txt, "--width", "32", "--depth", "2", "--heads", "2", "--vocab", "1024",
             "--context", "16", "--pool", pool, "--batch", "64", "--out", out])
        path = os.path.join(out, "checkpoint.safetensors")
        tok = contrast.Tokenizer.from_checkpoint(path)
        enc = TextEncoder(1024, 16, 32, 2, 2, 0.0, pool, False)
        enc.load_state_dict(encoder_state(path), strict=True)
        enc.eval()
        ids, valid = tok.encode(texts, context=16)
        with torch.no_grad():
            got = enc(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(valid.astype(bool))).numpy()
        report("text (%s) features vs contrast embed --text" % pool, got, contrast.load(path).embed_texts(texts))
    for s in (math.log(1.0 / 0.07), 4.9):  # 4.9 > ln 100: the clamp, no gradient to s
        zi = rng.standard_normal((37, 24)).astype(np.float32)
        zt = rng.standard_normal((37, 24)).astype(np.float32)
        loss, (di, dt, ds), _ = contrast.losses.clip(zi, zt, s)
        ti, tt = torch.tensor(zi, requires_grad=True), torch.tensor(zt, requires_grad=True)
        ts = torch.tensor(s, dtype=torch.float32, requires_grad=True)
        tl, _ = clip_loss(ti, tt, ts)
        tl.backward()
        report("clip loss (s=%.2f) vs contrast.losses.clip" % s, [float(tl)], [loss])
        report("  its gradients", np.concatenate([ti.grad.numpy().ravel(), tt.grad.numpy().ravel(), [float(ts.grad)]]),
               np.concatenate([di.ravel(), dt.ravel(), [ds]]))
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    print("check: %s (worst %.2e, limit 1e-4)" % ("ok" if worst <= 1e-4 else "FAILED", worst))
    return 0 if worst <= 1e-4 else 1


# ---- the bench mode ----------------------------------------------------------------

def bench(a):
    torch.manual_seed(0)
    model = CLIP(a, a.vocab)
    opt = make_optimizer(model, a.lr, a.weight_decay)
    B = a.batch
    x = torch.randn(B, 3, a.size, a.size)
    ids = torch.randint(0, a.vocab, (B, a.context))
    valid = torch.ones(B, a.context, dtype=torch.bool)
    model.train()
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = clip_loss(model.encode_image(x), model.encode_text(ids, valid), model.logit_scale)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, LN_MAX_SCALE)
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    train = B / statistics.median(times)
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            t = time.perf_counter()
            model.encode_image(x)
            model.encode_text(ids, valid)
            if i >= a.warmup:
                times.append(time.perf_counter() - t)
    infer = B / statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"torch clip {a.setting} train_img_s {train:.1f} infer_img_s {infer:.1f} "
          f"peak_rss_mib {rss:.0f} threads {torch.get_num_threads()}", flush=True)


def main():
    t0 = time.time()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="emoji", help="caption data spec (contrast.caption_dataset)")
    ap.add_argument("--like", default="", help="read shapes and settings from a C --method clip checkpoint")
    # defaults: contrast train --method clip's (src/cli/train.c train_clip, src/train/clip.c)
    ap.add_argument("--size", type=int, default=32, help="image side (--image-size)")
    ap.add_argument("--image-encoder", default="cnn", choices=["cnn", "resnet18", "vit"])
    ap.add_argument("--image-width", type=int, default=0, help="0: 32 cnn, 64 resnet18, 128 vit (--width)")
    ap.add_argument("--last-width", type=int, default=-1, help="cnn: last stage's channels (-1: 16 x width)")
    ap.add_argument("--image-depth", type=int, default=4, help="vit blocks (--depth)")
    ap.add_argument("--image-heads", type=int, default=4, help="vit heads (--heads)")
    ap.add_argument("--patch", type=int, default=4, help="vit patch side")
    ap.add_argument("--text-width", type=int, default=128)
    ap.add_argument("--text-depth", type=int, default=2)
    ap.add_argument("--text-heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=32, help="tokens per caption (BOS, text, EOS)")
    ap.add_argument("--vocab", type=int, default=8192, help="the tokenizer's vocabulary (trained on the captions)")
    ap.add_argument("--pool", default="eot", choices=["eot", "mean"],
                    help="text pooling (--text-pool; eot with a causal mask, as CLIP)")
    ap.add_argument("--dropout", type=float, default=0.0, help="both towers' transformer dropout")
    ap.add_argument("--embed-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, default=0.07, help="the logit scale starts at ln(1/T)")
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--final-lr-frac", type=float, default=0.0, help="the cosine ends at this fraction of --lr")
    ap.add_argument("--augment", default="", help="overrides after %s (crop=SMIN:SMAX[:RMIN:RMAX]|off, flip=P)" %
                    BASE_AUGMENT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0, help="wall-time budget of loading + training")
    ap.add_argument("--templates", default="", help="zero-shot prompts, one per line, {} or {name} = class name")
    ap.add_argument("--train-eval", action="store_true", help="also evaluate on the training split's names")
    ap.add_argument("--json", default="", help="write the results here ('-': stdout)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--eval-checkpoint", default="", help="evaluate a C --method clip checkpoint here (with --like "
                    "its shapes): the check that both sides measure the same way")
    ap.add_argument("--check", action="store_true", help="compare the towers and the loss with the library")
    ap.add_argument("--bench", action="store_true", help="time --steps training steps on random inputs")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the --bench ones")
    ap.add_argument("--setting", default="default", help="label of the --bench line (default, best)")
    ap.add_argument("--models", default=None, help="'clip': --bench, as bench/run.sh's run_model calls its scripts")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.like:
        got = apply_like(a, a.like)
        print("torch_clip: from %s: %s" % (a.like, ", ".join(got)), file=sys.stderr)
    else:
        a.augment = BASE_AUGMENT + ("," + a.augment if a.augment else "")
    if a.image_width <= 0:
        a.image_width = {"cnn": 32, "resnet18": 64, "vit": 128}[a.image_encoder]
    if a.last_width < 0:
        a.last_width = 16 * a.image_width if a.image_encoder == "cnn" else 0
    a.causal = getattr(a, "causal", a.pool == "eot")
    if a.check:
        sys.exit(check(a))
    if a.eval_checkpoint:
        res = eval_checkpoint(a, a.eval_checkpoint)
        write_json(a, res)
        return
    if a.bench or a.models is not None:
        if a.models not in (None, "clip"):
            raise SystemExit("torch_clip.py: --models %s: this script times 'clip' only" % a.models)
        bench(a)
        return
    if a.seconds <= 0:
        raise SystemExit("torch_clip.py: give --seconds (the training budget) or --bench")
    write_json(a, train(a, t0))


def write_json(a, res):
    out = json.dumps(res, indent=1)
    if a.json == "-" or not a.json:
        print(out)
    if a.json and a.json != "-":
        with open(a.json, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
