"""A CLIP checkpoint (`contrast train --method clip`): both towers, embedding images and
texts into one space (include/contrast/clip.h, docs/clip.md).

    c = contrast.load_clip("runs/clip/checkpoint.safetensors")
    img = c.embed_images(images)          # (n, dim) unit rows; uint8 RGB (n, 3, S, S) or NHWC
    txt = c.embed_texts(["a red square"]) # (k, dim) unit rows
    logits = c.logit_scale_exp * img @ txt.T
"""
import ctypes
import threading

import numpy as np

from . import _abi
from . import images as _images
from ._lib import check, lib, c_float_p
from .safetensors import read_metadata
from .text import _CTexts


class Clip:
    """ct_clip_load's model: image tower, text tower, tokenizer, scale, normalisation.
    Attributes: dim (shared embedding size), size (image side), logit_scale (ln of
    the similarity scale), mean / std (the image normalisation), metadata."""

    def __init__(self, path):
        L = lib()
        cls = _abi.clip_mirror()
        _abi.verify(cls)
        self.path = str(path)
        self._c = cls()
        check(L.ct_clip_load(ctypes.byref(self._c), self.path.encode()))
        self._open = True
        self._lock = threading.Lock()
        self.dim, self.size = int(self._c.dim), int(self._c.size)
        self.logit_scale = float(self._c.logit_scale)
        self.mean = tuple(float(v) for v in self._c.mean)
        self.std = tuple(float(v) for v in self._c.std)
        self.metadata = read_metadata(self.path)

    @property
    def logit_scale_exp(self):
        return float(np.exp(np.float32(self.logit_scale)))

    def embed_images(self, images, layout=None):
        """Unit-length embeddings (n, dim) float32 of uint8 RGB images at the model's size,
        alpha already composited on white (as contrast.caption_dataset gives them):
        (n, 3, size, size) NCHW or (n, size, size, 3) NHWC (layout= when both fit)."""
        x = np.asarray(images)
        if x.dtype != np.uint8:
            raise ValueError("embed_images: uint8 RGB images (0..255), not %s" % x.dtype)
        x = np.ascontiguousarray(_images.to_nchw(x, 3, self.size, self.size, layout))
        out = np.empty((x.shape[0], self.dim), np.float32)
        if x.shape[0] == 0:
            return out
        with self._lock:
            self._check_open()
            check(lib().ct_clip_embed_images(ctypes.byref(self._c), x.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                             x.shape[0], out.ctypes.data_as(c_float_p)))
        return out

    def embed_texts(self, texts):
        """Unit-length embeddings (k, dim) float32 of a list of texts (str or bytes),
        tokenized as in training (BOS, tokens, EOS cut to the context)."""
        ct = _CTexts(texts)
        out = np.empty((ct.n, self.dim), np.float32)
        if ct.n == 0:
            return out
        with self._lock:
            self._check_open()
            check(lib().ct_clip_embed_texts(ctypes.byref(self._c), ct.ptrs, ct.lens, ct.n,
                                            out.ctypes.data_as(c_float_p)))
        return out

    def _check_open(self):
        if not self._open:
            raise ValueError("model is closed")

    def close(self):
        if getattr(self, "_open", False):
            with self._lock:
                lib().ct_clip_free(ctypes.byref(self._c))
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
        return "<contrast.Clip %s: %dx%d images, dim %d>" % (self.path, self.size, self.size, self.dim)


def load_clip(path):
    """The CLIP model in a `contrast train --method clip` checkpoint (contrast.Clip)."""
    return Clip(path)
