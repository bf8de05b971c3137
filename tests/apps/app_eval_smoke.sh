#!/usr/bin/env bash
# The user's path end to end on a tiny synthetic dataset and model:
# mkdata -> model -> train -> eval (--dets-out) -> map re-scores the same
# number -> detect (boxes agree with eval's, a PNG) -> resume; and bad input:
# a corrupted checkpoint, a class-count mismatch, unknown flags.
. "$(dirname "$0")/common.sh" "$@"

"$W" mkdata --out "$T/d" --images 12 --size 96 --seed 3 > /dev/null; check "mkdata writes a dataset" $?
"$W" model yolov4-tiny --classes 5 --size 96 --width-multiple 0.25 -o "$T/m.cfg" 2> /dev/null
check "model writes a tiny cfg" $?

# ---- train: 3 iterations ----
# still in a long warm-up (--burn-in 1000): a barely trained network keeps
# boxes above 0.25 for detect and eval to agree on below
"$W" train --cfg "$T/m.cfg" --data "$T/d" --out "$T/run" --batch 4 --subdivisions 1 --max-batches 3 \
    --burn-in 1000 --eval-every 0 > "$T/train.txt" 2>&1
check "train exits 0" $?
[ -s "$T/run/last.h5" ]; check "train writes last.h5" $?
[ -s "$T/run/chart.png" ]; check "train writes chart.png" $?
[ "$(grep -c '^{"iteration": [0-9]*, "loss"' "$T/run/train.jsonl" 2> /dev/null)" = 3 ]
check "train.jsonl has 3 iteration lines" $?
grep -q '^{"iteration": 3, "loss"' "$T/run/train.jsonl"; check "the last iteration logged is 3" $?
# every iteration logs its loader wait: a number of seconds within the iteration's own
/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"iteration\"")]
sys.exit(0 if rows and all(0 <= r["load_wait_s"] <= r["seconds"] for r in rows) else 1)' "$T/run/train.jsonl"
check "train.jsonl logs the loader wait of each iteration (0 <= wait <= its seconds)" $?

# ---- eval, and map re-scoring its detections ----
"$W" eval "$T/run/last.h5" --data "$T/d" --dets-out "$T/dets.txt" > "$T/eval.txt" 2> "$T/eval.err"
check "eval exits 0" $?
grep -q "VOC07" "$T/eval.txt"; check "eval names the metric (VOC07)" $?
grep -q "img/s" "$T/eval.txt"; check "eval prints img/s" $?
ev_map=$(sed -n 's/^voc07 mAP@0.5 (VOC07 11-point) = \([0-9.na]*\) over.*/\1/p' "$T/eval.txt")
[ -n "$ev_map" ]; check "eval prints the mean ($ev_map)" $?
n_eval=$(sed -n 's/.* \([0-9]*\) detections (conf.*/\1/p' "$T/eval.txt")
[ -n "$n_eval" ] && [ "$n_eval" -gt 0 ] && [ "$n_eval" = "$(wc -l < "$T/dets.txt")" ]
check "--dets-out holds the $n_eval detections eval counted" $?
"$W" map --gt "$T/d" --dets "$T/dets.txt" > "$T/map.txt"; check "map reads eval's detections" $?
mp_map=$(sed -n 's/^voc07 mAP@0.5 (VOC07 11-point) = \([0-9.na]*\) over.*/\1/p' "$T/map.txt")
[ -n "$ev_map" ] && [ "$ev_map" = "$mp_map" ]; check "map gives eval's mAP ($ev_map = $mp_map)" $?
# the whole per-class table, not just the mean
diff <(sed -n '/^mAP@/,/^voc07 mAP/p' "$T/eval.txt") <(sed -n '/^mAP@/,/^voc07 mAP/p' "$T/map.txt") > /dev/null
check "map's per-class table equals eval's" $?
# the annotations alone, as the VOC devkit scores: no JPEGImages/
mkdir -p "$T/gt_only/ImageSets/Main"
cp -r "$T/d/Annotations" "$T/gt_only/"
cp "$T/d/ImageSets/Main/test.txt" "$T/gt_only/ImageSets/Main/"
[ -f "$T/d/classes.txt" ] && cp "$T/d/classes.txt" "$T/gt_only/"
"$W" map --gt "$T/gt_only" --dets "$T/dets.txt" > "$T/map_gt.txt" 2>&1
check "map --gt scores a VOC root without its images" $?
diff <(sed -n '/^mAP@/,/^voc07 mAP/p' "$T/map.txt") <(sed -n '/^mAP@/,/^voc07 mAP/p' "$T/map_gt.txt") > /dev/null
check "and gives the same table" $?
"$W" eval "$T/run/last.h5" --data "$T/d" --metric coco > "$T/coco.txt" 2> /dev/null \
    && grep -q "^coco mAP@\[0.5:0.95\] (COCO 101-point) = " "$T/coco.txt"
check "eval --metric coco names coco" $?

# ---- detect one test image ----
img_id=$(head -1 "$T/d/ImageSets/Main/test.txt" | tr -d '\r ')
img="$T/d/JPEGImages/$img_id.jpg"
"$W" detect "$T/run/last.h5" "$img" -o "$T/out.png" --data "$T/d" > "$T/detect.txt" 2> "$T/detect.err"
check "detect exits 0" $?
[ "$(head -c 4 "$T/out.png" 2> /dev/null | od -An -c | tr -d ' ')" = '211PNG' ]; check "detect -o writes a PNG" $?
awk 'NF != 6 || $2 + 0 <= 0.25 || $3 > $5 || $4 > $6 { bad = 1 } END { exit bad }' "$T/detect.txt"
check "detect lines are 'class score xmin ymin xmax ymax', scores > 0.25" $?
sort -k2,2gr -s "$T/detect.txt" | cmp -s - "$T/detect.txt"; check "detect lines are sorted by score" $?
# Greedy NMS lets only higher scores suppress, so eval's boxes above 0.25 for
# this image are exactly detect's (eval ran at conf 0.005).
n_det=$(wc -l < "$T/detect.txt")
n_ev=$(awk -v id="$img_id" '$1 == id && $3 > 0.25' "$T/dets.txt" | wc -l)
[ "$n_det" -gt 0 ] && [ "$n_det" = "$n_ev" ]; check "detect finds eval's $n_ev boxes above 0.25 ($n_det)" $?
a=$(awk '{ printf "%s %.1f %.1f %.1f %.1f\n", $1, $3, $4, $5, $6 }' "$T/detect.txt" | sort)
b=$(awk -v id="$img_id" '$1 == id && $3 > 0.25 { printf "%s %.1f %.1f %.1f %.1f\n", $2, $4, $5, $6, $7 }' \
    "$T/dets.txt" | sort)
[ -n "$a" ] && [ "$a" = "$b" ]; check "detect's boxes and classes equal eval's" $?
printf 'a\nb\n' > "$T/two.names"
"$W" detect "$T/run/last.h5" "$img" --names "$T/two.names" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "5 classes but 2 class names" "$T/err.txt"; check "detect: wrong number of names exits 1" $?

# ---- bad input ----
cp "$T/run/last.h5" "$T/bad.h5"
size=$(wc -c < "$T/bad.h5")
off=$((size / 2))
# flip (complement) 16 bytes in the middle of the file
esc=$(dd if="$T/bad.h5" bs=1 skip=$off count=16 2> /dev/null | od -An -v -tu1 |
      awk '{ for (i = 1; i <= NF; i++) printf "\\%03o", 255 - $i }')
printf "$esc" | dd of="$T/bad.h5" bs=1 seek=$off conv=notrunc 2> /dev/null
cmp -s "$T/bad.h5" "$T/run/last.h5"; [ $? -eq 1 ]; check "the copy is corrupted" $?
"$W" eval "$T/bad.h5" --data "$T/d" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "bad.h5" "$T/err.txt"; check "eval on a corrupted checkpoint exits 1 naming the file" $?
"$W" mkdata --out "$T/d3" --images 4 --size 64 --classes 3 --seed 1 > /dev/null
"$W" eval "$T/run/last.h5" --data "$T/d3" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "predicts 5 classes but the dataset .* has 3" "$T/err.txt"
check "eval: a class-count mismatch exits 1 naming both counts" $?
"$W" eval "$T/run/last.h5" --bogus > /dev/null 2>&1; [ $? -eq 2 ]; check "eval: unknown flag exits 2" $?
"$W" detect "$T/run/last.h5" "$img" --bogus > /dev/null 2>&1; [ $? -eq 2 ]; check "detect: unknown flag exits 2" $?
"$W" eval "$T/run/last.h5" --conf abc > /dev/null 2>&1; [ $? -eq 2 ]; check "eval: a bad value exits 2" $?
"$W" eval > /dev/null 2>&1; [ $? -eq 2 ]; check "eval without a checkpoint exits 2" $?

# ---- resume: 3 -> 5 ----
"$W" train --resume --out "$T/run" --data "$T/d" --max-batches 5 --eval-every 0 > "$T/resume.txt" 2>&1
check "train --resume exits 0" $?
grep -q "from iteration 3" "$T/resume.txt"; check "resume starts from iteration 3" $?
its=$(sed -n 's/^{"iteration": \([0-9]*\), "loss".*/\1/p' "$T/run/train.jsonl" | tr '\n' ' ')
[ "$its" = "1 2 3 4 5 " ]; check "train.jsonl now has iterations 1..5 once each ($its)" $?
exit $fail
