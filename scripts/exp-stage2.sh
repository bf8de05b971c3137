#!/usr/bin/env bash
# Stage 2 experiment (issue 5): from a sparse-trained checkpoint, prune with the
# global grouping and with the scale-module grouping at the same parameter
# budget, then fine-tune both briefly; VOC07 mAP@0.5 right after pruning and
# after the fine-tune, sizes and measured latency.
#   scripts/exp-stage2.sh SPARSE.h5 [OUT_DIR] [TARGET] [FT_ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
SP=${1:?usage: scripts/exp-stage2.sh SPARSE.h5 [OUT_DIR] [TARGET] [FT_ITERATIONS]}
OUT=${2:-runs/exp-stage2}
TARGET=${3:-0.5}
FT=${4:-300}
DATA=${DATA:-runs/synth}
W=./build/whittle
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$OUT"
map() { $W eval "$1" --data "$DATA" --metric voc07 | sed -n 's/^voc07 mAP@0.5 .* = \([0-9.]*\).*/\1/p'; }
for g in global scale-module; do # one after the other: the latency figures need the machine
    $W prune "$SP" --groups $g --target-params "$TARGET" --bench-runs 7 -o "$OUT/$g" > "$OUT/$g.prune.txt"
done
for g in global scale-module; do
    $W train --cfg "$OUT/$g/pruned.cfg" --init "$OUT/$g/pruned.h5" --data "$DATA" --out "$OUT/$g/ft" \
        --max-batches "$FT" --lr 0.004 --burn-in 0 --policy cosine --batch 16 --subdivisions 1 \
        --eval-every 0 --threads 1 > "$OUT/$g.ft.log" 2>&1 &
done
wait
M0=$(map "$SP")
json() { sed -n "s/^  \"$2\": \[\([0-9.]*\), \([0-9.]*\)\],/\1 \2/p" "$1/report.json"; }
lat() { sed -n 's/.*"before": \[\([0-9.]*\), \([0-9.]*\)\], "after": \[\([0-9.]*\), \([0-9.]*\)\].*/\1 \2 \3 \4/p' "$1/report.json"; }
echo "sparse model: VOC07 mAP@0.5 $M0"
echo "| grouping | params | conv GFLOPs | latency b1 / b8 (ms) | mAP pruned | mAP after $FT it fine-tune |"
echo "|---|---|---|---|---|---|"
for g in global scale-module; do
    read -r p0 p1 <<< "$(json "$OUT/$g" params)"
    read -r f0 f1 <<< "$(json "$OUT/$g" conv_flops)"
    read -r a b c d <<< "$(lat "$OUT/$g")"
    awk -v g=$g -v p0="$p0" -v p1="$p1" -v f0="$f0" -v f1="$f1" -v a="$a" -v b="$b" -v c="$c" -v d="$d" \
        -v m1="$(map "$OUT/$g/pruned.h5")" -v m2="$(map "$OUT/$g/ft/last.h5")" 'BEGIN {
        printf "| %s | %d -> %d (%.1f %%) | %.3f -> %.3f (%.1f %%) | %.1f -> %.1f / %.1f -> %.1f | %s | %s |\n",
            g, p0, p1, 100 * (p1 - p0) / p0, f0 / 1e9, f1 / 1e9, 100 * (f1 - f0) / f0, a * 1e3, c * 1e3, b * 1e3,
            d * 1e3, m1, m2 }'
done
