"""torch_step.py: the PyTorch side of `make bench`.

Times the same SimCLR training step as bench/bench_step.c (forward of 2B views,
NT-Xent, backward, LARS step) and the no_grad inference forward, for the default
CNN and ResNet-18 (CIFAR stem) on 1x28x28, and prints one line per measurement:

    torch <model> <setting> train_img_s <x> infer_img_s <y> peak_rss_mib <z>

An "image" is one training pair (two views), as in the trainer's img/s.
Usage: python3 bench/torch_step.py [--threads N] [--steps S] [--warmup K] [--models cnn,resnet18-32]
       python3 bench/torch_step.py --info     (one line: version, the vector ISA its
                                               kernels dispatch to, BLAS, threads)
The thread setting is passed by bench/run.sh (torch.set_num_threads, with
OPENBLAS_NUM_THREADS=1 in the environment for the "best" setting). Inputs are
random, generated once; medians over the timed steps (default 5) after the warm-up
ones (default 2), as bench_step's."""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CNN(nn.Module):
    def __init__(self, width):
        super().__init__()
        layers, c = [], 1
        for i in range(4):
            oc = width << i
            layers += [nn.Conv2d(c, oc, 3, 1, 1, bias=False), nn.BatchNorm2d(oc), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2, 2))
            c = oc
        self.body = nn.Sequential(*layers)
        self.feat = c

    def forward(self, x):
        return self.body(x).mean((2, 3))


class Block(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, 0, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, c = [], width
        for layer in range(4):
            planes = width << layer
            for b in range(2):
                blocks.append(Block(c, planes, 2 if layer > 0 and b == 0 else 1))
                c = planes
        self.blocks = nn.Sequential(*blocks)
        self.feat = c

    def forward(self, x):
        return self.blocks(self.stem(x)).mean((2, 3))


class Model(nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc
        self.head = nn.Sequential(nn.Linear(enc.feat, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128))

    def forward(self, x):
        return self.head(self.enc(x))


def ntxent(z, tau=0.5):
    n = z.shape[0] // 2
    u = F.normalize(z, dim=1)
    s = u @ u.t() / tau
    s.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(s, target)


def lars_step(params, bufs, lr=0.3, momentum=0.9, wd=1e-6, eta=0.02, eps=1e-8):
    """solo-learn's LARS, as our optimizer: trust ratio for >1-d tensors, then SGD momentum."""
    with torch.no_grad():
        for p, b in zip(params, bufs):
            g = p.grad
            if p.ndim > 1:
                pn, gn = p.norm(), g.norm()
                if pn > 0 and gn > 0:
                    g = (g + wd * p) * (pn / (gn + pn * wd + eps) * eta)
            b.mul_(momentum).add_(g)
            p.add_(b, alpha=-lr)


def bench(name, model, batch, steps, warmup):
    torch.manual_seed(0)
    x = torch.randn(2 * batch, 1, 28, 28)
    params = [p for p in model.parameters()]
    bufs = [torch.zeros_like(p) for p in params]
    model.train()
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        for p in params:
            p.grad = None
        loss = ntxent(model(x))
        loss.backward()
        lars_step(params, bufs)
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


def info():
    """The build facts that decide PyTorch's speed here: ATen's CPU capability is the
    ISA its vectorised kernels dispatch to (1.13 picks AVX2 even on AVX-512 machines
    unless ATEN_CPU_CAPABILITY says otherwise)."""
    cfg = torch.__config__.show()
    cap = next((l.split(":", 1)[1].strip() for l in cfg.splitlines() if "CPU capability usage" in l), "unknown")
    blas = next((p.split("=", 1)[1] for p in cfg.replace(",", " ").split() if p.startswith("BLAS_INFO=")), "unknown")
    print(f"== torch: {torch.__version__}, CPU capability {cap}, BLAS {blas}, "
          f"mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}, default threads {torch.get_num_threads()}",
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--setting", default="default")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--models", default="cnn", help="comma list of cnn, resnet18-32, resnet18-64")
    ap.add_argument("--info", action="store_true", help="print the build's facts and exit")
    a = ap.parse_args()
    if a.info:
        info()
        return
    if a.steps < 1 or a.warmup < 0 or a.batch < 2:
        ap.error("need --steps >= 1, --warmup >= 0 and --batch >= 2")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    for spec in a.models.split(","):
        if spec == "cnn":
            enc = CNN(32)
        else:
            enc = ResNet18(int(spec.split("-")[1]))
        train, infer = bench(spec, Model(enc), a.batch, a.steps, a.warmup)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"torch {spec} {a.setting} train_img_s {train:.1f} infer_img_s {infer:.1f} "
              f"peak_rss_mib {rss:.0f} threads {torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
