"""torch_transformer.py: the PyTorch side of bench_step's transformer rows.

Times the same contrastive training step as `bench_step --model transformer|vit`
(forward of 2B inputs through encoder and head, NT-Xent with tau 0.5, backward,
AdamW lr 1e-3 / weight decay 0.05) and the no_grad eval forward of the encoder, and
prints one line per model:

    torch <model> <setting> train_img_s <x> infer_img_s <y> peak_rss_mib <z> threads <n>

An "image" is one training pair (two views), as in bench_step. The encoders are
nn.TransformerEncoder(norm_first=True, activation='gelu', batch_first=True), the
issue's reference module, with the same shapes and dropout 0.1 as the C side:
    transformer  V 8192, T 32, C 256, L 4, H 4: token + learned position
                 embeddings, final LayerNorm, mean pooling, random full-length ids
    vit          28x28, 4x4 patches (nn.Conv2d), CLS token, learned positions,
                 C 192, L 6, H 3, final LayerNorm, CLS pooling
then Linear(C, 512) - BatchNorm1d - ReLU - Linear(512, 128).
Usage: python3 bench/torch_transformer.py [--threads N] [--setting NAME] [--steps S]
           [--warmup K] [--batch B] [--models transformer,vit]
Inputs are random, made once; medians over the timed steps after warm-up."""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {
    "transformer": dict(dim=256, depth=4, heads=4, vocab=8192, context=32),
    "vit": dict(dim=192, depth=6, heads=3, patch=4, img=28),
}


def encoder_stack(dim, depth, heads):
    layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.1, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class Text(nn.Module):
    def __init__(self, dim, depth, heads, vocab, context):
        super().__init__()
        self.tok_embed = nn.Embedding(vocab, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, context, dim).normal_(0, 0.02))
        self.drop = nn.Dropout(0.1)
        self.blocks = encoder_stack(dim, depth, heads)
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, ids):
        return self.ln_f(self.blocks(self.drop(self.tok_embed(ids) + self.pos_embed))).mean(1)


class ViT(nn.Module):
    def __init__(self, dim, depth, heads, patch, img):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim).normal_(0, 0.02))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (img // patch) ** 2, dim).normal_(0, 0.02))
        self.drop = nn.Dropout(0.1)
        self.blocks = encoder_stack(dim, depth, heads)
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.ln_f(self.blocks(self.drop(x)))[:, 0]


class Model(nn.Module):
    def __init__(self, enc, dim):
        super().__init__()
        self.enc = enc
        self.head = nn.Sequential(nn.Linear(dim, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128))

    def forward(self, x):
        return self.head(self.enc(x))


def ntxent(z, tau=0.5):
    n = z.shape[0] // 2
    u = F.normalize(z, dim=1)
    s = u @ u.t() / tau
    s.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(s, target)


def bench(spec, batch, steps, warmup):
    torch.manual_seed(0)
    sh = SHAPES[spec]
    if spec == "transformer":
        model = Model(Text(**sh), sh["dim"])
        x = torch.randint(0, sh["vocab"], (2 * batch, sh["context"]))
    else:
        model = Model(ViT(**sh), sh["dim"])
        x = torch.randn(2 * batch, 1, sh["img"], sh["img"])
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n and "cls_token" not in n]
    plain = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "pos_embed" not in n and "cls_token" not in n)]
    opt = torch.optim.AdamW([{"params": decay}, {"params": plain, "weight_decay": 0.0}], lr=1e-3, weight_decay=0.05)
    model.train()
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = ntxent(model(x))
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    train = batch / statistics.median(times)
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + steps):
            t = time.perf_counter()
            model.enc(x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    infer = 2 * batch / statistics.median(times)
    return train, infer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--setting", default="default")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--models", default="transformer,vit", help="comma list of transformer, vit")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    for spec in a.models.split(","):
        train, infer = bench(spec, a.batch, a.steps, a.warmup)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"torch {spec} {a.setting} train_img_s {train:.1f} infer_img_s {infer:.1f} "
              f"peak_rss_mib {rss:.0f} threads {torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
