"""Reading a safetensors file (a contrast checkpoint) with the standard library and
NumPy alone: the header is 8 bytes of little-endian length, then that many bytes of
JSON ({name: {dtype, shape, data_offsets}, "__metadata__": {key: string}}), then the
tensors' bytes."""
import json
import struct

import numpy as np

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "BOOL": "?"}


def read_header(path):
    """(header dict without __metadata__, metadata dict of strings, byte offset of the data)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("%s: too short for a safetensors file (%d bytes)" % (path, len(raw)))
        (n,) = struct.unpack("<Q", raw)
        if n > 100 << 20:
            raise ValueError("%s: safetensors header of %d bytes is implausible" % (path, n))
        text = f.read(n)
        if len(text) != n:
            raise ValueError("%s: header claims %d bytes, the file ends first" % (path, n))
    try:
        head = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError("%s: safetensors header is not JSON: %s" % (path, e)) from None
    if not isinstance(head, dict):
        raise ValueError("%s: safetensors header is not a JSON object" % path)
    meta = head.pop("__metadata__", None) or {}
    return head, meta, 8 + n


def read_metadata(path):
    """The checkpoint's metadata: a dict of strings."""
    return read_header(path)[1]


def read_tensors(path, names=None):
    """{name: ndarray} of the tensors (all, or those in `names`), each a copy."""
    head, _, start = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, e in head.items():
            if names is not None and name not in names:
                continue
            dt = _DTYPES.get(e.get("dtype"))
            if dt is None:
                raise ValueError("%s: tensor %s has dtype %r, not one this reader knows" % (path, name,
                                                                                           e.get("dtype")))
            b, end = e["data_offsets"]
            shape = tuple(int(d) for d in e["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            if end - b != count * np.dtype(dt).itemsize:
                raise ValueError("%s: tensor %s: %d bytes for shape %s" % (path, name, end - b, shape))
            f.seek(start + b)
            data = f.read(end - b)
            if len(data) != end - b:
                raise ValueError("%s: tensor %s runs past the end of the file" % (path, name))
            out[name] = np.frombuffer(data, dtype=dt).reshape(shape).copy()
    return out
