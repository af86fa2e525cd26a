#!/usr/bin/env bash
# The study's recipe on a GPU box: train, evaluate and export the default edge models with the paper's
# defaults (Adam, batch 32, <= 15 epochs, early stopping 5, augmentation, 224 px), and measure GPU
# training throughput. Without --data it trains on the synthetic phantom (no clinical meaning).
#
#   benchmarks/gpu/train_paper_recipe.sh OUT_DIR [FETAL_PLANES_DB_DIR]
#
# Results: OUT_DIR/<arch>/{best.pt,metrics.csv,eval/metrics.md,model.onnx}, OUT_DIR/summary.md
set -euo pipefail
OUT=${1:?usage: $0 OUT_DIR [DATA_DIR]}
DATA=${2:-}
ARCHS=${ARCHS:-"mobilenet_v3_small mobilenet_v2 resnet18"}
WORKERS=${WORKERS:-8}
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}   # e.g. "--image-size 32 --epochs 1" for a quick check
FP=${FETALPLANES:-fetalplanes}
mkdir -p "$OUT"
if [ -z "$DATA" ]; then
  DATA="$OUT/phantom"
  [ -f "$DATA/FETAL_PLANES_DB_data.csv" ] || $FP data phantom --out "$DATA" --patients "${PATIENTS:-400}" ${PHANTOM_SIZE:+--size $PHANTOM_SIZE} --force
fi
python3 benchmarks/train_throughput.py --device "$DEVICE" --batches "${TP_BATCHES:-10}" --out "$OUT/train_throughput_gpu" || true
summary="$OUT/summary.md"
echo "| arch | epochs run | best val loss | test top-1 error | test top-3 error | class acc | train s |" > "$summary"
echo "|---|---|---|---|---|---|---|" >> "$summary"
for arch in $ARCHS; do
  t0=$(date +%s)
  $FP train --data "$DATA" --arch "$arch" --pretrained "${PRETRAINED:-none}" --device "$DEVICE" \
     --workers "$WORKERS" --out "$OUT/$arch" --no-progress $EXTRA
  t1=$(date +%s)
  $FP evaluate --model "$OUT/$arch/best.pt" --data "$DATA" --out "$OUT/$arch/eval" --quiet
  $FP export --checkpoint "$OUT/$arch/best.pt" --out "$OUT/$arch/model.onnx" --data "$DATA"
  python3 - "$OUT/$arch" $((t1 - t0)) >> "$summary" <<'PY'
import json, sys
run, secs = sys.argv[1], sys.argv[2]
m = json.load(open(f"{run}/eval/metrics.json"))["metrics"]
hist = json.load(open(f"{run}/metrics.json"))
rows, best = hist["history"], hist["best_val_loss"]
print(f"| {run.rsplit('/',1)[-1]} | {len(rows)} | {best:.4f} | {m['top1_error']:.4f} | {m['top3_error']:.4f} | "
      f"{m['class_accuracy_mean']:.3f} ± {m['class_accuracy_std']:.3f} | {secs} |")
PY
done
cat "$summary"
