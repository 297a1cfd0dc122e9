#!/usr/bin/python3
"""make_loss_reference.py: PyTorch references for the objectives in src/loss.

Writes tests/fixtures/loss_ref.bin, read by tests/test_loss.c (which needs no Python).
Every loss here is written from its paper's definition with stock PyTorch ops
(F.normalize, F.cross_entropy, autograd), in float64 on float32 inputs, so the C code
is checked against an independent formulation, not a port of itself.

Format (little-endian): b"CTLOSS01", uint32 record count, then per record:
  32-byte NUL-padded ASCII name, uint64 element count, that many float32.

Run:  /usr/bin/python3 tests/reference/make_loss_reference.py   (deterministic: fixed seed)
"""
import os
import struct

import torch
import torch.nn.functional as F

torch.manual_seed(20260314)
torch.set_default_dtype(torch.float64)
records = []


def put(name, t):
    t = torch.as_tensor(t, dtype=torch.float64).detach().reshape(-1)
    records.append((name, t.to(torch.float32)))


def inp(*shape, scale=1.0):
    """float32 random input, returned as float64 leaf with grad (values exactly float32)."""
    x = (torch.randn(*shape, dtype=torch.float32) * scale).to(torch.float64)
    return x.requires_grad_(True)


# ---- NT-Xent (Chen et al. 2020): cross-entropy over cosine/tau, self masked ------
def ntxent(z, tau):
    n2 = z.shape[0]
    n = n2 // 2
    u = F.normalize(z, dim=1)
    sim = u @ u.t() / tau
    sim = sim.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, n2), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


z = inp(12, 5)
tau = 0.3
loss = ntxent(z, tau)
loss.backward()
put("ntx.z", z); put("ntx.tau", [tau]); put("ntx.loss", [loss.item()]); put("ntx.dz", z.grad)


# ---- SupCon (Khosla et al. 2020, L^sup_out; the authors' formulation) -------------
def supcon(z, labels, views, tau):
    f = F.normalize(z, dim=1)
    lab = labels.repeat(views)                       # view-major rows
    rows = f.shape[0]
    logits = f @ f.t() / tau
    not_self = 1.0 - torch.eye(rows)
    pos = (lab[:, None] == lab[None, :]).double() * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    npos = pos.sum(1)
    npos = torch.where(npos < 1e-6, torch.ones_like(npos), npos)   # lonely anchors: 0
    return -((pos * log_prob).sum(1) / npos).mean()


for tag, n, views, labels, tau in [("sc", 5, 3, [0, 1, 0, 2, 1], 0.2),
                                   ("sc1", 7, 1, [0, 1, 0, 2, 1, 3, 0], 0.5)]:
    z = inp(n * views, 4)
    lab = torch.tensor(labels)
    loss = supcon(z, lab, views, tau)
    loss.backward()
    put(tag + ".z", z); put(tag + ".labels", lab); put(tag + ".views", [views])
    put(tag + ".tau", [tau]); put(tag + ".loss", [loss.item()]); put(tag + ".dz", z.grad)


# ---- InfoNCE (van den Oord et al. 2018; MoCo's form): [q.k+, q.neg] / tau, target 0 --
q, p, neg = inp(4, 6), inp(4, 6), inp(7, 6)
tau = 0.25
qn, pn, nn_ = F.normalize(q, dim=1), F.normalize(p, dim=1), F.normalize(neg, dim=1)
logits = torch.cat([(qn * pn).sum(1, keepdim=True), qn @ nn_.t()], dim=1) / tau
loss = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
loss.backward()
put("nce.q", q); put("nce.p", p); put("nce.neg", neg); put("nce.tau", [tau])
put("nce.loss", [loss.item()]); put("nce.dq", q.grad); put("nce.dp", p.grad); put("nce.dneg", neg.grad)


# ---- CLIP (Radford et al. 2021): symmetric CE, scale = exp(s) clamped at 100 ----------
img0, txt0 = inp(5, 6), inp(5, 6)
for tag, s_val in [("clip", 2.6592600369644165), ("clip2", 4.8)]:
    img = img0.detach().clone().requires_grad_(True)
    txt = txt0.detach().clone().requires_grad_(True)
    s = torch.tensor(s_val, requires_grad=True)
    scale = torch.clamp(s.exp(), max=100.0)
    logits = scale * F.normalize(img, dim=1) @ F.normalize(txt, dim=1).t()
    y = torch.arange(5)
    loss = (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y)) / 2
    loss.backward()
    put(tag + ".img", img); put(tag + ".txt", txt); put(tag + ".s", [s_val])
    put(tag + ".loss", [loss.item()]); put(tag + ".dimg", img.grad); put(tag + ".dtxt", txt.grad)
    put(tag + ".ds", [s.grad.item()])


# ---- margin contrastive (Hadsell et al. 2006), all pairs i<j from labels -------------
x = inp(8, 4, scale=0.6)
labels = torch.tensor([0, 1, 0, 2, 1, 1, 2, 0])
margin = 1.5
terms = []
for i in range(8):
    for j in range(i + 1, 8):
        dist = (x[i] - x[j]).pow(2).sum().sqrt()
        if labels[i] == labels[j]:
            terms.append(0.5 * dist ** 2)
        else:
            terms.append(0.5 * torch.clamp(margin - dist, min=0) ** 2)
loss = torch.stack(terms).mean()
loss.backward()
put("mg.x", x); put("mg.labels", labels); put("mg.margin", [margin])
put("mg.loss", [loss.item()]); put("mg.dx", x.grad)


# ---- triplet with mining (Schroff et al. 2015; Hermans et al. 2017) ------------------
x0 = inp(10, 4)
labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 0, 2])
margin = 0.5


def pdist(x, squared):
    n = x.shape[0]
    rows = []
    for i in range(n):
        d2 = (x[i][None, :] - x).pow(2).sum(1)
        # sqrt only where non-zero: d(i,i) = 0 has no gradient
        rows.append(d2 if squared else torch.where(d2 > 0, d2.clamp(min=1e-30).sqrt(), d2))
    return torch.stack(rows)


def triplet(x, labels, margin, mining, squared):
    n = x.shape[0]
    D = pdist(x, squared)
    Dv = D.detach()
    terms, valid = [], 0
    for a in range(n):
        P = [j for j in range(n) if j != a and labels[j] == labels[a]]
        N = [j for j in range(n) if labels[j] != labels[a]]
        if not P or not N:
            continue
        if mining == "hard":
            p = max(P, key=lambda j: Dv[a, j])
            m = min(N, key=lambda j: Dv[a, j])
            terms.append(torch.clamp(D[a, p] - D[a, m] + margin, min=0))
            valid += 1
        elif mining == "all":
            for p in P:
                for m in N:
                    t = D[a, p] - D[a, m] + margin
                    if t.item() > 0:
                        terms.append(t)
        else:  # semi-hard, as tf.contrib/tfa TripletSemiHardLoss
            for p in P:
                beyond = [j for j in N if Dv[a, j] > Dv[a, p]]
                m = min(beyond, key=lambda j: Dv[a, j]) if beyond else max(N, key=lambda j: Dv[a, j])
                terms.append(torch.clamp(D[a, p] - D[a, m] + margin, min=0))
                valid += 1
    if mining == "all":
        return torch.stack(terms).mean() if terms else x.sum() * 0
    return torch.stack(terms).sum() / valid


put("tr.x", x0); put("tr.labels", labels); put("tr.margin", [margin])
for tag, mining, squared in [("tr_all", "all", 0), ("tr_hard", "hard", 0),
                             ("tr_semi", "semi", 0), ("tr_hard_sq", "hard", 1)]:
    x = x0.detach().clone().requires_grad_(True)
    loss = triplet(x, labels, margin, mining, squared)
    loss.backward()
    put(tag + ".loss", [loss.item()]); put(tag + ".dx", x.grad)


# ---- alignment and uniformity (Wang & Isola 2020), alpha = t = 2 ----------------------
xa = F.normalize(torch.randn(9, 5, dtype=torch.float32).double(), dim=1).float().double()
ya = F.normalize(torch.randn(9, 5, dtype=torch.float32).double(), dim=1).float().double()
put("au.x", xa); put("au.y", ya)
put("au.align", [(xa - ya).norm(dim=1).pow(2).mean().item()])
put("au.uniform", [torch.pdist(xa, p=2).pow(2).mul(-2).exp().mean().log().item()])


out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "loss_ref.bin")
with open(out, "wb") as f:
    f.write(b"CTLOSS01")
    f.write(struct.pack("<I", len(records)))
    for name, t in records:
        nb = name.encode("ascii")
        assert len(nb) < 32
        f.write(nb + b"\0" * (32 - len(nb)))
        f.write(struct.pack("<Q", t.numel()))
        f.write(t.numpy().astype("<f4").tobytes())
print("wrote %s: %d records, %d bytes" % (os.path.normpath(out), len(records), os.path.getsize(out)))
