#!/usr/bin/env bash
# Issue 19's per-change table: whittle's trainer with each change added in
# turn, and the independent PyTorch reference (bench/torch_train.py), on the
# hard proxy (whittle mkdata --preset hard), for each data seed; every run
# one thread pinned to one of two cores, two runs at a time, all scored by
# whittle eval (VOC07 and VOC all-point). whittle's rows train the same
# number of iterations (ITERS of 16 images), so each change is compared on
# the same images; the PyTorch reference trains for MINUTES of wall clock
# (set it to what whittle's rows take: the table shows each row's seconds).
#
#   bench/trainer_table.sh OUT ITERS MINUTES SEED...
#
# Rows (cumulative, yolov4-tiny --classes 6 --size 256 --width-multiple 0.5,
# batch 16, cosine, the training flags of issue 19's new user):
#   A  darknet's loss keys (--loss darknet), darknet's anchors scaled to 256,
#      no weight averaging, SGD --lr 0.008 --burn-in 100
#   B  + anchors from the data (whittle model --anchors-from)
#   C  + the balanced loss (loss_norm=mean, YOLOv5's gains, iou_thresh .213),
#      SGD at the generated lr 0.01, momentum .937
#   D  + weight averaging (EMA; whittle's defaults from here)
#   E  + mosaic (--mosaic 0.5)
#   F  D with AdamW (--optimizer adamw --lr 0.001)
#   G  D with YOLOv5's ratio assignment ([yolo] anchor_t=4)
#   H  D with YOLOv5's output-bias priors ([yolo] bias_prior=1)
#   I  D with both (anchor_t=4, bias_prior=1)
#   J  I without darknet's ignore rule (ignore_thresh=1: as YOLOv5, every
#      unassigned prediction learns objectness 0)
#   K  J with a milder crop jitter ([yolo] jitter=.1 instead of .3)
#   L  D with the milder jitter alone
#   T  bench/torch_train.py on D's cfg (YOLOv5's recipe: AdamW, EMA, ...)
# Writes OUT/seedS/ROW/{train.txt,eval.txt,map_voc.txt} and OUT/table.md.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 4 ] || { sed -n '10p' "$0" | cut -c3-; exit 2; }
OUT="$1" ITERS="$2" MIN="$3"
shift 3
SEEDS=("$@")
W="${WHITTLE:-$ROOT/build/whittle}"
PY="${WH_PYTHON:-/usr/bin/python3}"
ROWS="${ROWS:-A B C D E F T}"
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

for s in "${SEEDS[@]}"; do
    D="$OUT/data-seed$s"
    "$W" mkdata --preset hard --images 2500 --test-fraction 0.2 --seed "$s" --out "$D" > /dev/null || exit 1
    "$W" model yolov4-tiny --classes 6 --size 256 --width-multiple 0.5 --loss darknet -o "$D/A.cfg" 2> /dev/null
    "$W" model yolov4-tiny --classes 6 --size 256 --width-multiple 0.5 --loss darknet --anchors-from "$D" \
        -o "$D/B.cfg" 2> /dev/null
    "$W" model yolov4-tiny --classes 6 --size 256 --width-multiple 0.5 --anchors-from "$D" -o "$D/C.cfg" \
        2> /dev/null || exit 1
    sed 's/^loss_norm=mean$/&\nanchor_t=4/' "$D/C.cfg" > "$D/G.cfg"
    sed 's/^loss_norm=mean$/&\nbias_prior=1/' "$D/C.cfg" > "$D/H.cfg"
    sed 's/^loss_norm=mean$/&\nanchor_t=4\nbias_prior=1/' "$D/C.cfg" > "$D/I.cfg"
    sed 's/^ignore_thresh=.*/ignore_thresh=1/' "$D/I.cfg" > "$D/J.cfg"
    sed 's/^jitter=.*/jitter=.1/' "$D/J.cfg" > "$D/K.cfg"
    sed 's/^jitter=.*/jitter=.1/' "$D/C.cfg" > "$D/L.cfg"
done

job() { # core seed row
    local core=$1 s=$2 row=$3 D="$OUT/data-seed$2" R="$OUT/seed$2/$3"
    rm -rf "$R"
    mkdir -p "$R"
    local pin=(taskset -c "$core")
    local common=(--data "$D" --out "$R/run" --batch 16 --subdivisions 1 --policy cosine --threads 1
                  --max-batches "$ITERS" --test-split '' --seed "$s")
    local ck="$R/run/last.h5"
    case $row in
    A) "${pin[@]}" "$W" train --cfg "$D/A.cfg" "${common[@]}" --no-ema --lr 0.008 --burn-in 100 ;;
    B) "${pin[@]}" "$W" train --cfg "$D/B.cfg" "${common[@]}" --no-ema --lr 0.008 --burn-in 100 ;;
    C) "${pin[@]}" "$W" train --cfg "$D/C.cfg" "${common[@]}" --no-ema --burn-in 100 ;;
    D) "${pin[@]}" "$W" train --cfg "$D/C.cfg" "${common[@]}" --burn-in 100 ;;
    E) "${pin[@]}" "$W" train --cfg "$D/C.cfg" "${common[@]}" --burn-in 100 --mosaic 0.5 ;;
    F) "${pin[@]}" "$W" train --cfg "$D/C.cfg" "${common[@]}" --burn-in 100 --optimizer adamw --lr 0.001 ;;
    G) "${pin[@]}" "$W" train --cfg "$D/G.cfg" "${common[@]}" --burn-in 100 ;;
    H) "${pin[@]}" "$W" train --cfg "$D/H.cfg" "${common[@]}" --burn-in 100 ;;
    I | J | K | L) "${pin[@]}" "$W" train --cfg "$D/$row.cfg" "${common[@]}" --burn-in 100 ;;
    T) "${pin[@]}" "$PY" "$ROOT/bench/torch_train.py" --cfg "$D/C.cfg" --data "$D" --out "$R/run" --batch 16 \
           --minutes "$MIN" --seed "$s" --threads 1 --no-eval &&
           "$W" import-darknet "$D/C.cfg" "$R/run/torch.weights" -o "$R/run/torch.h5" --threads 1
       ck="$R/run/torch.h5" ;;
    esac > "$R/train.txt" 2>&1
    "${pin[@]}" "$W" eval "$ck" --data "$D" --metric voc07 --threads 1 --dets-out "$R/dets.txt" > "$R/eval.txt" 2>&1
    "$W" map --gt "$D" --dets "$R/dets.txt" --metric voc > "$R/map_voc.txt" 2>&1
}

# two workers, one per core: worker c takes every other job
jobs=()
for s in "${SEEDS[@]}"; do for r in $ROWS; do jobs+=("$s $r"); done; done
for c in 0 1; do
    (for ((i = c; i < ${#jobs[@]}; i += 2)); do job $c ${jobs[$i]}; done) &
done
wait

val() { sed -n "s/.*mAP@0.5 ([^)]*) = \([0-9.]*\).*/\1/p" "$1" 2> /dev/null | tail -n 1; }
{
    echo "| row | seed | images seen | training s | VOC07 mAP@0.5 | VOC mAP@0.5 |"
    echo "|---|---|---|---|---|---|"
    for r in $ROWS; do
        for s in "${SEEDS[@]}"; do
            R="$OUT/seed$s/$r"
            if [ "$r" = T ]; then
                read -r img sec < <("$PY" -c "import json; r = json.load(open('$R/run/result.json')); \
print(r['images_seen'], round(r['seconds']))" 2> /dev/null)
            else
                it=$(sed -n 's/^{"iteration": \([0-9]*\), "loss".*/\1/p' "$R/run/train.jsonl" 2> /dev/null | tail -n 1)
                img=$(( ${it:-0} * 16 ))
                sec=$(awk -F'"seconds": ' '/"loss"/ { split($2, a, ","); t += a[1] } END { printf "%.0f", t }' \
                    "$R/run/train.jsonl" 2> /dev/null)
            fi
            echo "| $r | $s | ${img:-?} | ${sec:-?} | $(val "$R/eval.txt") | $(val "$R/map_voc.txt") |"
        done
    done
} | tee "$OUT/table.md"
