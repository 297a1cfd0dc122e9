#!/bin/sh
# run.sh BUILD: `make bench`. Times one SimCLR training step (B=256 pairs, 512
# views of 1x28x28) in C (BUILD/bench/bench_step) and in PyTorch
# (bench/torch_step.py), for the default CNN and ResNet-18 at widths 32 and 64,
# then the augmentation pipeline (BUILD/bench/bench_augment), and prints a table.
#
# Every model is timed as alternating pairs, C on its default threads then PyTorch's
# best setting (torch.set_num_threads(ncpu) with OPENBLAS_NUM_THREADS=1), each run
# in its own process, median step of BENCH_STEPS timed steps after BENCH_WARMUP
# warm-up ones. Each pair sees about the same machine, so on a machine whose other
# load comes and goes the pair ratios move less than a ratio of two separate runs;
# the table gives their median and range (lowest-highest). Once per model besides:
# C on one thread, and PyTorch's "default" setting (its own thread choice).
# ResNet-18 width 64 runs with --recompute (conv outputs recomputed in backward:
# less memory, more time; `contrast train --recompute`).
#
# Settings (environment):
#   BENCH_PAIRS=N   pairs per model (default 3, at least 1)
#   BENCH_STEPS=N   timed steps per run (default 5); BENCH_WARMUP=N warm-ups (default 2)
#   BENCH_QUICK=1   skips ResNet-18 width 64 (the longest part)
#   BENCH_MODELS="cnn-32 resnet18-32"   only these rows (default: all; rows: cnn-32 resnet18-32
#                   resnet18-64 transformer vit clip)
#   BENCH_BATCH=N   batch in pairs (default 256), e.g. 16 for a smoke test
# The header prints the machine, its ISA extensions, the compiler flags' target and
# the settings; numbers from other steps/warm-ups than 5/2 are not the README's.
set -u
BUILD=${1:-build}
B=$BUILD/bench
PY=/usr/bin/python3
NCPU=$(nproc)
PAIRS=${BENCH_PAIRS:-3}
STEPS=${BENCH_STEPS:-5}
WARM=${BENCH_WARMUP:-2}
BATCH=${BENCH_BATCH:-256}
[ "$PAIRS" -ge 1 ] 2>/dev/null || { echo "run.sh: BENCH_PAIRS must be >= 1" >&2; exit 2; }
[ "$STEPS" -ge 1 ] 2>/dev/null && [ "$WARM" -ge 0 ] 2>/dev/null || { echo "run.sh: bad BENCH_STEPS/BENCH_WARMUP" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM
have_torch=1
$PY -c 'import torch' 2>/dev/null || { have_torch=0; echo "run.sh: no PyTorch for $PY; C numbers only"; }

# ISA: the CPU's vector extensions, and those the build's -march=native turns on
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(sse4_2|avx|avx2|fma|f16c|avx512[a-z_0-9]*|amx[a-z_0-9]*)$' | tr '\n' ' ')
built=$(${CC:-cc} -march=native -Q --help=target 2>/dev/null | awk '$2 == "[enabled]" && $1 ~ /^-m(avx|fma|sse4\.2)/ { sub(/^-m/, "", $1); printf "%s ", $1 }')
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $NCPU CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== isa: ${isa:-unknown}"
echo "== built for (-march=native): ${built:-unknown}"
[ $have_torch = 1 ] && $PY bench/torch_step.py --info
echo "== settings: batch $BATCH, $PAIRS pairs per model, each run $STEPS timed steps after $WARM warm-up"
"$B/bench_step" --gemm --steps 1 --warmup 0 --batch 8 | grep '^gemm' | tee "$OUT/gemm"

# run_model LABEL TORCH_SPEC C_ARGS [TORCH_SCRIPT]: the pairs, then C on 1 thread and
# PyTorch's default. TORCH_SCRIPT: bench/torch_step.py (default), bench/torch_transformer.py or bench/torch_clip.py.
# $OUT/pairs gets "pair LABEL i c_img_s t_img_s c_eval t_eval c_rss t_rss" per pair.
run_model() {
    case " ${BENCH_MODELS:-$1} " in *" $1 "*) ;; *) return 0 ;; esac
    label=$1; spec=$2; cargs="$3 --batch $BATCH --steps $STEPS --warmup $WARM"; tscript=${4:-bench/torch_step.py}
    echo "== $label ($PAIRS pairs: C default threads, then PyTorch best)"
    i=1
    while [ "$i" -le "$PAIRS" ]; do
        prof=""
        [ "$i" = 1 ] && prof="--profile" # one extra step after the timed ones, per layer type
        "$B/bench_step" $cargs $prof > "$OUT/cl" || { echo "run.sh: bench_step $cargs failed" >&2; exit 1; }
        cat "$OUT/cl"
        cline=$(awk '$1 == "c" && $5 == "train_img_s"' "$OUT/cl")
        tline="torch $spec best - - - - - - - -"
        if [ $have_torch = 1 ]; then
            tline=$(OPENBLAS_NUM_THREADS=1 $PY "$tscript" --threads "$NCPU" --setting best --models "$spec" \
                --steps "$STEPS" --warmup "$WARM" --batch "$BATCH") || { echo "run.sh: $tscript failed" >&2; exit 1; }
            echo "$tline"
        fi
        echo "$cline $tline" | awk -v l="$label" -v i="$i" \
            '{ print "pair", l, i, $6, $21, $12, $23, $14, $25 }' >> "$OUT/pairs"
        i=$((i + 1))
    done
    line=$("$B/bench_step" $cargs --threads 1 | awk '$1 == "c" && $5 == "train_img_s"')
    echo "$line"
    echo "$line" | awk -v l="$label" '{ print "c1", l, $6 }' >> "$OUT/c1"
    if [ $have_torch = 1 ]; then
        line=$($PY "$tscript" --setting default --models "$spec" --steps "$STEPS" --warmup "$WARM" --batch "$BATCH")
        echo "$line"
        echo "$line" | awk -v l="$label" '$1 == "torch" { print "tdefault", l, $5 }' >> "$OUT/tdef"
    fi
}
run_model cnn-32 cnn "--model cnn"
run_model resnet18-32 resnet18-32 "--model resnet18 --width 32"
# width 64 with --recompute (ct_model_recompute_convs): the setting for its memory target
[ "${BENCH_QUICK:-0}" = 1 ] || run_model resnet18-64 resnet18-64 "--model resnet18 --width 64 --recompute"
# the transformer issue's shapes: (a) text V 8192, T 32, C 256, L 4, H 4; (b) ViT p 4, C 192, L 6, H 3
run_model transformer transformer "--model transformer" bench/torch_transformer.py
run_model vit vit "--model vit" bench/torch_transformer.py
# CLIP (issue 23): one `contrast train --method clip` step at its defaults, both towers (cnn 32 on 3x32x32,
# text transformer C 128, L 2, H 4, T 32, V 8192, EOT), embedding 128, AdamW, the scale's clamp; 1 image = 1 pair
run_model clip clip "--model clip" bench/torch_clip.py

echo "== augmentation"
"$B/bench_augment" fashion-mnist "" 20000 2>&1 | grep -E 'threads=' | tee "$OUT/aug"

echo "== tokenizer (byte-level BPE: training and encoding throughput)"
"$B/bench_text" --threads "$NCPU" | tee "$OUT/text"

echo
echo "== summary: training images/s (1 image = 1 pair of views), eval images/s, peak RSS MiB"
echo "   medians over $PAIRS alternating pairs of $STEPS steps after $WARM warm-up; C/best = median of the"
echo "   pairs' ratios C / PyTorch best, lowest-highest beside it; C 1thr and torch dflt: one run each"
touch "$OUT/c1" "$OUT/tdef"
awk '
    function med(a, n,    i, j, t, b) {
        for (i = 1; i <= n; i++) b[i] = a[i]
        for (i = 2; i <= n; i++) for (j = i; j > 1 && b[j - 1] > b[j]; j--) { t = b[j]; b[j] = b[j - 1]; b[j - 1] = t }
        lo = b[1]; hi = b[n]
        return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
    }
    FILENAME ~ /\/c1$/   { c1[$2] = $3; next }
    FILENAME ~ /\/tdef$/ { td[$2] = $3; next }
    $1 == "pair" {
        m = $2
        if (!(m in np)) order[++nm] = m
        k = ++np[m]
        C[m, k] = $4; T[m, k] = $5; CE[m, k] = $6; TE[m, k] = $7; CR[m, k] = $8; TR[m, k] = $9
    }
    END {
        printf "%-12s %8s %8s %10s %10s %8s %13s %8s %8s %6s %6s\n", "model", "C", "C 1thr", "torch best",
               "torch dflt", "C/best", "range", "C eval", "t eval", "C RSS", "t RSS"
        for (i = 1; i <= nm; i++) {
            m = order[i]; n = np[m]; torch = T[m, 1] != "-"
            for (k = 1; k <= n; k++) { a[k] = C[m, k] }
            c = med(a, n)
            for (k = 1; k <= n; k++) { a[k] = CE[m, k] }
            ce = med(a, n)
            for (k = 1; k <= n; k++) { a[k] = CR[m, k] }
            cr = med(a, n)
            tb = "-"; te = "-"; tr = "-"; rat = "-"; rng = "-"
            if (torch) {
                for (k = 1; k <= n; k++) { a[k] = T[m, k] }
                tb = sprintf("%.1f", med(a, n))
                for (k = 1; k <= n; k++) { a[k] = TE[m, k] }
                te = sprintf("%.1f", med(a, n))
                for (k = 1; k <= n; k++) { a[k] = TR[m, k] }
                tr = sprintf("%.0f", med(a, n))
                for (k = 1; k <= n; k++) { a[k] = C[m, k] / T[m, k] }
                rat = sprintf("%.2fx", med(a, n)); rng = sprintf("%.2fx-%.2fx", lo, hi)
            }
            printf "%-12s %8.1f %8s %10s %10s %8s %13s %8.1f %8s %6.0f %6s\n", m, c, (m in c1) ? c1[m] : "-", tb,
                   (m in td) ? td[m] : "-", rat, rng, ce, te, cr, tr
        }
    }' "$OUT/c1" "$OUT/tdef" "$OUT/pairs"
