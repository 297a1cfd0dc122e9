"""Turning a batch of images into the model's input, exactly as `contrast embed`
feeds a dataset (ct_data_eval_batch): pixels scaled to [0, 1] by a float32
multiply with 1/255, then per channel (x - mean) * (1 / std) in float32.

Accepted batches (a NumPy array):
  uint8, 0..255                  scaled by 1/255 as the library scales its datasets;
  float32 or float64, in [0, 1]  used as they are (float64 is rounded to float32 first);
  layout NCHW (N, C, H, W) or NHWC (N, H, W, C), found from which axis holds the
  model's channel count with the image size beside it, or given as layout="NCHW" /
  "NHWC" when both would fit; (N, H, W) for one-channel models.
"""
import numpy as np

# Per-channel normalisation of the datasets the library knows by name, the values
# src/data/dataset.c sets (ct_dataset_load); only for checkpoints written before
# data.mean / data.std were recorded in the metadata.
KNOWN_NORMALISATION = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _floats(s):
    return tuple(float(v) for v in s.split(","))


def normalisation(meta):
    """(mean, std) per channel (tuples of in_c floats) of a checkpoint's training
    data: its data.mean / data.std, else the constants of the dataset named in
    train.data. ValueError when neither says."""
    c = int(meta.get("model.in_c", "1"))
    if "data.mean" in meta and "data.std" in meta:
        mean, std = _floats(meta["data.mean"]), _floats(meta["data.std"])
    else:
        spec = meta.get("train.data", "")
        name = spec.split(":", 1)[0]
        if name not in KNOWN_NORMALISATION:
            raise ValueError("the checkpoint records no normalisation (data.mean, data.std: written since "
                             "contrast 0.1.0) and its data %r has no known one; pass mean= and std=" % spec)
        mean, std = KNOWN_NORMALISATION[name]
    if len(mean) == 1:
        mean, std = mean * c, std * c
    if len(mean) != c or len(std) != c:
        raise ValueError("normalisation has %d means and %d stds for %d channels" % (len(mean), len(std), c))
    return mean, std


def to_nchw(images, c, h, w, layout=None):
    """images as an (N, c, h, w) array (a view when it already is one)."""
    x = np.asarray(images)
    if x.ndim == 3 and c == 1:
        x = x[:, None, :, :]
        layout = layout or "NCHW"
    if x.ndim != 4:
        raise ValueError("images: expected a batch (N, %d, %d, %d) or (N, %d, %d, %d), got shape %s" %
                         (c, h, w, h, w, c, x.shape))
    nchw = x.shape[1:] == (c, h, w)
    nhwc = x.shape[1:] == (h, w, c)
    if layout is None:
        if nchw and nhwc:
            raise ValueError("images of shape %s fit both NCHW and NHWC: pass layout='NCHW' or 'NHWC'" %
                             (x.shape,))
        if not nchw and not nhwc:
            raise ValueError("images: the model takes %dx%dx%d images, as (N, %d, %d, %d) or (N, %d, %d, %d); "
                             "got shape %s" % (c, h, w, c, h, w, h, w, c, x.shape))
        layout = "NCHW" if nchw else "NHWC"
    layout = layout.upper()
    if layout == "NHWC":
        if not nhwc:
            raise ValueError("images: layout NHWC needs (N, %d, %d, %d), got %s" % (h, w, c, x.shape))
        return x.transpose(0, 3, 1, 2)
    if layout != "NCHW":
        raise ValueError("layout must be 'NCHW' or 'NHWC', not %r" % layout)
    if not nchw:
        raise ValueError("images: layout NCHW needs (N, %d, %d, %d), got %s" % (c, h, w, x.shape))
    return x


def prepare(images, mean, std, c, h, w, layout=None):
    """The model input for images: float32, C-contiguous (N, c, h, w), normalised."""
    x = to_nchw(images, c, h, w, layout)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) * (np.float32(1.0) / np.float32(255.0))
    elif x.dtype in (np.float32, np.float64):
        x = x.astype(np.float32)  # a copy: the input is never modified
    else:
        raise ValueError("images: dtype %s; expected uint8 (0..255) or float32/float64 (0..1)" % x.dtype)
    for ch in range(c):
        m, inv = np.float32(mean[ch]), np.float32(1.0) / np.float32(std[ch])
        x[:, ch] -= m
        x[:, ch] *= inv
    return np.ascontiguousarray(x)
