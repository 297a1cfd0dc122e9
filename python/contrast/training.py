"""Training from a config dict (ct_train_run) and reading a run's metrics."""
import ctypes
import json
import os

from . import _abi
from ._lib import ContrastError, check, lib

EVENT_KINDS = {0: "resumed", 1: "warning", 2: "step", 3: "epoch"}  # ct_train_event_kind

_NESTED = {"model": _abi.ModelConfig, "optim": _abi.OptimConfig}
_INTERNAL = ("on_event", "event_ctx")  # set by train(progress=...)


def _set_string(obj, field, value, key):
    raw = str(value).encode()
    cap = getattr(type(obj), field).size
    if len(raw) >= cap:
        raise ValueError("train: %s is %d bytes, the most is %d" % (key, len(raw), cap - 1))
    setattr(obj, field, raw)


def _enum(key, value, parse):
    if isinstance(value, int):
        return value
    v = parse(str(value).encode())
    if v < 0:
        raise ValueError("train: unknown %s %r" % (key, value))
    return v


def _encoder(value):
    if isinstance(value, int):
        return value
    out = ctypes.c_int()
    check(lib().ct_encoder_parse(str(value).encode(), ctypes.byref(out)))
    return out.value


def _set_field(obj, field, value, key):
    ctype = dict(obj._fields_)[field]
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array) and ctype._type_ is ctypes.c_char:
        _set_string(obj, field, value, key)
    elif ctype in (ctypes.c_float, ctypes.c_double):
        setattr(obj, field, float(value))
    else:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("train: %s must be an integer, got %r" % (key, value))
        if isinstance(value, bool) or isinstance(value, float):
            value = int(value)
        if not isinstance(value, int):
            raise ValueError("train: %s must be an integer, got %r" % (key, value))
        bits = 8 * ctypes.sizeof(ctype)
        lo, hi = (0, 2 ** bits - 1) if ctype in (ctypes.c_uint64, ctypes.c_size_t) else \
            (-2 ** (bits - 1), 2 ** (bits - 1) - 1)
        if not lo <= value <= hi:  # ctypes would wrap it silently
            raise ValueError("train: %s = %d is outside [%d, %d]" % (key, value, lo, hi))
        setattr(obj, field, value)


def _flatten(config):
    """{"model": {"width": 8}, "lr": 1} and {"model.width": 8} alike -> [(key, value)]."""
    items = []
    for k, v in config.items():
        if k in _NESTED and isinstance(v, dict):
            items += [("%s.%s" % (k, sk), sv) for sk, sv in v.items()]
        else:
            items.append((k, v))
    return items


def make_config(config):
    """A ct_train_config: ct_train_config_default, then the dict's keys (the
    struct's field names; "model.width" or {"model": {"width": ...}} for the
    nested ones). method, model.encoder and optim.type take names ("moco",
    "resnet18", "adamw"); a new optim.type resets the optimizer's defaults first,
    keeping weight_decay and momentum, as `contrast train --optimizer` does. Unknown
    keys raise ValueError."""
    _abi.verify(_abi.TrainConfig)
    L = lib()
    c = _abi.TrainConfig()
    L.ct_train_config_default(ctypes.byref(c))
    items = _flatten(config)
    for k, v in items:  # the optimizer type first: it resets the optimizer's other fields
        if k == "optim.type":
            t = _enum(k, v, L.ct_optim_type_parse)
            if t != c.optim.type:
                wd, mom = c.optim.weight_decay, c.optim.momentum
                L.ct_optim_config_default(ctypes.byref(c.optim), t)
                c.optim.weight_decay = wd
                if L.ct_optim_type_name(t) != b"adamw":
                    c.optim.momentum = mom
    for k, v in items:
        head, _, sub = k.partition(".")
        if k == "optim.type":
            continue
        if head in _INTERNAL:
            raise ValueError("train: %s is set by train(progress=...), not by the config" % k)
        if sub:
            if head not in _NESTED or sub not in dict(_NESTED[head]._fields_):
                raise ValueError("train: unknown config key %r" % k)
            obj, field = getattr(c, head), sub
        else:
            if head not in dict(_abi.TrainConfig._fields_) or head in _NESTED:
                raise ValueError("train: unknown config key %r%s" %
                                 (k, " (give a dict, or %s.FIELD keys)" % k if head in _NESTED else ""))
            obj, field = c, head
        if k == "method":
            v = _enum(k, v, L.ct_method_parse)
        elif k == "model.encoder":
            v = _encoder(v)
        _set_field(obj, field, v, k)
    return c


def _event_dict(e):
    d = {"kind": EVENT_KINDS.get(e.kind, e.kind)}
    for f, _ in _abi.TrainEvent._fields_[1:]:
        v = getattr(e, f)
        d[f] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return d


def train(config=None, progress=None):
    """Runs contrast train's loop (ct_train_run) on a config dict (see make_config;
    e.g. {"limit": 512, "epochs": 1, "model": {"width": 8}, "out": "runs/x"}) and
    returns the result as a dict (epochs_done, steps, final_loss, final_top1,
    knn_top1, probe_top1, knn_top1_raw, seconds, arena_bytes, local_arena_bytes,
    out). progress, if given, is called with a dict per event: kind ("resumed",
    "warning", "step" after every step, "epoch" after every epoch), epoch, epochs,
    step, batch, batches, loss, top1, images_per_s, seconds, eta_s, knn_top1, path,
    message. An exception raised by progress stops the calls to it; the run goes on
    to its end and train() then raises that exception. A failed run raises
    ContrastError."""
    c = make_config(config or {})
    _abi.verify(_abi.TrainResult)
    _abi.verify(_abi.TrainEvent)
    failure = []

    def on_event(ep, _ctx):
        if progress is None or failure:
            return
        try:
            progress(_event_dict(ep.contents))
        except BaseException as exc:  # a ctypes callback must not raise into C
            failure.append(exc)

    cb = _abi.EVENT_FN(on_event)  # kept alive until ct_train_run returns
    c.on_event = cb
    res = _abi.TrainResult()
    status = lib().ct_train_run(ctypes.byref(c), ctypes.byref(res))
    if status:
        err = ContrastError(status, lib().ct_errmsg().decode("utf-8", "replace"))
        if failure:
            raise err from failure[0]
        raise err
    if failure:
        raise failure[0]
    out = {}
    for f, _ in _abi.TrainResult._fields_:
        v = getattr(res, f)
        out[f] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return out


def read_metrics(run):
    """The lines of a run's metrics.jsonl (run: the run folder or the file) as a
    list of dicts, one per epoch."""
    path = os.path.join(run, "metrics.jsonl") if os.path.isdir(run) else run
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError("%s:%d: not JSON: %s" % (path, i, e)) from None
    return out
