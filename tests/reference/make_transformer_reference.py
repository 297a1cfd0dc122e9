#!/usr/bin/python3
"""make_transformer_reference.py: writes tests/fixtures/transformer_ref.bin, the PyTorch
reference that tests/test_transformer.c compares the transformer layers against.

Run with Debian's python3-torch (no other dependency):

    /usr/bin/python3 tests/reference/make_transformer_reference.py

One pre-LayerNorm transformer block, B 3, T 5, C 16, H 4, MLP width 4C:
    a   = ln1(x)
    qkv = a W_qkv^T + b_qkv                     fused projection, [q | k | v]
    att = softmax(q k^T / sqrt(D) + masks)      per head; padded keys masked
    o   = att v, heads concatenated             "attn"
    h   = x + o W_proj^T + b_proj
    f   = ln2(h) W_fc1^T + b_fc1                 "fc1"
    out = h + gelu(f) W_fc2^T + b_fc2
and the backward of L = sum(out * dout). Two variants, each with its own draw:
    "tanh": GELU tanh form, key-padding mask (sequence 1 has 3 real tokens of 5)
    "erf":  GELU exact erf form, the same padding and a causal mask
The hand-written attention is asserted equal to nn.MultiheadAttention (fused
in_proj = qkv, out_proj = proj, key_padding_mask, attn_mask) in float64 before
anything is written, so the fixture holds nn.MultiheadAttention's math.

Precision: inputs are drawn, rounded to float32, then everything runs in float64
and is stored as float32; the C test's tolerance only absorbs its own float32
arithmetic. The script also runs the block in PyTorch float32 and prints how much
of the C test's tolerance (|d| <= 1e-5 * max|ref| + 1e-5 * |ref|, per tensor)
PyTorch's own float32 error uses; it refuses to write a fixture where that
exceeds 25%.

Fixture format (little endian):
    char[8]  magic "CTTFMv01"
    int32    version (1)
    int32    nconfig (5), then B, T, C, H, seed
    int32    ntensors, then ntensors records:
             int32 name_len, name bytes (no NUL), int32 ndim, int64 shape[ndim],
             float32 data[prod(shape)]
    char[8]  "CTTFMEND"
Tensor names, each prefixed "<variant>." (tanh. / erf.):
    flags (gelu: 0 erf / 1 tanh, causal), x, valid (1 real, 0 padding), dout,
    param.<name>, ln1, qkv, att (B, H, T, T), attn, h, ln2, fc1, gelu, out,
    grad.x, grad.qkv, grad.attn, grad.fc1, grad.<param name>
Parameter names: ln1.weight, ln1.bias, attn.qkv.weight, attn.qkv.bias,
attn.proj.weight, attn.proj.bias, ln2.weight, ln2.bias, mlp.fc1.weight,
mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias.
"""
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC = b"CTTFMv01"
END = b"CTTFMEND"
VERSION = 1
B, T, C, H = 3, 5, 16, 4
SEED = 21
RTOL = ATOL_REL = 1e-5  # the C test's tolerance
F32_BUDGET = 0.25
LENGTHS = [5, 3, 5]  # real tokens per sequence (right padding)
VARIANTS = [("tanh", 1, 0), ("erf", 0, 1)]  # name, gelu tanh?, causal

PARAMS = [("ln1.weight", (C,)), ("ln1.bias", (C,)), ("attn.qkv.weight", (3 * C, C)), ("attn.qkv.bias", (3 * C,)),
          ("attn.proj.weight", (C, C)), ("attn.proj.bias", (C,)), ("ln2.weight", (C,)), ("ln2.bias", (C,)),
          ("mlp.fc1.weight", (4 * C, C)), ("mlp.fc1.bias", (4 * C,)), ("mlp.fc2.weight", (C, 4 * C)),
          ("mlp.fc2.bias", (C,))]


def f32(t):
    return t.float().double()


def draw(seed):
    g = torch.Generator().manual_seed(seed)
    p = {}
    for name, shape in PARAMS:
        if name.startswith("ln") and name.endswith("weight"):
            t = 1 + 0.5 * (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1)
        elif name.startswith("ln"):
            t = 0.3 * (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1)
        else:
            fan_in = shape[-1] if len(shape) == 2 else C
            t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)
        p[name] = f32(t)
    x = f32(torch.randn(B, T, C, generator=g, dtype=torch.float64))
    dout = f32(torch.randn(B, T, C, generator=g, dtype=torch.float64))
    valid = torch.zeros(B, T, dtype=torch.float64)
    for b, n in enumerate(LENGTHS):
        valid[b, :n] = 1
    return p, x, dout, valid


def masks(valid, causal, dtype):
    """Additive (B, 1, T, T) mask: -inf on padded keys and, if causal, on keys after the query."""
    m = torch.zeros(B, 1, T, T, dtype=dtype)
    m = m.masked_fill(valid[:, None, None, :] == 0, float("-inf"))
    if causal:
        m = m.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return m


def block(p, x, valid, tanh, causal, keep):
    D = C // H
    a = F.layer_norm(x, (C,), p["ln1.weight"], p["ln1.bias"], 1e-5)
    qkv = F.linear(a, p["attn.qkv.weight"], p["attn.qkv.bias"])
    q, k, v = qkv.split(C, dim=2)
    q, k, v = (t.reshape(B, T, H, D).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(D) + masks(valid, causal, x.dtype)
    att = torch.softmax(s, dim=-1)
    attn = (att @ v).transpose(1, 2).reshape(B, T, C)
    h = x + F.linear(attn, p["attn.proj.weight"], p["attn.proj.bias"])
    m = F.layer_norm(h, (C,), p["ln2.weight"], p["ln2.bias"], 1e-5)
    f = F.linear(m, p["mlp.fc1.weight"], p["mlp.fc1.bias"])
    g = F.gelu(f, approximate="tanh" if tanh else "none")
    out = h + F.linear(g, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    for t in (qkv, attn, f):
        t.retain_grad()
    keep.update(ln1=a, qkv=qkv, att=att, attn=attn, h=h, ln2=m, fc1=f, gelu=g, out=out)
    return out, attn, a


def check_mha(p, a, valid, causal, attn):
    """The hand-written attention output (before proj) equals nn.MultiheadAttention's."""
    mha = nn.MultiheadAttention(C, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(p["attn.qkv.weight"])
        mha.in_proj_bias.copy_(p["attn.qkv.bias"])
        mha.out_proj.weight.copy_(torch.eye(C, dtype=torch.float64))
        mha.out_proj.bias.zero_()
        am = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None
        o, _ = mha(a, a, a, key_padding_mask=valid == 0, attn_mask=am, need_weights=False)
    err = (o - attn.detach()).abs().max().item()
    if err > 1e-12:
        sys.exit(f"hand-written attention differs from nn.MultiheadAttention by {err:g}")


def run(p, x, dout, valid, tanh, causal, dtype):
    pp = {k: v.to(dtype).clone().requires_grad_(True) for k, v in p.items()}
    xx = x.to(dtype).clone().requires_grad_(True)
    keep = {}
    out, attn, a = block(pp, xx, valid.to(dtype), tanh, causal, keep)
    if dtype == torch.float64:
        check_mha({k: v.detach() for k, v in pp.items()}, a.detach(), valid, causal, attn)
    (out * dout.to(dtype)).sum().backward()
    grads = {"grad.x": xx.grad, "grad.qkv": keep["qkv"].grad, "grad.attn": keep["attn"].grad,
             "grad.fc1": keep["fc1"].grad}
    grads.update({"grad." + k: v.grad for k, v in pp.items()})
    vals = {k: v.detach() for k, v in keep.items()}
    return vals, grads


def write_tensor(f, name, t):
    a = t.detach().to(torch.float32).contiguous()
    nb = name.encode()
    f.write(struct.pack("<i", len(nb)) + nb + struct.pack("<i", a.dim()))
    f.write(struct.pack("<%dq" % a.dim(), *a.shape))
    f.write(struct.pack("<%df" % a.numel(), *a.flatten().tolist()))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "fixtures", "transformer_ref.bin")
    tensors = []
    for vi, (name, tanh, causal) in enumerate(VARIANTS):
        p, x, dout, valid = draw(SEED + vi)
        vals, grads = run(p, x, dout, valid, tanh, causal, torch.float64)
        v32, g32 = run(p, x, dout, valid, tanh, causal, torch.float32)
        worst = (0.0, "")
        for k in list(vals) + list(grads):
            ref, got = (vals[k], v32[k]) if k in vals else (grads[k], g32[k])
            tol = ATOL_REL * ref.abs().max() + RTOL * ref.abs()
            worst = max(worst, (((got.double() - ref).abs() / tol).max().item(), k))
        print(f"{name}: PyTorch float32 uses {100 * worst[0]:.1f}% of the C tolerance (worst: {worst[1]})")
        if worst[0] > F32_BUDGET:
            sys.exit(f"{name}: float32 error exceeds {F32_BUDGET:.0%} of the tolerance; pick another SEED")
        tensors.append((f"{name}.flags", torch.tensor([float(tanh), float(causal)])))
        tensors += [(f"{name}.x", x), (f"{name}.valid", valid), (f"{name}.dout", dout)]
        tensors += [(f"{name}.param.{k}", p[k]) for k, _ in PARAMS]
        tensors += [(f"{name}.{k}", v) for k, v in vals.items()]
        tensors += [(f"{name}.{k}", v) for k, v in grads.items()]
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<ii", VERSION, 5) + struct.pack("<5i", B, T, C, H, SEED))
        f.write(struct.pack("<i", len(tensors)))
        for k, t in tensors:
            write_tensor(f, k, t)
        f.write(END)
    print(f"wrote {os.path.normpath(path)}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
