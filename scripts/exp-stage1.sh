#!/usr/bin/env bash
# Stage 1 experiment (issue 4): constant vs dynamic sparse training from the
# same trained baseline, at the same s, learning rate and iterations.
#   scripts/exp-stage1.sh BASELINE.h5 [OUT_DIR] [S] [ITERATIONS]
# Both runs go side by side with one thread each; prints a Markdown table of
# the share of prunable |gamma| below 1e-2 and VOC07 mAP@0.5 before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: scripts/exp-stage1.sh BASELINE.h5 [OUT_DIR] [S] [ITERATIONS]}
OUT=${2:-runs/exp-stage1}
S=${3:-0.05}
IT=${4:-800}
DATA=${DATA:-runs/synth}
W=./build/whittle
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$OUT"
for sched in "constant:s=$S" "dynamic:s=$S"; do
    name=${sched%%:*}
    $W sparse --weights "$BASE" --data "$DATA" --sched "$sched" --out "$OUT/$name" \
        --max-batches "$IT" --lr 0.006 --burn-in 0 --policy cosine --batch 16 --subdivisions 1 \
        --eval-every $((IT / 2)) --threads 1 > "$OUT/$name.log" 2>&1 &
done
wait
share() { tail -1 "$1/gamma.jsonl" | sed 's/.*"channels": [0-9]*, "below_1e-3": [0-9.]*, "below_1e-2": \([0-9.]*\).*/\1/'; }
share0() { head -1 "$1/gamma.jsonl" | sed 's/.*"channels": [0-9]*, "below_1e-3": [0-9.]*, "below_1e-2": \([0-9.]*\).*/\1/'; }
map() { $W eval "$1" --data "$DATA" --metric voc07 | sed -n 's/^voc07 mAP@0.5 .* = \([0-9.]*\).*/\1/p'; }
M0=$(map "$BASE")
echo "| scheduler | s | iterations | share |gamma|<1e-2 before -> after | VOC07 mAP@0.5 before -> after |"
echo "|---|---|---|---|---|"
for name in constant dynamic; do
    echo "| $name | $S | $IT | $(share0 "$OUT/$name") -> $(share "$OUT/$name") | $M0 -> $(map "$OUT/$name/last.h5") |"
done
echo "histograms: $OUT/constant/gamma_hist.png $OUT/dynamic/gamma_hist.png"
