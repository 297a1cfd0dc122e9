#!/bin/sh
# The main job (`make run`): SimCLR on Fashion-MNIST with the defaults, then the
# evaluation of the trained encoder (weighted kNN and linear probe on the test split).
# Extra arguments go to `contrast train`, e.g. `make run ARGS="--epochs 5"`.
set -e
out=${OUT:-runs/fashion-mnist-simclr}
./contrast train --data fashion-mnist --out "$out" --no-probe "$@"
./contrast eval --checkpoint "$out/checkpoint.safetensors" --data fashion-mnist --probe --json | tee "$out/eval-cli.json"
