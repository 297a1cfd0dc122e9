"""Text and image-caption data, and the byte-level BPE tokenizer, as the library
loads and encodes them (include/contrast/text.h, captions.h).

    d = contrast.text_dataset("pairs:train.tsv")        # or "text:FILE", "debian-descriptions"
    tok = contrast.Tokenizer.train(d.texts, vocab=8192)  # or Tokenizer.from_checkpoint(path)
    ids, valid = tok.encode(["a sentence"], context=32)  # (n, T) int32, uint8: BOS text EOS, PAD
    c = contrast.caption_dataset("captions:DIR", size=32)

Strings. Texts go to the library as UTF-8; a str that came from bytes that are not
UTF-8 (decoded with errors="surrogateescape", as text_dataset and decode do) goes
back as the same bytes. bytes are passed as they are.
"""
import ctypes

import numpy as np

from . import _abi
from ._lib import check, lib, c_int32_p

_U8P = ctypes.POINTER(ctypes.c_uint8)
BOS, EOS, PAD = 257, 258, 256  # CT_TOK_BOS, CT_TOK_EOS, CT_TOK_PAD
_ADD_BOS_EOS = 3               # CT_TOK_ADD_BOS | CT_TOK_ADD_EOS


def _str(b):
    return b.decode("utf-8", "surrogateescape")


def _bytes(t):
    if isinstance(t, bytes):
        return t
    if isinstance(t, str):
        return t.encode("utf-8", "surrogateescape")
    raise TypeError("texts must be str or bytes, not %s" % type(t).__name__)


class _CTexts:
    """n texts as the library takes them: char *texts[n], size_t lens[n] (kept alive
    as long as this object)."""

    def __init__(self, texts):
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts: a list of strings, not one string")
        self.data = [_bytes(t) for t in texts]
        self.n = len(self.data)
        self.bufs = [ctypes.create_string_buffer(b, len(b) + 1) for b in self.data]
        self.ptrs = (ctypes.c_void_p * max(self.n, 1))(*[ctypes.addressof(b) for b in self.bufs])
        self.lens = (ctypes.c_size_t * max(self.n, 1))(*[len(b) for b in self.data])


def _strings(pp, n):
    return [_str(pp[i]) for i in range(n)]  # pp: char ** (c_char_p items read as bytes)


# ---- text datasets ----------------------------------------------------------------------

class TextDataset:
    """One split of a text dataset (ct_text_dataset_load), copied into Python:
      texts      list[str]: the split's texts as the C side holds them (a pairs file's
                 texts once per occurrence, so the same string may appear twice; bytes
                 that are not UTF-8 decoded with errors="surrogateescape")
      anchors, positives  int64 (npairs,): indices into texts (empty for text:FILE)
      labels     int32 (npairs,) or None;  label_names  list[str] or None
      name       "text", "pairs" or "debian-descriptions" """

    def __init__(self, spec, train):
        L = lib()
        _abi.verify(_abi.TextDataset)
        ds = _abi.TextDataset()
        check(L.ct_text_dataset_load(ctypes.byref(ds), str(spec).encode(), 1 if train else 0))
        try:
            self.spec, self.train, self.name = str(spec), bool(train), _str(ds.name)
            self.texts = [_str(ctypes.string_at(ds.text[i], ds.len[i])) for i in range(ds.ntexts)]
            n = ds.npairs
            self.anchors = np.ctypeslib.as_array(ds.anchor, (n,)).copy() if n else np.zeros(0, np.int64)
            self.positives = np.ctypeslib.as_array(ds.positive, (n,)).copy() if n else np.zeros(0, np.int64)
            self.labels = np.ctypeslib.as_array(ds.label, (n,)).copy() if n and ds.label else None
            self.label_names = _strings(ds.label_name, ds.nlabels) if ds.label else None
        finally:
            L.ct_text_dataset_free(ctypes.byref(ds))

    def __len__(self):
        return len(self.anchors) if len(self.anchors) else len(self.texts)

    def __repr__(self):
        return "<contrast.TextDataset %s: %d texts, %d pairs>" % (self.spec, len(self.texts), len(self.anchors))


def text_dataset(spec, train=True):
    """A text dataset split as `contrast train --data SPEC` loads it: "text:FILE",
    "pairs:FILE" (anchor TAB positive [TAB label]) or "debian-descriptions" (train
    selects the split). ContrastError naming the file and line on bad input."""
    return TextDataset(spec, train)


# ---- the tokenizer ------------------------------------------------------------------------

class Tokenizer:
    """The library's byte-level BPE tokenizer (ct_tokenizer): ids 0..255 the bytes, 256
    PAD, 257 BOS, 258 EOS, then the learned merges. Make one with Tokenizer.train,
    Tokenizer.from_checkpoint or Tokenizer.load."""

    def __init__(self, handle):
        self._t = handle  # a ct_tokenizer * (c_void_p) this object owns
        self.vocab_size = int(lib().ct_tokenizer_vocab_size(self._t))

    @classmethod
    def train(cls, texts, vocab=8192):
        """Learns merges from texts (a list of str or bytes), up to vocab ids (bytes and
        specials included), as contrast train does on its training split."""
        if int(vocab) <= 259:
            raise ValueError("vocab must be > 259 (256 bytes + PAD, BOS, EOS), not %r" % vocab)
        ct = _CTexts(texts)
        opts = _abi.TokenizerOpts(int(vocab))
        h = ctypes.c_void_p()
        check(lib().ct_tokenizer_train(ctypes.byref(h), ct.ptrs, ct.lens, ct.n, ctypes.byref(opts)))
        return cls(h)

    @classmethod
    def from_checkpoint(cls, path):
        """The tokenizer a text checkpoint carries (its "tokenizer" metadata)."""
        h = ctypes.c_void_p()
        check(lib().ct_checkpoint_load_tokenizer(ctypes.byref(h), str(path).encode()))
        return cls(h)

    @classmethod
    def from_string(cls, text, what="tokenizer"):
        """A tokenizer from its serialised text (a checkpoint's "tokenizer" metadata,
        or what save() writes), validated as untrusted input."""
        b = _bytes(text)
        h = ctypes.c_void_p()
        check(lib().ct_tokenizer_deserialize(ctypes.byref(h), b, len(b), str(what).encode()))
        return cls(h)

    @classmethod
    def load(cls, path):
        """A tokenizer saved with save() (ct_tokenizer_load)."""
        h = ctypes.c_void_p()
        check(lib().ct_tokenizer_load(ctypes.byref(h), str(path).encode()))
        return cls(h)

    def save(self, path):
        check(lib().ct_tokenizer_save(self._t, str(path).encode()))

    def encode(self, texts, context=32):
        """(ids, valid) for a list of texts: ids int32 (n, context), each row BOS, the
        text's tokens (cut to fit), EOS, then PAD; valid uint8 (n, context), 1 for a
        real token (BOS and EOS included), 0 for padding. What the text transformer
        with --context `context` reads."""
        context = int(context)
        if context < 2:
            raise ValueError("context must be >= 2 (BOS and EOS), not %d" % context)
        ct = _CTexts(texts)
        ids = np.empty((ct.n, context), np.int32)
        valid = np.empty((ct.n, context), np.uint8)
        if ct.n:
            check(lib().ct_tokenizer_encode_batch(self._t, ct.ptrs, ct.lens, ct.n, _ADD_BOS_EOS, context,
                                                  ids.ctypes.data_as(c_int32_p), valid.ctypes.data_as(_U8P),
                                                  None))
        return ids, valid

    def decode_bytes(self, ids):
        """The bytes of a row of ids (PAD, BOS and EOS give none)."""
        a = np.ascontiguousarray(ids, dtype=np.int32).ravel()
        n = ctypes.c_size_t()
        L = lib()
        check(L.ct_tokenizer_decode(self._t, a.ctypes.data_as(c_int32_p), a.size, None, 0, ctypes.byref(n)))
        buf = ctypes.create_string_buffer(n.value + 1)
        check(L.ct_tokenizer_decode(self._t, a.ctypes.data_as(c_int32_p), a.size, buf, n.value + 1,
                                    ctypes.byref(n)))
        return buf.raw[:n.value]

    def decode(self, ids):
        """The text of a row of ids, as str (bytes that are not UTF-8 decoded with
        errors="surrogateescape", so decode(encode(t)) == t whenever nothing was cut)."""
        return _str(self.decode_bytes(ids))

    def close(self):
        if getattr(self, "_t", None):
            lib().ct_tokenizer_free(self._t)
            self._t = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<contrast.Tokenizer: %d ids>" % self.vocab_size


# ---- image-caption data --------------------------------------------------------------------

class CaptionDataset:
    """One split of an image-caption set (ct_caption_dataset_load), copied into Python:
      images       uint8 (n, 3, size, size) RGB, alpha composited on white
      captions     list[list[str]]: every caption of image i
      files        list[str]: where image i came from
      labels       int32 (n,): class ids, or each image its own label when the data has
                   no classes;  class_names list[str] or None
      mean, std    per-channel normalisation measured on this split (3 floats each,
                   the float32 values the trainer uses)"""

    def __init__(self, spec, train, size):
        L = lib()
        _abi.verify(_abi.CaptionDataset)
        cd = _abi.CaptionDataset()
        check(L.ct_caption_dataset_load(ctypes.byref(cd), str(spec).encode(), 1 if train else 0, int(size)))
        try:
            img = cd.img
            n = img.n
            self.spec, self.train, self.size = str(spec), bool(train), int(size)
            shape = (n, img.c, img.h, img.w)
            self.images = np.ctypeslib.as_array(img.images, shape).copy() if n else np.zeros(shape, np.uint8)
            self.labels = np.ctypeslib.as_array(img.labels, (n,)).copy() if n else np.zeros(0, np.int32)
            self.mean = tuple(float(v) for v in img.mean[:img.c])
            self.std = tuple(float(v) for v in img.std[:img.c])
            start = np.ctypeslib.as_array(cd.caption_start, (n + 1,)).copy() if n else np.zeros(1, np.int64)
            allcap = _strings(cd.captions, int(start[-1]))
            self.captions = [allcap[start[i]:start[i + 1]] for i in range(n)]
            self.files = _strings(cd.files, n)
            self.class_names = _strings(cd.class_names, img.num_classes) if cd.class_names else None
        finally:
            L.ct_caption_dataset_free(ctypes.byref(cd))

    def __len__(self):
        return len(self.files)

    def __repr__(self):
        return "<contrast.CaptionDataset %s: %d images, %d captions>" % (
            self.spec, len(self.files), sum(len(c) for c in self.captions))


def caption_dataset(spec, train=True, size=32):
    """An image-caption split as `contrast train --method clip --data SPEC` loads it:
    "captions:DIR" (DIR/captions.tsv: FILE TAB CAPTION [TAB CLASS]) or "emoji"; every
    image resized to size x size, 3 channels."""
    return CaptionDataset(spec, train, size)
