"""The contrastive objectives of include/contrast/loss.h on NumPy arrays.

Each returns (loss, grad, stats): the mean loss (a float), the gradient of the loss
with respect to the embeddings (float32 arrays shaped as the inputs; a tuple where
there are several inputs) and the statistics dict (loss, top1, pos_sim, neg_sim,
align, uniform, active, count; docs/objectives.md). Inputs are converted to
C-contiguous float32 (labels to int32). A bad shape or temperature, or a non-finite
loss, raises contrast.ContrastError with the library's message.
"""
import ctypes

import numpy as np

from . import _abi
from ._lib import check, lib, c_float_p, c_int32_p

MINING = {"all": 0, "hard": 1, "semihard": 2}  # ct_mining


def _f32(a, name, ndim=2):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != ndim:
        raise ValueError("%s: expected %d dimensions, got shape %s" % (name, ndim, a.shape))
    return a


def _labels(labels, n):
    lab = np.ascontiguousarray(labels, dtype=np.int32)
    if lab.shape != (n,):
        raise ValueError("labels: expected shape (%d,), got %s" % (n, lab.shape))
    return lab


def _p(a):
    return a.ctypes.data_as(c_float_p)


def _stats(st):
    return {f: getattr(st, f) for f, _ in _abi.LossStats._fields_}


def _call(fn, *args):
    _abi.verify(_abi.LossStats)
    st = _abi.LossStats()
    check(fn(ctypes.byref(st), *args))
    return st


def ntxent(z, tau=0.1):
    """NT-Xent (SimCLR) over z (2n, d): rows [0, n) view 1, [n, 2n) view 2; returns
    (loss, dz, stats)."""
    z = _f32(z, "z")
    if z.shape[0] % 2:
        raise ValueError("ntxent: z needs an even number of rows (two views), got %d" % z.shape[0])
    dz = np.empty_like(z)
    st = _call(lib().ct_ntxent_loss, _p(dz), _p(z), z.shape[0] // 2, z.shape[1], tau, None, 0)
    return st.loss, dz, _stats(st)


def supcon(z, labels, tau=0.1, views=2):
    """Supervised contrastive loss: z (views*n, d) view-major (row v*n + i is view v
    of sample i), labels (n); returns (loss, dz, stats)."""
    z = _f32(z, "z")
    if views < 1 or z.shape[0] % views:
        raise ValueError("supcon: %d rows are not %d views of the same samples" % (z.shape[0], views))
    n = z.shape[0] // views
    lab = _labels(labels, n)
    dz = np.empty_like(z)
    st = _call(lib().ct_supcon_loss, _p(dz), _p(z), lab.ctypes.data_as(c_int32_p), n, views, z.shape[1], tau,
               None, 0)
    return st.loss, dz, _stats(st)


def infonce(q, pos, neg, tau=0.1):
    """InfoNCE: queries q (n, d), their positives pos (n, d), shared negatives neg
    (k, d); returns (loss, (dq, dpos, dneg), stats)."""
    q, pos, neg = _f32(q, "q"), _f32(pos, "pos"), _f32(neg, "neg")
    if pos.shape != q.shape or neg.shape[1] != q.shape[1]:
        raise ValueError("infonce: q %s, pos %s, neg %s: q and pos must match, neg share d" %
                         (q.shape, pos.shape, neg.shape))
    dq, dpos, dneg = np.empty_like(q), np.empty_like(pos), np.empty_like(neg)
    st = _call(lib().ct_infonce_loss, _p(dq), _p(dpos), _p(dneg), _p(q), _p(pos), _p(neg), q.shape[0],
               neg.shape[0], q.shape[1], tau, None, 0)
    return st.loss, (dq, dpos, dneg), _stats(st)


def clip(img, txt, logit_scale):
    """CLIP's symmetric loss of img (n, d) against txt (n, d), matched by row;
    logit_scale is the log of the logits' scale (CLIP's learnable parameter; the
    scale exp(logit_scale) is clamped at 100). Returns (loss, (dimg, dtxt,
    dlogit_scale), stats)."""
    img, txt = _f32(img, "img"), _f32(txt, "txt")
    if img.shape != txt.shape:
        raise ValueError("clip: img %s and txt %s differ" % (img.shape, txt.shape))
    dimg, dtxt, ds = np.empty_like(img), np.empty_like(txt), np.zeros(1, np.float32)
    st = _call(lib().ct_clip_loss, _p(dimg), _p(dtxt), _p(ds), _p(img), _p(txt), logit_scale, img.shape[0],
               img.shape[1], None, 0)
    return st.loss, (dimg, dtxt, float(ds[0])), _stats(st)


def margin(x, labels, margin=1.0):
    """The margin contrastive loss (Hadsell et al.) over every pair (i < j) of the
    rows of x (n, d) with their labels (n): same label d^2/2, else max(0, margin -
    d)^2/2, d Euclidean. Returns (loss, dx, stats)."""
    x = _f32(x, "x")
    n = x.shape[0]
    lab = _labels(labels, n)
    L = lib()
    _abi.verify(_abi.Pair)
    pairs = (_abi.Pair * max(int(L.ct_pairs_max(n)), 1))()
    npairs = L.ct_pairs_all(pairs, lab.ctypes.data_as(c_int32_p), n)
    dx = np.empty_like(x)
    st = _call(L.ct_margin_loss, _p(dx), _p(x), pairs, npairs, n, x.shape[1], margin)
    return st.loss, dx, _stats(st)


def triplet(x, labels, margin=0.2, mining="semihard", squared=False):
    """The triplet loss with in-batch mining ("all", "hard" or "semihard") over x
    (n, d) and labels (n); d Euclidean, or squared. Returns (loss, dx, stats)."""
    if mining not in MINING:
        raise ValueError("mining must be one of %s, not %r" % (", ".join(MINING), mining))
    x = _f32(x, "x")
    lab = _labels(labels, x.shape[0])
    dx = np.empty_like(x)
    st = _call(lib().ct_triplet_loss, _p(dx), _p(x), lab.ctypes.data_as(c_int32_p), x.shape[0], x.shape[1],
               margin, MINING[mining], 1 if squared else 0, None, 0)
    return st.loss, dx, _stats(st)
