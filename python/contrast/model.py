"""A trained encoder from a checkpoint, embedding NumPy batches of images."""
import ctypes
import threading

import numpy as np

from . import images as _images
from ._lib import check, lib, c_float_p
from .safetensors import read_metadata

FEATURES = {"h": 0, "z": 1, "h_raw": 2}  # ct_feature_kind


def _typed(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def config_from_metadata(meta):
    """The checkpoint's metadata as a nested dict: {"model": {"encoder": "cnn",
    "width": 8, ...}, "train": {...}, "data": {"mean": [...], "std": [...]}, ...};
    numbers as int or float, the free-form strings (train.data, train.augment,
    train.local_augment) as they are."""
    cfg = {}
    for k, v in meta.items():
        head, _, rest = k.partition(".")
        if head == "data" and rest in ("mean", "std"):
            val = [float(s) for s in v.split(",")]
        elif k in ("train.data", "train.augment", "train.local_augment"):
            val = v
        else:
            val = _typed(v)
        if rest:
            cfg.setdefault(head, {})[rest] = val
        else:
            cfg[head] = val
    return cfg


class Model:
    """A checkpoint's model (ct_checkpoint_load_model): parameters, BatchNorm
    statistics and whitening, in eval mode.

      m = contrast.load("runs/x/checkpoint.safetensors")
      h = m.embed(images)           # (N, m.feature_dim) float32, as `contrast embed`

    One model serves one call at a time (a lock guards its activation arena);
    close() frees it (also at garbage collection, and with `with`)."""

    def __init__(self, path):
        L = lib()
        self.path = str(path)
        size = L.ct_abi_layout(b"ct_model", None)
        if size <= 0:
            raise ImportError("contrast: libcontrast does not report sizeof(ct_model)")
        self._m = ctypes.create_string_buffer(size)
        check(L.ct_checkpoint_load_model(self._m, self.path.encode()))  # checks the file first
        self._open = True
        self.metadata = read_metadata(self.path)
        self.config = config_from_metadata(self.metadata)
        self._lock = threading.Lock()
        self.feature_dim = int(L.ct_model_feature_dim(self._m))
        self.embed_dim = int(L.ct_model_embed_dim(self._m))
        mc = self.config.get("model", {})
        self.in_shape = (int(mc["in_c"]), int(mc["in_h"]), int(mc["in_w"]))
        self.encoder = mc.get("encoder")
        self.takes_tokens = bool(L.ct_model_takes_tokens(self._m))  # a text model: embed_texts
        self._tokenizer = None

    def normalisation(self):
        """(mean, std) per channel that embed() applies (data.mean / data.std of the
        checkpoint, or the known constants of its dataset for older checkpoints)."""
        return _images.normalisation(self.metadata)

    def embed(self, images, which="h", batch=512, layout=None, mean=None, std=None):
        """Features of a batch of images, float32 (N, D), as `contrast embed` computes
        them for a dataset: the same normalisation, eval mode, bit for bit.

        images: uint8 (0..255) or float (already in [0, 1]), NCHW or NHWC (detected
                from the model's channel count, or layout="NCHW"/"NHWC"), see
                contrast.images.
        which:  "h" the encoder's features, whitened when the checkpoint carries a
                whitening (contrast embed's default); "h_raw" before the whitening
                (--no-whiten); "z" the projection head's output (--head).
        batch:  images per forward pass (512, as contrast embed). The whitening
                runs over all N rows at once, as contrast embed's over its
                dataset, so the normalised batch (N x C x H x W float32) is
                held in memory once.
        mean, std: per-channel normalisation instead of the checkpoint's."""
        if which not in FEATURES:
            raise ValueError("which must be one of %s, not %r" % (", ".join(FEATURES), which))
        if batch < 1:
            raise ValueError("batch must be >= 1")
        if self.takes_tokens:
            raise ValueError("%s is a text model: use embed_texts" % self.path)
        c, h, w = self.in_shape
        if mean is None or std is None:
            m0, s0 = self.normalisation()
            mean = m0 if mean is None else mean
            std = s0 if std is None else std
        mean = tuple(mean) if np.ndim(mean) else (float(mean),) * c
        std = tuple(std) if np.ndim(std) else (float(std),) * c
        x = _images.prepare(images, mean, std, c, h, w, layout)
        return self.embed_input(x, which, batch)

    def embed_input(self, x, which="h", batch=512):
        """Features of model inputs x, float32 (N, c, h, w), already normalised (as
        contrast.images.prepare makes them)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        c, h, w = self.in_shape
        if x.ndim != 4 or x.shape[1:] != (c, h, w):
            raise ValueError("model input must be (N, %d, %d, %d), got %s" % (c, h, w, x.shape))
        n = x.shape[0]
        dim = self.embed_dim if which == "z" else self.feature_dim
        out = np.empty((n, dim), dtype=np.float32)
        if n == 0:
            return out
        L = lib()
        kind = FEATURES[which]
        with self._lock:
            if not self._open:
                raise ValueError("model is closed")
            check(L.ct_model_embed(self._m, x.ctypes.data_as(c_float_p), n, kind, batch,
                                   out.ctypes.data_as(c_float_p)))
        return out

    @property
    def tokenizer(self):
        """The tokenizer a text checkpoint carries (contrast.Tokenizer), read on first use."""
        if self._tokenizer is None:
            from .text import Tokenizer
            self._tokenizer = Tokenizer.from_checkpoint(self.path)
        return self._tokenizer

    def embed_texts(self, texts, which="h", batch=0):
        """Features of a list of texts (str or bytes), float32 (n, D), as `contrast embed
        --text` computes them: each text as BOS, its tokens, EOS, cut to the model's
        context, eval mode. which: "h" the encoder's pooled features (D =
        feature_dim; what retrieval uses) or "z" the projection head's output
        (--head). batch: texts per forward pass (0: 256)."""
        from .text import _CTexts
        if not self.takes_tokens:
            raise ValueError("%s is an image model (encoder %s): use embed" % (self.path, self.encoder))
        if which not in ("h", "z"):
            raise ValueError("which must be 'h' or 'z' for a text model, not %r" % (which,))
        if batch < 0:
            raise ValueError("batch must be >= 0")
        ct = _CTexts(texts)
        tok = self.tokenizer
        dim = self.embed_dim if which == "z" else self.feature_dim
        out = np.empty((ct.n, dim), dtype=np.float32)
        if ct.n == 0:
            return out
        with self._lock:
            if not self._open:
                raise ValueError("model is closed")
            check(lib().ct_embed_texts(out.ctypes.data_as(c_float_p), self._m, tok._t, ct.ptrs, ct.lens, ct.n,
                                       FEATURES[which], batch))
        return out

    def close(self):
        if getattr(self, "_tokenizer", None) is not None:
            self._tokenizer.close()
        if getattr(self, "_open", False):
            with self._lock:
                lib().ct_model_free(self._m)
                self._open = False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<contrast.Model %s %s: features %d, embedding %d>" % (self.encoder, self.path, self.feature_dim,
                                                                      self.embed_dim)


def load(path):
    """The model in a checkpoint written by contrast train (contrast.Model)."""
    return Model(path)
