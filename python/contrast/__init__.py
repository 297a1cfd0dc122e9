"""contrast: Python binding of libcontrast (contrastive representation learning in C).

    import contrast
    m = contrast.load("runs/x/checkpoint.safetensors")   # a trained encoder
    h = m.embed(images)                                  # uint8/float, NCHW/NHWC -> (N, D)
    loss, dz, stats = contrast.losses.ntxent(z, tau=0.1) # objectives with gradients
    res = contrast.train({"limit": 512, "epochs": 1}, progress=print)
    contrast.read_metrics(res["out"])                    # metrics.jsonl as dicts
    t = contrast.load("runs/text/checkpoint.safetensors").embed_texts(["a cat", "a dog"])
    d = contrast.text_dataset("pairs:FILE"); tok = contrast.Tokenizer.train(d.texts, vocab=8192)
    c = contrast.caption_dataset("captions:DIR", size=32)

Only ctypes and NumPy: libcontrast.so is found at first use (contrast._lib says
where it looks; CONTRAST_LIB overrides). contrast.torch builds the same encoders as
torch.nn.Modules. The API is in docs/python.md.
"""
from ._lib import ContrastError
from . import images, losses, safetensors
from .model import Model, load
from .text import Tokenizer, TextDataset, CaptionDataset, text_dataset, caption_dataset
from .training import read_metrics, train

__version__ = "0.1.0"

__all__ = ["ContrastError", "Model", "load", "train", "read_metrics", "losses", "images", "safetensors",
           "set_threads", "library_path", "Tokenizer", "TextDataset", "CaptionDataset", "text_dataset",
           "caption_dataset"]


def set_threads(n):
    """Compute threads of the library's kernels (0: all cores), as --threads."""
    from ._lib import lib
    lib().ct_set_threads(int(n))


def library_path():
    """The path of the libcontrast loaded (loading it if needed)."""
    from . import _lib
    _lib.lib()
    return _lib.lib_path
