#!/bin/sh
# text_eval.sh: the README's text results in one run (issue 22, item 5). On the
# debian-descriptions corpus (55,106 train / 6,121 test pairs, docs/text.md):
#
#   1. contrast train --method pairs for about MINUTES of training: a short timing run
#      (2 epochs of 4 batches of real training pairs, as pairs:FILE) measures a step,
#      then --epochs is the number of whole epochs that fit (the warm-up is
#      min(1, epochs/10) epochs); when not even one epoch fits, one epoch of the
#      first N pairs (--limit) that fit, in the corpus' package-name order;
#   2. contrast eval --probe on its checkpoint (R@1, R@10, MRR@10, Section kNN, probe);
#   3. bench/torch_text.py: the same model, objective, optimizer, batches and
#      tokenizer (read from the checkpoint) in PyTorch, for the seconds contrast's
#      epochs took (the sum of metrics.jsonl's epoch_s), then the same metrics;
#      first --check-forward: the PyTorch module holding contrast's trained weights
#      must give contrast's embeddings (stops the run if not);
#   4. bench/text_baselines.py: TF-IDF, fastText, chance;
# and prints one markdown table with the commands.
#
#   sh bench/text_eval.sh            (after make and sh tools/deps.sh torch)
# Environment: MINUTES (training budget of each trained model, default 25),
# THREADS (compute threads of everything, default all cores), LIMIT (train on the
# first N training pairs only: for a smoke test; default 0, all), OUT (the folder
# for runs and JSON, default runs/text-eval; replaced), CONTRAST_BIN (./contrast).
# Expect about 2 x MINUTES plus the evaluations, fastText's skipgram (minutes on
# two cores) and the timing run.
set -eu
MINUTES=${MINUTES:-25}
THREADS=${THREADS:-$(nproc)}
LIMIT=${LIMIT:-0}
OUT=${OUT:-runs/text-eval}
BIN=${CONTRAST_BIN:-./contrast}
PY=/usr/bin/python3
B=256
export PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}"
[ -x "$BIN" ] || { echo "text_eval: no $BIN (make first)" >&2; exit 2; }
case "$MINUTES$THREADS$LIMIT" in *[!0-9.]*) echo "text_eval: MINUTES, THREADS, LIMIT must be numbers" >&2; exit 2 ;; esac
rm -rf "$OUT"
mkdir -p "$OUT"
T0=$(date +%s)
say() { echo "== [$(($(date +%s) - T0)) s] $*" >&2; }

# ---- 1. timing run, then the training run --------------------------------------------
say "timing contrast's step (threads $THREADS)"
$PY - "$OUT/calib.tsv" $((4 * B)) <<'EOF'
import sys, contrast
d = contrast.text_dataset("debian-descriptions", train=True)
with open(sys.argv[1], "w", encoding="utf-8", errors="surrogateescape") as f:
    for a, p in list(zip(d.anchors.tolist(), d.positives.tolist()))[:int(sys.argv[2])]:
        f.write("%s\t%s\n" % (d.texts[a], d.texts[p]))
EOF
"$BIN" train --method pairs --data "pairs:$OUT/calib.tsv" --epochs 2 --batch $B --threads "$THREADS" \
    --out "$OUT/calib" --quiet >/dev/null
plan=$($PY - "$OUT/calib/metrics.jsonl" "$MINUTES" "$LIMIT" $B <<'EOF'
import json, sys, contrast
rows = [json.loads(l) for l in open(sys.argv[1]) if '"epoch_s"' in l]
step_s = rows[1]["epoch_s"] / (rows[1]["step"] - rows[0]["step"])  # the second epoch: no first-touch costs
budget, limit, B = float(sys.argv[2]) * 60, int(sys.argv[3]), int(sys.argv[4])
n = len(contrast.text_dataset("debian-descriptions", train=True).anchors)
n = min(n, limit) if limit > 0 else n
spe = n // B
epochs = int(budget / (step_s * spe))
if epochs >= 1:
    print(epochs, limit, min(1.0, epochs / 10), "%.3f" % step_s)
else:  # less than one epoch fits: one epoch of the first pairs that fit
    steps = max(2, int(budget / step_s))
    print(1, steps * B, 0.1, "%.3f" % step_s)
EOF
)
set -- $plan
EPOCHS=$1 TLIMIT=$2 WARM=$3 STEP_S=$4
say "a step takes ${STEP_S}s: --epochs $EPOCHS --limit $TLIMIT --warmup-epochs $WARM"
TRAIN_CMD="contrast train --method pairs --data debian-descriptions --epochs $EPOCHS --limit $TLIMIT --warmup-epochs $WARM --threads $THREADS --no-probe --out $OUT/contrast"
say "$TRAIN_CMD"
"$BIN" train --method pairs --data debian-descriptions --epochs "$EPOCHS" --limit "$TLIMIT" --warmup-epochs "$WARM" \
    --threads "$THREADS" --no-probe --out "$OUT/contrast" --quiet >"$OUT/contrast_train.txt"
CKPT=$OUT/contrast/checkpoint.safetensors
SECONDS_C=$($PY -c 'import json,sys; print("%.1f" % sum(json.loads(l).get("epoch_s", 0) for l in open(sys.argv[1])))' \
    "$OUT/contrast/metrics.jsonl")
say "contrast trained for ${SECONDS_C}s"

# ---- 2. contrast eval ----------------------------------------------------------------
EVAL_CMD="contrast eval --checkpoint $CKPT --data debian-descriptions --probe --threads $THREADS --json"
say "$EVAL_CMD"
"$BIN" eval --checkpoint "$CKPT" --data debian-descriptions --probe --threads "$THREADS" --json >"$OUT/contrast_eval.json"

# ---- 3. PyTorch for the same seconds --------------------------------------------------
say "PyTorch's model with the checkpoint's weights must embed as contrast does"
$PY bench/torch_text.py --checkpoint "$CKPT" --check-forward --threads "$THREADS" >&2
TORCH_CMD="python3 bench/torch_text.py --checkpoint $CKPT --seconds $SECONDS_C --warmup-epochs $WARM --threads $THREADS"
say "$TORCH_CMD"
$PY bench/torch_text.py --checkpoint "$CKPT" --seconds "$SECONDS_C" --warmup-epochs "$WARM" --threads "$THREADS" \
    --json "$OUT/torch.json" >"$OUT/torch.txt"

# ---- 4. baselines ----------------------------------------------------------------------
BASE_CMD="python3 bench/text_baselines.py --limit $TLIMIT --threads $THREADS"
say "$BASE_CMD"
$PY bench/text_baselines.py --limit "$TLIMIT" --threads "$THREADS" --json "$OUT/baselines.json" >"$OUT/baselines.txt"

say "done"
# ---- the table -------------------------------------------------------------------------
$PY - "$OUT" "$MINUTES" "$THREADS" "$TRAIN_CMD" "$EVAL_CMD" "$TORCH_CMD" "$BASE_CMD" <<'EOF'
import json, os, platform, sys
out, minutes, threads, train_cmd, eval_cmd, torch_cmd, base_cmd = sys.argv[1:]
ce = json.load(open(os.path.join(out, "contrast_eval.json")))
tt = json.load(open(os.path.join(out, "torch.json")))
bl = json.load(open(os.path.join(out, "baselines.json")))
mets = [json.loads(l) for l in open(os.path.join(out, "contrast", "metrics.jsonl")) if '"epoch_s"' in l]
csec = sum(m["epoch_s"] for m in mets)
f = lambda x: "-" if x is None or x < 0 else "%.4f" % x
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print("debian-descriptions, held-out split: %d short -> long queries among %d distinct long descriptions; "
      "Section (58 labels) from the short description. %s, %s threads, budget %s minutes."
      % (ce["n_pairs"], ce["n_gallery"], cpu, threads, minutes))
print()
print("| method | training | R@1 | R@10 | MRR@10 | Section kNN | Section probe / classifier |")
print("| --- | --- | --- | --- | --- | --- | --- |")
print("| contrast (transformer, pairs) | %.0f s, %d steps | %s | %s | %s | %s | %s |" % (
    csec, mets[-1]["step"], f(ce["r1"]), f(ce["r10"]), f(ce["mrr10"]), f(ce["knn_top1"]), f(ce["probe_top1"])))
print("| PyTorch %s, same model | %.0f s, %d steps | %s | %s | %s | %s | - |" % (
    tt["torch"], tt["seconds"], tt["steps"], f(tt["r1"]), f(tt["r10"]), f(tt["mrr10"]), f(tt.get("knn_top1"))))
t = bl["tfidf"]
print("| TF-IDF (scikit-learn) | %.0f s | %s | %s | %s | %s | - |" % (
    t["seconds"], f(t["r1"]), f(t["r10"]), f(t["mrr10"]), f(t.get("knn_top1"))))
t = bl["fasttext"]
print("| fastText (skipgram vectors; supervised) | %.0f s | %s | %s | %s | %s | %s |" % (
    t["seconds"], f(t["r1"]), f(t["r10"]), f(t["mrr10"]), f(t.get("knn_top1")), f(t.get("classifier_top1"))))
t = bl["chance"]
print("| chance (Section: majority class) | - | %s | %s | %s | - | %s |" % (
    f(t["r1"]), f(t["r10"]), f(t["mrr10"]), f(t.get("classifier_top1"))))
print()
print("Commands (bench/text_eval.sh, MINUTES=%s THREADS=%s):" % (minutes, threads))
print()
for c in (train_cmd, eval_cmd, torch_cmd, base_cmd):
    print("    " + c)
EOF
