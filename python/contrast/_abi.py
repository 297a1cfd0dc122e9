"""ctypes mirrors of the public C structs the binding passes across.

Each mirror lists the fields exactly as the header declares them (order and
types). verify(cls) compares every offset, the size and the list of field names
with the library's own (ct_abi_layout / ct_abi_fields, src/train/abi.c), so a
header change that the mirror does not follow fails with a message naming the
field, instead of writing into the wrong one. The binding verifies a struct the
first time it uses it; tests/test_python.py verifies them all.
"""
import ctypes

_i32, _i64, _u64, _f32, _f64 = ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float, ctypes.c_double


class ModelConfig(ctypes.Structure):  # ct_model_config, include/contrast/model.h
    c_name = "ct_model_config"
    _fields_ = [("encoder", _i32), ("width", _i32), ("last_width", _i32), ("in_c", _i32), ("in_h", _i32),
                ("in_w", _i32), ("head_hidden", _i32), ("head_out", _i32), ("head_bn", _i32), ("whiten", _f32),
                ("seed", _u64), ("depth", _i32), ("heads", _i32), ("patch", _i32), ("vocab", _i32),
                ("context", _i32), ("causal", _i32), ("dropout", _f32), ("pool", _i32)]


class OptimConfig(ctypes.Structure):  # ct_optim_config, include/contrast/optim.h
    c_name = "ct_optim_config"
    _fields_ = [("type", _i32), ("momentum", _f32), ("nesterov", _i32), ("weight_decay", _f32), ("beta1", _f32),
                ("beta2", _f32), ("eps", _f32), ("lars_eta", _f32), ("lars_eps", _f32)]


class TrainEvent(ctypes.Structure):  # ct_train_event, include/contrast/train.h
    c_name = "ct_train_event"
    _fields_ = [("kind", _i32), ("epoch", _i32), ("epochs", _i32), ("step", _i64), ("batch", _i64),
                ("batches", _i64), ("loss", _f64), ("top1", _f64), ("images_per_s", _f64), ("seconds", _f64),
                ("eta_s", _f64), ("knn_top1", _f64), ("path", ctypes.c_char_p), ("message", ctypes.c_char_p)]


EVENT_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(TrainEvent), ctypes.c_void_p)


class TrainConfig(ctypes.Structure):  # ct_train_config, include/contrast/train.h
    c_name = "ct_train_config"
    _fields_ = [("method", _i32), ("data", ctypes.c_char * 512), ("augment", ctypes.c_char * 512),
                ("view_size", _i32), ("local_crops", _i32), ("local_size", _i32),
                ("local_augment", ctypes.c_char * 256), ("model", ModelConfig), ("optim", OptimConfig),
                ("epochs", _i32), ("batch", _i64), ("lr", _f32), ("warmup_epochs", _f32), ("final_lr_frac", _f32),
                ("temperature", _f32), ("seed", _u64), ("threads", _i32), ("loader_threads", _i32),
                ("limit", _i64), ("eval_every", _i32), ("knn_k", _i32), ("knn_t", _f32), ("final_probe", _i32),
                ("moco_m", _f32), ("moco_k", _i64), ("stop_after", _i32), ("sync_bn", _i32), ("recompute", _i32),
                ("dist_check", _i32), ("symmetric", _i32), ("out", ctypes.c_char * 512), ("overwrite", _i32),
                ("resume", ctypes.c_char * 512), ("resume_allow_changes", _i32), ("on_event", EVENT_FN),
                ("event_ctx", ctypes.c_void_p)]


class TrainResult(ctypes.Structure):  # ct_train_result, include/contrast/train.h
    c_name = "ct_train_result"
    _fields_ = [("epochs_done", _i32), ("steps", _i64), ("final_loss", _f64), ("final_top1", _f64),
                ("knn_top1", _f64), ("probe_top1", _f64), ("knn_top1_raw", _f64), ("r1", _f64), ("r10", _f64),
                ("mrr10", _f64), ("seconds", _f64),
                ("arena_bytes", ctypes.c_size_t), ("local_arena_bytes", ctypes.c_size_t),
                ("out", ctypes.c_char * 512)]


class LossStats(ctypes.Structure):  # ct_loss_stats, include/contrast/loss.h
    c_name = "ct_loss_stats"
    _fields_ = [("loss", _f64), ("top1", _f64), ("pos_sim", _f64), ("neg_sim", _f64), ("align", _f64),
                ("uniform", _f64), ("active", _f64), ("count", _i64)]


class Pair(ctypes.Structure):  # ct_pair, include/contrast/loss.h
    c_name = "ct_pair"
    _fields_ = [("a", _i64), ("b", _i64), ("same", ctypes.c_int32)]


class TokenizerOpts(ctypes.Structure):  # ct_tokenizer_opts, include/contrast/text.h
    c_name = "ct_tokenizer_opts"
    _fields_ = [("vocab_size", _i32)]


_pp = ctypes.POINTER(ctypes.c_char_p)  # char ** (strings that may hold NULs: read with their lengths)


class TextDataset(ctypes.Structure):  # ct_text_dataset, include/contrast/text.h
    c_name = "ct_text_dataset"
    _fields_ = [("ntexts", _i64), ("text", ctypes.POINTER(ctypes.c_void_p)),
                ("len", ctypes.POINTER(ctypes.c_size_t)), ("uniq", ctypes.POINTER(_i64)), ("npairs", _i64),
                ("anchor", ctypes.POINTER(_i64)), ("positive", ctypes.POINTER(_i64)),
                ("label", ctypes.POINTER(ctypes.c_int32)), ("nlabels", _i32), ("label_name", _pp),
                ("name", ctypes.c_char * 64), ("pool", ctypes.c_void_p)]


class Dataset(ctypes.Structure):  # ct_dataset, include/contrast/data.h
    c_name = "ct_dataset"
    _fields_ = [("n", _i64), ("c", _i32), ("h", _i32), ("w", _i32), ("images", ctypes.POINTER(ctypes.c_uint8)),
                ("labels", ctypes.POINTER(ctypes.c_int32)), ("coarse_labels", ctypes.POINTER(ctypes.c_int32)),
                ("num_classes", _i32), ("name", ctypes.c_char * 32), ("mean", _f32 * 3), ("std", _f32 * 3)]


class CaptionDataset(ctypes.Structure):  # ct_caption_dataset, include/contrast/captions.h
    c_name = "ct_caption_dataset"
    _fields_ = [("img", Dataset), ("caption_start", ctypes.POINTER(_i64)), ("captions", _pp),
                ("class_names", _pp), ("files", _pp), ("train", _i32)]


MIRRORS = (ModelConfig, OptimConfig, TrainEvent, TrainConfig, TrainResult, LossStats, Pair, TokenizerOpts,
           TextDataset, Dataset, CaptionDataset)
_verified = set()


def layout_problems(cls):
    """Differences between cls and the library's struct, as sentences ([] when none)."""
    from ._lib import lib
    L = lib()
    name = cls.c_name.encode()
    bad = []
    size = L.ct_abi_layout(name, None)
    if size != ctypes.sizeof(cls):
        bad.append("sizeof(%s) is %d in the library, %d in the binding" % (cls.c_name, size, ctypes.sizeof(cls)))
    names = (ctypes.c_char_p * 256)()
    n = L.ct_abi_fields(name, names, 256)
    c_fields = [names[i].decode() for i in range(min(n, 256))]
    py_fields = [f[0] for f in cls._fields_]
    if c_fields != py_fields:
        bad.append("%s's fields are %s in the library, %s in the binding" % (cls.c_name, c_fields, py_fields))
    for f in py_fields:
        off = L.ct_abi_layout(name, f.encode())
        if off != getattr(cls, f).offset:
            bad.append("offsetof(%s, %s) is %d in the library, %d in the binding" %
                       (cls.c_name, f, off, getattr(cls, f).offset))
    return bad


def verify(cls):
    """Raises ImportError when cls does not match the library's struct (and the
    structs nested in it); checked once per class."""
    if cls in _verified:
        return
    for _, t in cls._fields_:
        if isinstance(t, type) and issubclass(t, ctypes.Structure) and hasattr(t, "c_name"):
            verify(t)
    bad = layout_problems(cls)
    if bad:
        raise ImportError("contrast: the binding's mirror of %s does not match libcontrast (%s): %s. Update "
                          "python/contrast/_abi.py to the header." % (cls.c_name, _lib_path(), "; ".join(bad)))
    _verified.add(cls)


def _lib_path():
    from . import _lib
    return _lib.lib_path
