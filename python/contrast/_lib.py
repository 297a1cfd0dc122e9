"""Finding and loading libcontrast.so, the C prototypes, and ContrastError.

The library is loaded on first use, not at import, so the parts of the package
that need no C (contrast.safetensors, contrast.torch) import without it.

Where the library is looked for, in order:
  1. $CONTRAST_LIB, a path to the file (an error if it is set and cannot be loaded);
  2. the package's own folder (libcontrast.so.0 or libcontrast.so placed beside it);
  3. the folder `make install` recorded in contrast/_install.py (PREFIX/lib);
  4. a source checkout: <repo>/build/libcontrast.so when the package is python/contrast;
  5. the system: ctypes.util.find_library("contrast"), then the dynamic loader's own
     search for libcontrast.so.0 (LD_LIBRARY_PATH, ld.so.cache).
"""
import ctypes
import ctypes.util
import os
import threading

_HERE = os.path.dirname(os.path.abspath(__file__))

# ct_status values (include/contrast/core.h)
CT_OK = 0
STATUS_NAMES = {0: "CT_OK", 1: "CT_ERR_ARG", 2: "CT_ERR_IO", 3: "CT_ERR_FORMAT", 4: "CT_ERR_NOMEM",
                5: "CT_ERR_NUMERIC", 6: "CT_ERR_STATE"}


class ContrastError(Exception):
    """A libcontrast call failed: .status (the ct_status number), .status_name
    ("CT_ERR_IO", ...) and .message (ct_errmsg(), which names the file and the problem)."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = STATUS_NAMES.get(self.status, "ct_status %d" % self.status)
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


def _candidates():
    out = []
    env = os.environ.get("CONTRAST_LIB")
    if env:
        return [env]  # explicit: nothing else is tried
    out += [os.path.join(_HERE, n) for n in ("libcontrast.so.0", "libcontrast.so")]
    try:
        from . import _install  # written by `make install`
        out.append(os.path.join(_install.LIBDIR, "libcontrast.so.0"))
    except ImportError:
        pass
    out.append(os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build", "libcontrast.so"))
    return out


def _load():
    tried = []
    for path in _candidates():
        if os.environ.get("CONTRAST_LIB") or os.path.exists(path):
            try:
                return ctypes.CDLL(path), path
            except OSError as e:
                if os.environ.get("CONTRAST_LIB"):
                    raise ImportError("contrast: CONTRAST_LIB=%s cannot be loaded: %s" % (path, e)) from None
                tried.append("%s (%s)" % (path, e))
        else:
            tried.append(path + " (absent)")
    for name in (ctypes.util.find_library("contrast"), "libcontrast.so.0"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append("%s (%s)" % (name, e))
    raise ImportError("contrast: libcontrast.so not found; tried " + ", ".join(tried) +
                      ". Build it (make), install it (make install), or set CONTRAST_LIB to its path.")


_lock = threading.Lock()
_lib = None
lib_path = None

c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_double_p = ctypes.POINTER(ctypes.c_double)


def _prototypes(L):
    from . import _abi
    i64, i32, f32, vp, cp = ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_char_p
    stats_p = ctypes.POINTER(_abi.LossStats)
    protos = {
        "ct_errmsg": (cp, []),
        "ct_status_name": (cp, [i32]),
        "ct_set_threads": (None, [i32]),
        "ct_get_threads": (i32, []),
        "ct_abi_layout": (i64, [cp, cp]),
        "ct_abi_fields": (i32, [cp, ctypes.POINTER(cp), i32]),
        "ct_checkpoint_load_model": (i32, [vp, cp]),
        "ct_model_free": (None, [vp]),
        "ct_model_feature_dim": (i64, [vp]),
        "ct_model_embed_dim": (i64, [vp]),
        "ct_model_embed": (i32, [vp, c_float_p, i64, i32, i64, c_float_p]),
        "ct_train_config_default": (None, [ctypes.POINTER(_abi.TrainConfig)]),
        "ct_train_run": (i32, [ctypes.POINTER(_abi.TrainConfig), ctypes.POINTER(_abi.TrainResult)]),
        "ct_method_parse": (i32, [cp]),
        "ct_method_name": (cp, [i32]),
        "ct_encoder_parse": (i32, [cp, ctypes.POINTER(ctypes.c_int)]),
        "ct_encoder_name": (cp, [i32]),
        "ct_optim_type_parse": (i32, [cp]),
        "ct_optim_type_name": (cp, [i32]),
        "ct_optim_config_default": (None, [ctypes.POINTER(_abi.OptimConfig), i32]),
        "ct_ntxent_loss": (i32, [stats_p, c_float_p, c_float_p, i64, i64, f32, vp, ctypes.c_size_t]),
        "ct_supcon_loss": (i32, [stats_p, c_float_p, c_float_p, c_int32_p, i64, i64, i64, f32, vp,
                                 ctypes.c_size_t]),
        "ct_infonce_loss": (i32, [stats_p, c_float_p, c_float_p, c_float_p, c_float_p, c_float_p, c_float_p,
                                  i64, i64, i64, f32, vp, ctypes.c_size_t]),
        "ct_clip_loss": (i32, [stats_p, c_float_p, c_float_p, c_float_p, c_float_p, c_float_p, f32, i64, i64,
                               vp, ctypes.c_size_t]),
        "ct_pairs_max": (i64, [i64]),
        "ct_pairs_all": (i64, [ctypes.POINTER(_abi.Pair), c_int32_p, i64]),
        "ct_margin_loss": (i32, [stats_p, c_float_p, c_float_p, ctypes.POINTER(_abi.Pair), i64, i64, i64, f32]),
        "ct_triplet_loss": (i32, [stats_p, c_float_p, c_float_p, c_int32_p, i64, i64, f32, i32, i32, vp,
                                  ctypes.c_size_t]),
        # text (include/contrast/text.h, train.h) and image-caption data (captions.h)
        "ct_text_dataset_load": (i32, [ctypes.POINTER(_abi.TextDataset), cp, i32]),
        "ct_text_dataset_free": (None, [ctypes.POINTER(_abi.TextDataset)]),
        "ct_caption_dataset_load": (i32, [ctypes.POINTER(_abi.CaptionDataset), cp, i32, i32]),
        "ct_caption_dataset_free": (None, [ctypes.POINTER(_abi.CaptionDataset)]),
        "ct_tokenizer_train": (i32, [ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_size_t), i64,
                                     ctypes.POINTER(_abi.TokenizerOpts)]),
        "ct_tokenizer_free": (None, [vp]),
        "ct_tokenizer_vocab_size": (ctypes.c_int32, [vp]),
        "ct_tokenizer_encode_batch": (i32, [vp, ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_size_t), i64, i32, i64,
                                            c_int32_p, ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(i64)]),
        "ct_tokenizer_decode": (i32, [vp, c_int32_p, i64, ctypes.c_char_p, ctypes.c_size_t,
                                      ctypes.POINTER(ctypes.c_size_t)]),
        "ct_tokenizer_save": (i32, [vp, cp]),
        "ct_tokenizer_load": (i32, [ctypes.POINTER(vp), cp]),
        "ct_checkpoint_load_tokenizer": (i32, [ctypes.POINTER(vp), cp]),
        "ct_model_takes_tokens": (i32, [vp]),
        "ct_embed_texts": (i32, [c_float_p, vp, vp, ctypes.POINTER(vp), ctypes.POINTER(ctypes.c_size_t), i64, i32,
                                 i64]),
    }
    for name, (res, args) in protos.items():
        try:
            fn = getattr(L, name)
        except AttributeError:
            raise ImportError("contrast: %s lacks %s (an older libcontrast? rebuild it)" % (lib_path, name)) from None
        fn.restype = res
        fn.argtypes = args


def lib():
    """The loaded library, with the prototypes of every function the package calls."""
    global _lib, lib_path
    if _lib is None:
        with _lock:
            if _lib is None:
                L, lib_path = _load()
                _prototypes(L)
                # as every contrast command does (--threads 0): our OpenMP loops on all
                # cores, OpenBLAS pinned to one thread per caller. Without it OpenBLAS
                # splits the whitening's GEMM its own way and the bits differ from
                # contrast embed's. contrast.set_threads(n) changes it.
                L.ct_set_threads(0)
                _lib = L
    return _lib


def errmsg():
    return lib().ct_errmsg().decode("utf-8", "replace")


def check(status):
    """Raises ContrastError for a non-zero ct_status, with the library's message."""
    if status != CT_OK:
        raise ContrastError(status, errmsg())
