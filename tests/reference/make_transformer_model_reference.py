#!/usr/bin/python3
"""make_transformer_model_reference.py: writes tests/fixtures/transformer_model_ref.bin,
the PyTorch reference that tests/test_transformer_model.c compares the whole
transformer encoders (CT_ENC_TRANSFORMER, CT_ENC_VIT) with their projection heads against.

Run with Debian's python3-torch (no other dependency):

    /usr/bin/python3 tests/reference/make_transformer_model_reference.py

The modules below are the ones the README documents: a user who writes them gets
state_dicts whose names and shapes are those of contrast's checkpoints.

Two variants, each a model over 2B = 8 inputs (two views of B = 4), trained as
the trainer does it: one forward of both views, the head's BatchNorm1d in training
mode, NT-Xent (tau 0.2) over the embeddings z, backward:
    "text": V 100, T 16, C 64, L 2, H 4, mean pooling over right-padded sequences
            (one of them a single token), no causal mask
    "vit":  4 x 28 x 28 random images per view, 7 x 7 patches (16 + CLS), C 64,
            L 2, H 4, CLS pooling
both with the head Linear(64, 64) - BatchNorm1d - ReLU - Linear(64, 32) and dropout 0
(PyTorch's dropout masks cannot be reproduced). Parameters are drawn (not the
initialisation: order-1 LayerNorm weights and positions so that attention is far
from uniform), rounded to float32 and stored, so both sides start equal.

Stored per variant "<v>.": hyper (tau, lr, weight decay, beta1, beta2, eps),
input (ids as floats, or images), valid (text), param.<name> (every parameter),
h, z (training-mode forward), loss, grad.<name> (every parameter gradient), and
losses: the NT-Xent loss before each of 10 torch.optim.AdamW steps (lr 1e-3,
weight decay 0.05 except on biases, LayerNorm and BatchNorm weights, positions and
the CLS token: the C side's CT_TENSOR_NO_DECAY rows) on the same batch.

Precision: float64 from the float32-rounded inputs, stored as float32. The script
also runs everything in float32 and prints how much of the C test's tolerance
(per tensor |d| <= ATOL_REL * max|ref| + RTOL * |ref|, a bias gradient's max|ref| at
least its weight gradient's; losses: |d| <= LOSS_RTOL * |ref|) PyTorch's
own float32 run uses, and refuses to write a fixture where that exceeds 25%.

Format (little endian): "CTTMDv01", int32 version 1, int32 nconfig 12, then
B T C L H V P IMG HEAD_HIDDEN HEAD_OUT NSTEPS SEED, int32 ntensors, per tensor
int32 name_len, name, int32 ndim, int64 shape[ndim], float32 data; "CTTMDEND".
"""
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC, END, VERSION = b"CTTMDv01", b"CTTMDEND", 1
B, T, C, L, H, V, P, IMG, HH, HO, NSTEPS, SEED = 4, 16, 64, 2, 4, 100, 7, 28, 64, 32, 10, 2021
TAU, LR, WD, BETAS, EPS = 0.2, 1e-3, 0.05, (0.9, 0.999), 1e-8
RTOL = ATOL_REL = 1e-4  # the C test's tolerance for outputs and gradients
LOSS_RTOL = 1e-4        # ... and for the losses of the AdamW steps
F32_BUDGET = 0.25
LENGTHS = [16, 11, 1, 7, 16, 13, 5, 2]  # real tokens of the 8 sequences (right padding)


# ---- the modules (the README's) -------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim, heads, causal=False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, valid=None):
        b, t, c = x.shape
        d = c // self.heads
        q, k, v = (u.reshape(b, t, self.heads, d).transpose(1, 2) for u in self.qkv(x).split(c, dim=2))
        s = q @ k.transpose(-1, -2) / math.sqrt(d)
        if valid is not None:
            s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
        if self.causal:
            s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        a = torch.softmax(s, dim=-1).nan_to_num(0.0)  # a query with no visible key: zeros
        return self.proj((a @ v).transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, causal=False):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, causal)
        self.ln2, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x, valid=None):
        x = x + self.attn(self.ln1(x), valid)
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):  # --encoder transformer, --pool mean
    def __init__(self, vocab, context, dim, depth, heads, causal=False):
        super().__init__()
        self.tok_embed = nn.Embedding(vocab, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, context, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, causal) for _ in range(depth))
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, ids, valid):
        x = self.tok_embed(ids) + self.pos_embed
        for blk in self.blocks:
            x = blk(x, valid)
        x = self.ln_f(x)
        w = valid.to(x.dtype)[:, :, None]
        return (x * w).sum(1) / w.sum(1).clamp(min=1)


class ViTEncoder(nn.Module):  # --encoder vit, --pool cls
    def __init__(self, in_c, img, patch, dim, depth, heads):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_c, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (img // patch) ** 2, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x)[:, 0]


class Model(nn.Module):
    def __init__(self, encoder, dim):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(dim, HH), nn.BatchNorm1d(HH), nn.ReLU(), nn.Linear(HH, HO))

    def forward(self, *inputs):
        h = self.encoder(*inputs)
        return h, self.head(h)


def ntxent(z, tau):
    """contrast's NT-Xent: rows [0, n) view 1, [n, 2n) view 2, positive i +- n, mean over 2n."""
    u = F.normalize(z, dim=1)
    s = u @ u.t() / tau
    s = s.masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
    n = len(z) // 2
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(s, target)


def no_decay(name):
    return (name.endswith(".bias") or name.endswith("pos_embed") or name.endswith("cls_token")
            or ".ln" in name or name.startswith("head.1."))


# ---- drawing, running ------------------------------------------------------------------
def make(variant):
    if variant == "text":
        enc = TextEncoder(V, T, C, L, H)
    else:
        enc = ViTEncoder(1, IMG, P, C, L, H)
    return Model(enc, C)


def draw(variant, gen):
    m = make(variant).double()
    params = {}
    for name, p in m.named_parameters():
        u = torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1
        if ".ln" in name and name.endswith("weight"):
            t = 1 + 0.5 * u
        elif name.endswith("bias"):
            t = 0.2 * u
        elif name.endswith(("pos_embed", "cls_token", "tok_embed.weight")) or name == "head.1.weight":
            t = 1 + 0.3 * u if name == "head.1.weight" else u
        else:
            fan_in = p[0].numel()
            t = u * math.sqrt(3.0 / fan_in)
        params[name] = t.float().double()
    if variant == "text":
        ids = torch.randint(0, V, (2 * B, T), generator=gen)
        valid = torch.zeros(2 * B, T, dtype=torch.bool)
        for i, n in enumerate(LENGTHS):
            valid[i, :n] = True
        inputs = (ids, valid)
    else:
        inputs = (torch.rand(2 * B, 1, IMG, IMG, generator=gen, dtype=torch.float64).float().double(),)
    return params, inputs


def run(variant, params, inputs, dtype):
    m = make(variant).to(dtype)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(params[name])
    ins = tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)
    decay = [p for n, p in m.named_parameters() if not no_decay(n)]
    plain = [p for n, p in m.named_parameters() if no_decay(n)]
    opt = torch.optim.AdamW([{"params": decay}, {"params": plain, "weight_decay": 0.0}], lr=LR, betas=BETAS,
                            eps=EPS, weight_decay=WD)
    m.train()
    out, losses = {}, []
    for step in range(NSTEPS):
        opt.zero_grad()
        h, z = m(*ins)
        loss = ntxent(z, TAU)
        loss.backward()
        if step == 0:
            out["h"], out["z"], out["loss"] = h.detach(), z.detach(), loss.detach().reshape(1)
            for name, p in m.named_parameters():
                out["grad." + name] = p.grad.detach().clone()
        losses.append(loss.item())
        opt.step()
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    return out


def scale(refs, name):
    """max|ref|, and for a bias gradient at least its weight's (a linear bias before a
    BatchNorm has a zero gradient: its float32 error is relative to the weight's terms)"""
    s = refs[name].abs().max().item()
    if name.startswith("grad.") and name.endswith(".bias") and name[:-4] + "weight" in refs:
        s = max(s, refs[name[:-4] + "weight"].abs().max().item())
    return s


def share(got, refs, name):
    """the worst |got - ref| as a share of the C test's tolerance"""
    got, ref = got.double(), refs[name].double()
    if name == "losses" or name == "loss":
        return ((got - ref).abs() / (LOSS_RTOL * ref.abs())).max().item()
    tol = ATOL_REL * scale(refs, name) + RTOL * ref.abs()
    return ((got - ref).abs() / tol).max().item()


def write_tensor(f, name, t):
    a = t.detach().to(torch.float32).contiguous()
    nb = name.encode()
    f.write(struct.pack("<i", len(nb)) + nb + struct.pack("<i", a.dim()))
    f.write(struct.pack("<%dq" % a.dim(), *a.shape))
    f.write(struct.pack("<%df" % a.numel(), *a.flatten().tolist()))


def main():
    torch.use_deterministic_algorithms(True)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "fixtures", "transformer_model_ref.bin")
    gen = torch.Generator().manual_seed(SEED)
    tensors = []
    for variant in ("text", "vit"):
        params, inputs = draw(variant, gen)
        ref = run(variant, params, inputs, torch.float64)
        f32 = run(variant, params, inputs, torch.float32)
        worst = max((share(f32[k], ref, k), k) for k in ref)
        print(f"{variant}: loss {ref['loss'].item():.6f}, losses {ref['losses'][0]:.5f} -> {ref['losses'][-1]:.5f}; "
              f"PyTorch float32 uses {100 * worst[0]:.1f}% of the C tolerance (worst: {worst[1]})")
        if worst[0] > F32_BUDGET:
            sys.exit(f"{variant}: float32 error exceeds {F32_BUDGET:.0%} of the tolerance; pick another SEED")
        tensors.append((f"{variant}.hyper", torch.tensor([TAU, LR, WD, BETAS[0], BETAS[1], EPS])))
        if variant == "text":
            tensors += [(f"{variant}.input", inputs[0].double()), (f"{variant}.valid", inputs[1].double())]
        else:
            tensors.append((f"{variant}.input", inputs[0]))
        tensors += [(f"{variant}.param.{k}", v) for k, v in params.items()]
        tensors += [(f"{variant}.{k}", v) for k, v in ref.items()]
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<ii", VERSION, 12))
        f.write(struct.pack("<12i", B, T, C, L, H, V, P, IMG, HH, HO, NSTEPS, SEED))
        f.write(struct.pack("<i", len(tensors)))
        for k, t in tensors:
            write_tensor(f, k, t)
        f.write(END)
    print(f"wrote {os.path.normpath(path)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
