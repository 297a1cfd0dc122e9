#!/bin/sh
# clip_eval.sh: CLIP on the emoji set, contrast against PyTorch at an equal wall time
# (issue 23, item 5; docs/clip-bench.md). One command:
#
#   MINUTES=25 THREADS=$(nproc) sh bench/clip_eval.sh
#
# 1. probe: `contrast train --method clip --data emoji --epochs 1` measures one
#    epoch (metrics.jsonl's epoch_s) and the set-up around it; the trainer has no time
#    limit, so the epochs that fit MINUTES are floor((MINUTES*60 - setup) / epoch_s)
#    (at least 1). The probe is not part of the comparison.
# 2. contrast train --method clip --data emoji --epochs E: its wall time T (the whole
#    command: loading, tokenizer, training, checkpoint) is measured.
# 3. contrast zeroshot --data emoji-test, and contrast eval --data emoji --json (zero-
#    shot and image <-> text R@1/5/10 on the held-out names and on the training names).
# 4. parity: bench/torch_clip.py --eval-checkpoint evaluates contrast's checkpoint in
#    PyTorch; its numbers must equal contrast eval's (same model, tokenizer, metrics),
#    else the script stops.
# 5. bench/torch_clip.py --like CHECKPOINT --seconds T: the same model and settings
#    trained in PyTorch for the same wall time, evaluated the same way.
# 6. a markdown table: contrast, PyTorch, chance; then the commands.
#
# Environment:
#   MINUTES     training budget of each side (default 25)
#   THREADS     contrast --threads and torch.set_num_threads (default: nproc); PyTorch
#               runs with OPENBLAS_NUM_THREADS=1, the "best" setting of make bench
#   CLIP_ARGS   more `contrast train` flags, e.g. "--image-encoder vit" (PyTorch
#               follows through the checkpoint's metadata)
#   OUT         folder for the runs and JSON files (default runs/clip-eval-<time>)
#   CONTRAST_BIN  the contrast binary (default ./contrast)
# Takes about 2 x MINUTES + the probe epoch + the evaluations (a few minutes).
set -eu
MINUTES=${MINUTES:-25}
THREADS=${THREADS:-$(nproc)}
CLIP_ARGS=${CLIP_ARGS:-}
BIN=${CONTRAST_BIN:-./contrast}
PY=/usr/bin/python3
OUT=${OUT:-runs/clip-eval-$(date +%Y%m%d-%H%M%S)}
case "$MINUTES" in '' | *[!0-9.]*) echo "clip_eval.sh: MINUTES must be a number, not '$MINUTES'" >&2; exit 2 ;; esac
[ "$THREADS" -ge 1 ] 2>/dev/null || { echo "clip_eval.sh: THREADS must be >= 1" >&2; exit 2; }
[ -x "$BIN" ] || { echo "clip_eval.sh: no contrast binary at $BIN (make, or set CONTRAST_BIN)" >&2; exit 2; }
$PY -c 'import torch' 2>/dev/null || { echo "clip_eval.sh: no PyTorch for $PY (apt install python3-torch)" >&2; exit 2; }
mkdir -p "$OUT"
budget=$($PY -c "print(round($MINUTES * 60))")
now() { $PY -c 'import time; print(f"{time.time():.3f}")'; }
log() { echo "== $*" >&2; }

log "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "budget ${MINUTES} min (${budget} s) per side, $THREADS threads, out $OUT"

# 1. the probe epoch
probe="$BIN train --method clip --data emoji $CLIP_ARGS --threads $THREADS --epochs 1 --quiet --overwrite --out $OUT/probe"
log "probe: $probe"
t0=$(now)
$probe > "$OUT/probe.log"
t1=$(now)
epochs=$($PY - "$OUT/probe/metrics.jsonl" "$t0" "$t1" "$budget" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
epoch_s = [r["epoch_s"] for r in rows if "epoch_s" in r][-1]
wall, budget = float(sys.argv[3]) - float(sys.argv[2]), float(sys.argv[4])
setup = max(0.0, wall - epoch_s)
print(max(1, int((budget - setup) // epoch_s)))
print("probe: one epoch %.1f s, set-up %.1f s" % (epoch_s, setup), file=sys.stderr)
EOF
)
log "contrast: $epochs epochs fit ${budget} s"

# 2. contrast
ctrain="$BIN train --method clip --data emoji $CLIP_ARGS --threads $THREADS --epochs $epochs --quiet --overwrite --out $OUT/contrast"
log "$ctrain"
t0=$(now)
$ctrain > "$OUT/contrast_train.log"
t1=$(now)
secs=$($PY -c "print(f'{$t1 - $t0:.1f}')")
ckpt=$OUT/contrast/checkpoint.safetensors
log "contrast trained in $secs s"

# 3. contrast's evaluation
czs="$BIN zeroshot --checkpoint $ckpt --data emoji-test --threads $THREADS --json $OUT/contrast_zeroshot.json"
log "$czs"
$czs
ceval="$BIN eval --checkpoint $ckpt --data emoji --threads $THREADS --json"
log "$ceval > $OUT/contrast_eval.json"
$ceval > "$OUT/contrast_eval.json"

# 4. parity: contrast's checkpoint evaluated by the PyTorch script
peval="$PY bench/torch_clip.py --eval-checkpoint $ckpt --train-eval --threads $THREADS --json $OUT/parity.json"
log "$peval"
OPENBLAS_NUM_THREADS=1 $peval 2> "$OUT/parity.log" > /dev/null
$PY - "$OUT/contrast_eval.json" "$OUT/parity.json" <<'EOF'
import json, sys
c, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bad = [(s, k, c[s][k], p[s][k]) for s in ("test", "train") for k in c[s] if k in p[s] and abs(c[s][k] - p[s][k]) > 2e-3]
n = sum(1 for s in ("test", "train") for k in c[s] if k in p[s])
if bad or n < 30:
    print("clip_eval.sh: PyTorch does not evaluate contrast's checkpoint as contrast does (%d numbers compared): %s"
          % (n, bad), file=sys.stderr)
    sys.exit(1)
worst = max(abs(c[s][k] - p[s][k]) for s in ("test", "train") for k in c[s] if k in p[s])
print("== parity: contrast's checkpoint evaluated in PyTorch: %d numbers, largest difference from contrast eval's "
      "%.2g (limit 2e-3: a tie broken otherwise by float rounding)" % (n, worst), file=sys.stderr)
EOF

# 5. PyTorch for the same wall time
ptrain="$PY bench/torch_clip.py --like $ckpt --seconds $secs --threads $THREADS --train-eval --json $OUT/torch.json"
log "OPENBLAS_NUM_THREADS=1 $ptrain"
OPENBLAS_NUM_THREADS=1 $ptrain 2> "$OUT/torch_train.log" > /dev/null

# 6. the table
$PY - "$OUT" "$secs" "$epochs" "$THREADS" "$ctrain" "$czs" "$ceval" "OPENBLAS_NUM_THREADS=1 $ptrain" <<'EOF'
import json, sys
out, secs, epochs, threads = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
c = json.load(open(out + "/contrast_eval.json"))
t = json.load(open(out + "/torch.json"))
m = [json.loads(l) for l in open(out + "/contrast/metrics.jsonl") if l.strip()]
steps = m[-1].get("step", "?") if m else "?"
rows = [("zero-shot top-1", "zeroshot_top1", "chance_top1"), ("zero-shot top-5", "zeroshot_top5", "chance_top5")]
rows += [("image → text R@%d" % k, "i2t_r%d" % k, "chance_i2t_r%d" % k) for k in (1, 5, 10)]
rows += [("text → image R@%d" % k, "t2i_r%d" % k, "chance_t2i_r%d" % k) for k in (1, 5, 10)]
print()
print("CLIP on emoji, %.0f s of training each (%s threads): contrast %s epochs (%s steps), PyTorch %d steps "
      "(%.2f epochs)" % (secs, threads, epochs, steps, t["steps"], t["epochs"]))
print()
for split, title in (("test", "held-out names"), ("train", "training names (reference)")):
    cs, ts = c[split], t[split]
    print("| %s (%d images, %d classes, %d captions) | contrast | PyTorch | chance |" %
          (title, cs["n_images"], cs["n_classes"], cs["n_texts"]))
    print("| --- | ---: | ---: | ---: |")
    for name, k, ch in rows:
        print("| %s | %.1f%% | %.1f%% | %.1f%% |" % (name, 100 * cs[k], 100 * ts[k], 100 * cs[ch]))
    print()
print("commands:")
for cmd in sys.argv[5:]:
    print("    " + cmd)
print("results: %s/{contrast_eval,contrast_zeroshot,torch,parity}.json" % out)
EOF
