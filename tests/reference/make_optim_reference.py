#!/usr/bin/python3
"""make_optim_reference.py: reference optimizer steps for tests/test_optim.c.

Runs a few steps of torch.optim.SGD (momentum, Nesterov), torch.optim.AdamW and a
hand-written LARS (the solo-learn / SimCLR formula) on two small tensors: a weight
(4, 3) with weight decay and a bias (3,) without (a separate param group with
weight_decay 0, as the C side's CT_TENSOR_NO_DECAY). Gradients are fixed inputs
(set on .grad directly), different at each step, so the fixture tests the update
rule alone. Deterministic: the inputs come from a fixed torch.Generator seed.

Output: tests/fixtures/optim_ref.bin, little-endian:
  int32 nparams, nsteps, ncases
  float32 p0[nparams]                 initial parameters (weight then bias)
  float32 grads[nsteps][nparams]
  float32 lrs[nsteps]
  per case (order of CASES below): float32 params_after[nsteps][nparams]
Run: /usr/bin/python3 tests/reference/make_optim_reference.py
"""
import os
import struct

import torch

NSTEPS = 4
LRS = [0.1, 0.3, 0.2, 0.05]
# name, type, kwargs; the C test lists the same cases in the same order.
CASES = [
    ("sgd_plain", "sgd", dict(momentum=0.0, nesterov=False, weight_decay=0.1)),
    ("sgd_momentum", "sgd", dict(momentum=0.9, nesterov=False, weight_decay=0.1)),
    ("sgd_nesterov", "sgd", dict(momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("adamw", "adamw", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
    ("lars", "lars", dict(momentum=0.9, nesterov=False, weight_decay=0.01, eta=0.02, eps=1e-8)),
    ("lars_nesterov", "lars", dict(momentum=0.9, nesterov=True, weight_decay=0.1, eta=0.05, eps=1e-8)),
]


def lars_step(params, bufs, lr, momentum, nesterov, weight_decay, eta, eps, exclude):
    """solo-learn's LARS: trust ratio on (g + wd*w) for adapted tensors, then SGD momentum."""
    with torch.no_grad():
        for i, p in enumerate(params):
            d_p = p.grad.clone()
            if not exclude[i]:
                p_norm = torch.norm(p)
                g_norm = torch.norm(p.grad)
                if p_norm != 0 and g_norm != 0:
                    lars_lr = p_norm / (g_norm + p_norm * weight_decay + eps) * eta
                    d_p = (d_p + weight_decay * p) * lars_lr
            if momentum != 0:
                bufs[i] = momentum * bufs[i] + d_p
                d_p = d_p + momentum * bufs[i] if nesterov else bufs[i]
            p.sub_(lr * d_p)


def main():
    gen = torch.Generator().manual_seed(1234)
    w0 = torch.randn(4, 3, generator=gen, dtype=torch.float32)
    b0 = torch.randn(3, generator=gen, dtype=torch.float32) * 0.5
    n = w0.numel() + b0.numel()
    grads = [torch.randn(n, generator=gen, dtype=torch.float32) for _ in range(NSTEPS)]

    out = [struct.pack("<3i", n, NSTEPS, len(CASES))]
    out.append(torch.cat([w0.flatten(), b0]).numpy().astype("<f4").tobytes())
    for g in grads:
        out.append(g.numpy().astype("<f4").tobytes())
    out.append(torch.tensor(LRS, dtype=torch.float32).numpy().astype("<f4").tobytes())

    for name, kind, kw in CASES:
        w = w0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        if kind == "sgd":
            opt = torch.optim.SGD([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=LRS[0], **kw)
        elif kind == "adamw":
            opt = torch.optim.AdamW([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=LRS[0], **kw)
        else:
            opt = None
            bufs = [torch.zeros_like(w), torch.zeros_like(b)]
        for s in range(NSTEPS):
            w.grad = grads[s][: w.numel()].reshape(4, 3).clone()
            b.grad = grads[s][w.numel():].clone()
            if opt is not None:
                for grp in opt.param_groups:
                    grp["lr"] = LRS[s]
                opt.step()
            else:
                lars_step([w, b], bufs, LRS[s], kw["momentum"], kw["nesterov"], kw["weight_decay"],
                          kw["eta"], kw["eps"], exclude=[False, True])
            out.append(torch.cat([w.detach().flatten(), b.detach()]).numpy().astype("<f4").tobytes())

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "fixtures", "optim_ref.bin")
    with open(path, "wb") as f:
        f.write(b"".join(out))
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
