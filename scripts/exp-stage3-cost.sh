#!/usr/bin/env bash
# The teacher's cost in stage 3 (issue 6): on a full-width YOLOv4-tiny at 416
# (20 classes, random weights after one iteration; costs do not depend on
# what the weights learned), prune half the parameters, then run the same
# iterations of plain fine-tuning and of attention distilling (teacher =
# the unpruned network) and compare the median step img/s and the peak
# resident memory (/usr/bin/time's maximum RSS).
#   scripts/exp-stage3-cost.sh [OUT_DIR] [ITERATIONS] [BATCH] [MODEL] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/exp-stage3-cost}
IT=${2:-12}
B=${3:-8}
MODEL=${4:-yolov4-tiny}
SIZE=${5:-416}
DATA=${DATA:-runs/synth}
W=./build/whittle
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
rm -rf "$OUT"
mkdir -p "$OUT"
$W model "$MODEL" --classes 5 --size "$SIZE" -o "$OUT/m.cfg" 2> /dev/null
$W train --cfg "$OUT/m.cfg" --data "$DATA" --out "$OUT/t" --max-batches 1 --batch "$B" --subdivisions 1 \
    --test-split '' > /dev/null
$W prune "$OUT/t/last.h5" --groups scale-module --target-params 0.5 --bench-runs 0 -o "$OUT/p" > /dev/null 2>&1
run() { # name, command...
    local name=$1
    shift
    /usr/bin/time -f "%M" -o "$OUT/$name.rss" "$@" --data "$DATA" --out "$OUT/$name" --max-batches "$IT" \
        --batch "$B" --subdivisions 1 --lr 0.001 --burn-in 0 --test-split '' > "$OUT/$name.log" 2>&1
}
median() { sed -n 's/.*"img_per_s": \([0-9.]*\).*/\1/p' "$1" | tail -n +3 | sort -n |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for round in 1 2; do # interleaved, two rounds each
    run "plain$round" $W train --init "$OUT/p/pruned.h5"
    run "distill$round" $W distill --teacher "$OUT/t/last.h5" --student "$OUT/p/pruned.h5" --dump-images 0
done
echo "| $MODEL $SIZE, batch $B, $IT iterations | img/s (median of steps 3+, two runs) | peak RSS (MB) |"
echo "|---|---|---|"
for k in plain distill; do
    echo "| $k | $(median "$OUT/${k}1/train.jsonl") / $(median "$OUT/${k}2/train.jsonl") | $(awk '{printf "%.0f", $1/1024}' "$OUT/${k}1.rss") / $(awk '{printf "%.0f", $1/1024}' "$OUT/${k}2.rss") |"
done
