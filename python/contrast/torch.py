"""Loading a contrast checkpoint as a torch.nn.Module.

    import contrast.torch
    net = contrast.torch.load("runs/x/checkpoint.safetensors")   # eval mode
    h = net(net.preprocess(images))   # the features `contrast embed` writes, to ~1e-6

The module is built from the checkpoint's metadata (model.encoder, model.width,
...), its tensors loaded with load_state_dict(strict=True) under the names the
library gives them (encoder.*, head.*, whiten.*). forward(x) takes the model input:
float (N, C, H, W) images already normalised as contrast embed normalises its data;
preprocess(images) makes it from uint8 or [0, 1] float, NCHW or NHWC (see
contrast.images). The output is chosen at load: "h" (the default: the encoder's
features, whitened when the checkpoint carries a whitening), "h_raw" or "z" (the
projection head's output); features(x, which) gives any of them.

Encoders are a registry by model.encoder: register_encoder(name, build), where
build(model_config) returns (module, feature_dim) with the module's parameters
under the names the checkpoint uses below "encoder.".
"""
import torch
from torch import nn

from . import images as _images
from .safetensors import read_header, read_tensors

# BatchNorm as the library's (src/models/model.c, ct_model_add_bn): eps 1e-5, momentum
# 0.1, torch's defaults.
BN_EPS, BN_MOMENTUM = 1e-5, 0.1

_ENCODERS = {}


def register_encoder(name, build):
    """Adds an encoder kind: build(model_config dict) -> (nn.Module mapping (N, C, H, W)
    to (N, D), D). The module's state_dict names are the checkpoint's without the
    leading "encoder."."""
    _ENCODERS[name] = build


def encoders():
    """The encoder kinds this loader builds."""
    return sorted(_ENCODERS)


def _bn2d(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def _pool_out(n, k, s, p):  # ct_pool_out
    return (n + 2 * p - k) // s + 1


class CNNEncoder(nn.Module):
    """build_cnn: four conv3x3 (no bias) - BN - ReLU stages of widths w, 2w, 4w and 8w
    (or last_width), a 2x2 max pool after each of the first three while the height
    is >= 2, then global average pooling."""

    def __init__(self, in_c, in_h, width, last_width):
        super().__init__()
        self.pools = []
        c, h = in_c, in_h
        for i in range(1, 5):
            oc = last_width if i == 4 and last_width > 0 else width << (i - 1)
            setattr(self, "conv%d" % i, nn.Conv2d(c, oc, 3, 1, 1, bias=False))
            setattr(self, "bn%d" % i, _bn2d(oc))
            pool = i < 4 and h >= 2
            self.pools.append(pool)
            if pool:
                h = _pool_out(h, 2, 2, 0)
            c = oc
        self.feature_dim = c

    def forward(self, x):
        for i in range(1, 5):
            x = torch.relu(getattr(self, "bn%d" % i)(getattr(self, "conv%d" % i)(x)))
            if self.pools[i - 1]:
                x = nn.functional.max_pool2d(x, 2, 2)
        return x.mean(dim=(2, 3))


class BasicBlock(nn.Module):
    """ct_model_add_basic_block: conv3x3(stride)-BN-ReLU-conv3x3-BN plus the shortcut
    (1x1 conv(stride)-BN as downsample.0/1 when the stride or width changes), ReLU."""

    def __init__(self, in_c, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn2d(planes)
        self.downsample = None
        if stride != 1 or in_c != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_c, planes, 1, stride, 0, bias=False), _bn2d(planes))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18Encoder(nn.Module):
    """build_resnet18: torchvision's ResNet-18 with the CIFAR stem (conv3x3 stride 1,
    BN, ReLU, no max pool), layers of widths w, 2w, 4w, 8w, global average pooling."""

    def __init__(self, in_c, width):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, width, 3, 1, 1, bias=False)
        self.bn1 = _bn2d(width)
        c = width
        for layer in range(1, 5):
            planes = width << (layer - 1)
            blocks = []
            for b in range(2):
                blocks.append(BasicBlock(c, planes, 2 if layer > 1 and b == 0 else 1))
                c = planes
            setattr(self, "layer%d" % layer, nn.Sequential(*blocks))
        self.feature_dim = c

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for layer in range(1, 5):
            x = getattr(self, "layer%d" % layer)(x)
        return x.mean(dim=(2, 3))


def _build_cnn(mc):
    enc = CNNEncoder(mc["in_c"], mc["in_h"], mc["width"], mc.get("last_width", 0))
    return enc, enc.feature_dim


def _build_resnet18(mc):
    enc = ResNet18Encoder(mc["in_c"], mc["width"])
    return enc, enc.feature_dim


register_encoder("cnn", _build_cnn)
register_encoder("resnet18", _build_resnet18)


# ---- the transformer encoders (src/models/model.c, build_transformer) ------------------------

# LayerNorm as ct_model_add_layernorm: eps 1e-5 (torch's default)
LN_EPS = 1e-5
POOLS = {0: None, 1: "mean", 2: "cls", 3: "eot"}  # ct_pool_kind as model.pool may be written


class Attention(nn.Module):
    """Multi-head self-attention from a fused qkv linear (ct_attention_forward): qkv's
    3C outputs are [q | k | v], head h in columns h*D .. h*D + D - 1 of each;
    softmax(Q K^T / sqrt(D)) over the valid keys (and, causal, keys j <= i); a
    query that sees no key gets zeros (where plain PyTorch would give NaN); then
    the output projection."""

    def __init__(self, dim, heads, causal, p):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p)

    def forward(self, x, valid):
        B, T, C = x.shape
        H, D = self.heads, C // self.heads
        q, k, v = self.qkv(x).view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        s = (q @ k.transpose(-1, -2)) * (1.0 / D ** 0.5)                  # (B, H, T, T)
        see = torch.ones(B, 1, T, T, dtype=torch.bool, device=x.device)
        if valid is not None:
            see = see & valid.bool()[:, None, None, :]
        if self.causal:
            see = see & torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        s = s.masked_fill(~see, float("-inf"))
        att = torch.softmax(s, dim=-1)
        att = torch.where(see.any(-1, keepdim=True), att, torch.zeros((), dtype=att.dtype, device=att.device))
        y = (self.drop(att) @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    """fc1 (C -> 4C), exact GELU (erf), fc2 (4C -> C)."""

    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class Block(nn.Module):
    """ct_model_add_transformer_block, pre-LayerNorm:
    x = x + drop(attn(ln1(x))); x = x + drop(mlp(ln2(x)))."""

    def __init__(self, dim, heads, causal, p):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, causal, p)
        self.ln2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim)
        self.drop = nn.Dropout(p)

    def forward(self, x, valid):
        x = x + self.drop(self.attn(self.ln1(x), valid))
        return x + self.drop(self.mlp(self.ln2(x)))


def _pool(x, valid, mode):
    """ct_tokpool_forward: mean of the valid tokens, the first token (CLS), or the
    last valid token (EOT); a sequence with no valid token pools to zeros."""
    if mode == "cls":
        return x[:, 0]
    if valid is None:
        return x.mean(dim=1) if mode == "mean" else x[:, -1]
    m = valid.to(x.dtype)
    if mode == "mean":
        return (x * m[:, :, None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
    T = x.shape[1]
    pos = torch.arange(T, device=x.device)
    last = torch.where(valid.bool(), pos, torch.full_like(pos, -1)).max(dim=1).values  # (B,)
    out = x[torch.arange(x.shape[0], device=x.device), last.clamp(min=0)]
    return out * (last >= 0).to(x.dtype)[:, None]


class _TransformerBase(nn.Module):
    def __init__(self, mc, vit):
        super().__init__()
        C, L, H = mc["width"], mc.get("depth", 4), mc.get("heads", 4)
        p = float(mc.get("dropout", 0.0))
        pool = mc.get("pool", 0)
        pool = POOLS.get(pool, pool) if not isinstance(pool, str) else pool
        if pool in (None, "default"):
            pool = "cls" if vit else "mean"
        if pool not in ("mean", "cls", "eot") or (vit and pool == "eot"):
            raise ValueError("contrast.torch: pooling %r is not one the %s builds" % (pool, "vit" if vit else
                                                                                     "transformer"))
        self.pool, self.feature_dim = pool, C
        self.drop = nn.Dropout(p)
        causal = bool(mc.get("causal", 0)) and not vit
        self.blocks = nn.ModuleList([Block(C, H, causal, p) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=LN_EPS)

    def _run(self, x, valid):
        x = self.drop(x)
        for blk in self.blocks:
            x = blk(x, valid)
        return _pool(self.ln_f(x), valid, self.pool)


class TextTransformerEncoder(_TransformerBase):
    """build_transformer, text: token embedding (tok_embed) plus learned positions
    (pos_embed, (1, T, C)), L pre-LN blocks, ln_f, pooling (mean of the valid tokens
    by default; cls; eot). forward(ids (N, T) integer ids, valid (N, T) 1 real / 0
    padding, or None: all real) -> (N, C)."""

    takes_tokens = True

    def __init__(self, mc):
        super().__init__(mc, vit=False)
        C, T = mc["width"], mc["context"]
        self.context = T
        self.tok_embed = nn.Embedding(mc["vocab"], C)
        self.pos_embed = nn.Parameter(torch.zeros(1, T, C))

    def forward(self, ids, valid=None):
        if ids.dim() != 2 or ids.shape[1] != self.context:
            raise ValueError("token ids must be (N, %d), got %s" % (self.context, tuple(ids.shape)))
        return self._run(self.tok_embed(ids.long()) + self.pos_embed, valid)


class ViTEncoder(_TransformerBase):
    """build_transformer, ViT: p x p patches by a stride-p convolution (patch_embed,
    with bias), a CLS token first, learned positions for the 1 + (H/p)(W/p) tokens
    (pos_embed), L pre-LN blocks, ln_f, pooling (CLS by default; mean over every
    token, CLS included). forward(x (N, C, H, W) normalised images) -> (N, width)."""

    takes_tokens = False

    def __init__(self, mc):
        super().__init__(mc, vit=True)
        C, p = mc["width"], mc["patch"]
        if mc["in_h"] % p or mc["in_w"] % p:
            raise ValueError("contrast.torch: %dx%d images are not whole %dx%d patches" % (mc["in_h"], mc["in_w"],
                                                                                           p, p))
        T = 1 + (mc["in_h"] // p) * (mc["in_w"] // p)
        self.patch_embed = nn.Conv2d(mc["in_c"], C, p, p, 0, bias=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_embed = nn.Parameter(torch.zeros(1, T, C))

    def forward(self, x):
        t = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, np, C), patches row-major
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        return self._run(t + self.pos_embed, None)


def _build_transformer(mc):
    enc = TextTransformerEncoder(mc)
    return enc, enc.feature_dim


def _build_vit(mc):
    enc = ViTEncoder(mc)
    return enc, enc.feature_dim


register_encoder("transformer", _build_transformer)
register_encoder("vit", _build_vit)


class Whitening(nn.Module):
    """The model's ZCA whitening of h: (h - mean) @ weight (ct_whiten_apply)."""

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("weight", torch.eye(dim))

    def forward(self, h):
        return (h - self.mean) @ self.weight


def _head(mc, dim):
    hidden, out = mc.get("head_hidden", 0), mc.get("head_out", 0)
    if hidden <= 0:
        return None
    if mc.get("head_bn", 1):  # head.0, head.1 (BN + ReLU), head.3
        return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden, eps=BN_EPS, momentum=BN_MOMENTUM),
                             nn.ReLU(), nn.Linear(hidden, out))
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))  # head.0, head.2


class ContrastModel(nn.Module):
    """A contrast checkpoint's model: encoder, projection head, whitening."""

    OUTPUTS = ("h", "h_raw", "z")

    def __init__(self, meta, output="h"):
        super().__init__()
        mc = {k[6:]: v for k, v in meta.items() if k.startswith("model.")}
        for k in list(mc):
            if k not in ("encoder", "pool"):
                mc[k] = float(mc[k]) if k in ("whiten", "dropout") else int(mc[k])
        kind = mc.get("encoder")
        if kind not in _ENCODERS:
            raise ValueError("contrast.torch: the checkpoint's encoder %r is not one this loader builds (%s); "
                             "a newer contrast may know it (contrast.torch.register_encoder)" %
                             (kind, ", ".join(encoders())))
        if output not in self.OUTPUTS:
            raise ValueError("output must be one of %s, not %r" % (", ".join(self.OUTPUTS), output))
        self.config = mc
        self.encoder, self.feature_dim = _ENCODERS[kind](mc)
        self.takes_tokens = bool(getattr(self.encoder, "takes_tokens", False))
        self.head = _head(mc, self.feature_dim)
        self.embed_dim = mc["head_out"] if self.head is not None else self.feature_dim
        self.whiten = Whitening(self.feature_dim) if mc.get("whiten", 0) > 0 else None
        self.output = output
        self._tokenizer = meta.get("tokenizer")  # text checkpoints: the serialised tokenizer
        mean, std = ((0.0,), (1.0,)) if self.takes_tokens else _images.normalisation(meta)
        # not in the state_dict: the checkpoint keeps them as metadata
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32), persistent=False)

    def features(self, x, which="h", valid=None):
        """The model's output `which` for input x: images (N, C, H, W) normalised, or,
        for a text model, token ids (N, T) with valid (N, T) (None: all real)."""
        if which not in self.OUTPUTS:
            raise ValueError("which must be one of %s, not %r" % (", ".join(self.OUTPUTS), which))
        h = self.encoder(x, valid) if self.takes_tokens else self.encoder(x)
        if which == "z":
            return self.head(h) if self.head is not None else h
        if which == "h" and self.whiten is not None:
            return self.whiten(h)
        return h

    def forward(self, x, valid=None):
        return self.features(x, self.output, valid)

    def preprocess(self, images, layout=None):
        """The model input for a batch of images (NumPy array or tensor; uint8 0..255
        or float 0..1; NCHW or NHWC), normalised as contrast embed normalises."""
        if self.takes_tokens:
            raise ValueError("a text model: use tokenize(texts)")
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        c, h, w = self.config["in_c"], self.config["in_h"], self.config["in_w"]
        mean, std = self.input_mean.tolist(), self.input_std.tolist()
        x = _images.prepare(images, mean, std, c, h, w, layout)
        return torch.from_numpy(x).to(self.input_mean.device)

    def tokenize(self, texts):
        """(ids, valid) for a list of texts, as contrast embed --text feeds the text
        model: BOS, the tokens of the checkpoint's tokenizer (cut to the context),
        EOS, PAD; ids int64 (N, T), valid uint8 (N, T). Uses contrast.Tokenizer, so
        libcontrast.so must be loadable."""
        if not self.takes_tokens or self._tokenizer is None:
            raise ValueError("tokenize: not a text checkpoint with a tokenizer")
        from .text import Tokenizer
        tok = getattr(self, "_tok", None)
        if tok is None:
            tok = self._tok = Tokenizer.from_string(self._tokenizer)
        ids, valid = tok.encode(texts, context=self.config["context"])
        dev = self.input_mean.device
        return torch.from_numpy(ids.astype("int64")).to(dev), torch.from_numpy(valid).to(dev)

    def embed_texts(self, texts, which=None):
        """Features of a list of texts (a text model): forward over tokenize(texts)."""
        ids, valid = self.tokenize(texts)
        return self.features(ids, which or self.output, valid)


_NOT_MODEL = ("optim.", "momentum.", "moco.")  # optimizer state (ct_optim_state), MoCo's key encoder and queue


def load(path, output="h", map_location="cpu"):
    """The checkpoint's model as a ContrastModel (a torch.nn.Module) in eval mode.
    output: what forward returns, "h" (whitened when the checkpoint has a
    whitening), "h_raw" or "z". ValueError for an encoder this loader does not
    build, and for output "h" when the checkpoint's whitening was fit for older
    parameters (contrast embed refits it on the training data; use "h_raw")."""
    head, meta, _ = read_header(path)
    if meta.get("format") != "contrast-checkpoint":
        raise ValueError("%s: not a contrast checkpoint (metadata format %r)" % (path, meta.get("format")))
    net = ContrastModel(meta, output)
    if output == "h" and net.whiten is not None and meta.get("whiten.epoch", "0") != meta.get("train.epoch"):
        raise ValueError("%s: the whitening was fit at epoch %s, the parameters are of epoch %s; contrast embed "
                         "refits it on the training data: load with output='h_raw' or refit it" %
                         (path, meta.get("whiten.epoch", "none"), meta.get("train.epoch")))
    want = set(net.state_dict())
    # everything the checkpoint holds besides the optimizer's state and MoCo's key
    # encoder goes to the module, so strict=True catches a tensor it does not have
    names = [n for n in head if not n.startswith(_NOT_MODEL)]
    state = {k: torch.from_numpy(v) for k, v in read_tensors(path, set(names)).items()}
    for k in want:  # torch's BatchNorm counter, which the library does not keep
        if k.endswith(".num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    net.load_state_dict(state, strict=True)
    return net.to(map_location).eval()


# ---- CLIP (contrast train --method clip; docs/clip.md) ---------------------------------------

def _tower_config(meta, prefix):
    mc = {k[len(prefix):]: v for k, v in meta.items() if k.startswith(prefix)}
    for k in list(mc):
        if k not in ("encoder", "pool"):
            mc[k] = float(mc[k]) if k in ("whiten", "dropout") else int(mc[k])
    if mc.get("encoder") not in _ENCODERS:
        raise ValueError("contrast.torch: the CLIP tower's encoder %r is not one this loader builds (%s)" %
                         (mc.get("encoder"), ", ".join(encoders())))
    return mc


class ClipTower(nn.Module):
    """One CLIP tower: an encoder of the registry, then `head`, a linear projection to the
    shared dimension without bias (head_hidden -1), unit-length output."""

    def __init__(self, mc, dim):
        super().__init__()
        self.encoder, fdim = _ENCODERS[mc["encoder"]](mc)
        self.head = nn.Linear(fdim, dim, bias=False)

    def forward(self, *inputs):
        return nn.functional.normalize(self.head(self.encoder(*inputs)), dim=-1)


class ClipModel(nn.Module):
    """A `--method clip` checkpoint: visual (image tower), text (text tower) and
    logit_scale (ln of the similarity scale), under the checkpoint's names.
    embed_images / embed_texts give ct_clip_embed_images / _texts's unit rows."""

    def __init__(self, meta):
        super().__init__()
        dim = int(meta["clip.embed_dim"])
        vc, tc = _tower_config(meta, "visual.model."), _tower_config(meta, "text.model.")
        if vc["head_hidden"] != -1 or tc["head_hidden"] != -1:
            raise ValueError("contrast.torch: CLIP towers with a hidden head layer are not built by this loader")
        self.visual, self.text = ClipTower(vc, dim), ClipTower(tc, dim)
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.config = {"visual": vc, "text": tc, "dim": dim}
        self._tokenizer = meta.get("tokenizer")
        mean, std = _images.normalisation(dict(meta, **{"model.in_c": str(vc["in_c"])}))
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32), persistent=False)

    def preprocess(self, images, layout=None):
        """uint8 RGB (or [0, 1] float) images at the tower's size -> normalised NCHW input."""
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        vc = self.config["visual"]
        x = _images.prepare(images, self.input_mean.tolist(), self.input_std.tolist(), vc["in_c"], vc["in_h"],
                            vc["in_w"], layout)
        return torch.from_numpy(x).to(self.input_mean.device)

    def tokenize(self, texts):
        from .text import Tokenizer
        tok = getattr(self, "_tok", None)
        if tok is None:
            tok = self._tok = Tokenizer.from_string(self._tokenizer)
        ids, valid = tok.encode(texts, context=self.config["text"]["context"])
        dev = self.input_mean.device
        return torch.from_numpy(ids.astype("int64")).to(dev), torch.from_numpy(valid).to(dev)

    def embed_images(self, images, layout=None):
        return self.visual(self.preprocess(images, layout))

    def embed_texts(self, texts):
        return self.text(*self.tokenize(texts))

    def forward(self, images, ids, valid=None):
        """(logits_per_image, logits_per_text) = exp(logit_scale) * cosine, as CLIP."""
        img, txt = self.visual(images), self.text(ids, valid)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()


def load_clip(path, map_location="cpu"):
    """A `contrast train --method clip` checkpoint as a ClipModel (torch.nn.Module, eval
    mode), loaded with load_state_dict(strict=True)."""
    head, meta, _ = read_header(path)
    if meta.get("format") != "contrast-checkpoint" or meta.get("train.method") != "clip":
        raise ValueError("%s: not a contrast CLIP checkpoint (train.method %r)" % (path, meta.get("train.method")))
    net = ClipModel(meta)
    names = [n for n in head if not n.startswith(_NOT_MODEL)]
    state = {k: torch.from_numpy(v) for k, v in read_tensors(path, set(names)).items()}
    for k in net.state_dict():
        if k.endswith(".num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    net.load_state_dict(state, strict=True)
    return net.to(map_location).eval()
