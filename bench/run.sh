#!/bin/sh
# run.sh BUILD: `make bench`. Times one SimCLR training step (B=256 pairs, 512
# views of 1x28x28) in C (BUILD/bench/bench_step) and in PyTorch
# (bench/torch_step.py), for the default CNN and ResNet-18 at widths 32 and 64,
# then the augmentation pipeline (BUILD/bench/bench_augment), and prints a table.
# PyTorch runs twice: "best" = torch.set_num_threads(ncpu) with
# OPENBLAS_NUM_THREADS=1, and "default" = its own defaults.
# ResNet-18 width 64 runs with --recompute (conv outputs recomputed in backward:
# less memory, more time; `contrast train --recompute`).
# BENCH_QUICK=1 skips ResNet-18 width 64 (the longest part, ~4 minutes);
# BENCH_BATCH=N changes the batch (pairs; default 256), e.g. 16 for a smoke test.
# BENCH_PAIRS=N (default 3; 0 skips) times the CNN N more times as alternating
# pairs, C on its default threads then PyTorch's best, and prints each pair's
# ratio and their median: each pair sees about the same machine, so on a machine
# whose other load comes and goes the median moves less than the table's ratio.
# Each model runs in its own process so peak RSS is per model.
set -u
BUILD=${1:-build}
B=$BUILD/bench
PY=/usr/bin/python3
NCPU=$(nproc)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM
have_torch=1
$PY -c 'import torch' 2>/dev/null || { have_torch=0; echo "run.sh: no PyTorch for $PY; C numbers only"; }

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $NCPU CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$B/bench_step" --gemm --steps 1 --warmup 0 --batch 8 | grep '^gemm' | tee "$OUT/gemm"

# model spec, C args, steps, warmup
run_model() {
    spec=$1; cargs="$2 --batch ${BENCH_BATCH:-256}"; steps=$3; warm=$4
    echo "== $spec (steps $steps after $warm warm-up)"
    "$B/bench_step" $cargs --steps "$steps" --warmup "$warm" --profile | tee -a "$OUT/c"
    "$B/bench_step" $cargs --steps "$steps" --warmup "$warm" --threads 1 | tee -a "$OUT/c1"
    if [ $have_torch = 1 ]; then
        OPENBLAS_NUM_THREADS=1 $PY bench/torch_step.py --threads "$NCPU" --setting best --models "$spec" \
            --steps "$steps" --warmup "$warm" --batch "${BENCH_BATCH:-256}" | tee -a "$OUT/t"
        $PY bench/torch_step.py --setting default --models "$spec" --steps "$steps" --warmup "$warm" \
            --batch "${BENCH_BATCH:-256}" | tee -a "$OUT/t"
    fi
}
run_model cnn "--model cnn" 6 2
run_model resnet18-32 "--model resnet18 --width 32" 2 1
# width 64 with --recompute (ct_model_recompute_convs): the setting for its memory target
[ "${BENCH_QUICK:-0}" = 1 ] || run_model resnet18-64 "--model resnet18 --width 64 --recompute" 1 1

# the CNN's ratio again, from alternating pairs (see the top)
npairs=${BENCH_PAIRS:-3}
if [ $have_torch = 1 ] && [ "$npairs" -gt 0 ]; then
    echo "== cnn, $npairs alternating pairs (C default threads, then PyTorch best; steps 6 after 2 warm-up)"
    i=1
    while [ $i -le "$npairs" ]; do
        c=$("$B/bench_step" --model cnn --batch "${BENCH_BATCH:-256}" --steps 6 --warmup 2 | awk '$1 == "c" { print $6 }')
        t=$(OPENBLAS_NUM_THREADS=1 $PY bench/torch_step.py --threads "$NCPU" --setting best --models cnn \
            --steps 6 --warmup 2 --batch "${BENCH_BATCH:-256}" | awk '$1 == "torch" { print $5 }')
        echo "pair $i c $c torch $t" | awk '{ printf "%s ratio %.2fx\n", $0, $4 / $6 }'
        i=$((i + 1))
    done | tee "$OUT/pairs"
fi

echo "== augmentation"
"$B/bench_augment" fashion-mnist "" 20000 2>&1 | grep -E 'threads=' | tee "$OUT/aug"

echo
echo "== summary: training images/s (1 image = 1 pair of views), eval images/s, peak RSS MiB"
echo "   C/torch = C (default threads) over the faster PyTorch setting; eval = encoder forward, single images"
awk -v ncpu="$NCPU" '
    $1 != "c" && $1 != "torch" { next }
    FILENAME ~ /\/c$/  { m = $2; c[m] = $6; ci[m] = $12; cr[m] = $14; order[++n] = m }
    FILENAME ~ /\/c1$/ { c1[$2] = $6 }
    FILENAME ~ /\/t$/  { key = $2 "-" $3; t[key] = $5; ti[key] = $7; tr[key] = $9 }
    END {
        printf "%-12s %9s %9s %11s %11s %8s %9s %9s %7s %7s\n", "model", "C", "C 1thr", "torch best", "torch dflt",
               "C/torch", "C eval", "t eval", "C RSS", "t RSS"
        for (i = 1; i <= n; i++) {
            m = order[i]; tm = (m == "cnn-32") ? "cnn" : m
            b = t[tm "-best"]; d = t[tm "-default"]
            printf "%-12s %9.1f %9.1f %11s %11s %8s %9.1f %9s %7.0f %7s\n", m, c[m], c1[m], b == "" ? "-" : b,
                   d == "" ? "-" : d, b == "" ? "-" : sprintf("%.2fx", c[m] / (b > d ? b : d)), ci[m],
                   ti[tm "-best"] == "" ? "-" : ti[tm "-best"], cr[m], tr[tm "-best"] == "" ? "-" : tr[tm "-best"]
        }
    }' "$OUT/c" "$OUT/c1" $( [ $have_torch = 1 ] && echo "$OUT/t" )
if [ -s "$OUT/pairs" ]; then
    sed 's/x$//' "$OUT/pairs" | sort -n -k 8 | awk '{ r[NR] = $8 } END {
        m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "cnn-32 C/torch best from %d alternating pairs: median %.2fx (%.2fx-%.2fx)\n", NR, m, r[1], r[NR] }'
fi
