#!/usr/bin/env bash
# bench/torch_train.py, the independent PyTorch reference trainer, end to end on
# a tiny synthetic dataset and model: 3 iterations, its darknet .weights imported
# into whittle, and independent checks that both sides mean the same numbers:
#   - the file has exactly the cfg's size (import-darknet), and export-darknet
#     gives it back byte for byte;
#   - whittle's parameter count (info --json) equals torch's;
#   - for one test image, `whittle detect` on the imported checkpoint prints the
#     boxes torch_train.py computed from its in-memory model (scores within
#     1e-3, corners within 0.15 px), stretched and letterboxed;
#   - whittle eval's VOC07 mAP equals torch_train.py's own (its own detector and
#     its own VOC07) within 0.002, and `whittle map` of torch's detections equals
#     whittle eval's within 0.002;
#   - --minutes stops at its budget.
#   torch_train_smoke.sh WHITTLE
# Needs /usr/bin/python3 (or WH_PYTHON) with torch and numpy (else it fails, or
# exits 77 with scripts/test.sh --skip python), and cc + libjpeg-dev or PIL.
. "$(dirname "$0")/../apps/common.sh" "$@"
PY="${WH_PYTHON:-/usr/bin/python3}"
if ! "$PY" -c "import torch, numpy" 2> /dev/null; then
    wh_cannot_run python "torch_train_smoke: $PY cannot import torch and numpy (Debian: python3-torch)"
fi
TT="$(cd "$(dirname "$0")/../../bench" && pwd)/torch_train.py"
export OMP_NUM_THREADS=1 WH_BENCH_CACHE="$T/cache"

"$W" mkdata --out "$T/d" --images 40 --size 128 --classes 2 --threads 1 > /dev/null
check "mkdata writes a dataset" $?
"$W" model yolov4-tiny --classes 2 --size 128 --width-multiple 0.25 -o "$T/m.cfg" 2> /dev/null
check "model writes a tiny cfg" $?
img_id=$(head -1 "$T/d/ImageSets/Main/test.txt" | tr -d '\r ')
img="$T/d/JPEGImages/$img_id.jpg"

"$PY" "$TT" --cfg "$T/m.cfg" --data "$T/d" --out "$T/run" --max-iters 3 --threads 1 --seed 2 \
    --detect-image "$img" --detect-conf 0.005 > "$T/train.txt" 2>&1
check "torch_train.py --max-iters 3 exits 0" $?
[ $fail -eq 0 ] || { cat "$T/train.txt"; exit 1; }
"$PY" - "$T/run/result.json" << 'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r['iterations'] == 3 and r['images_seen'] == 48 and r['threads'] == 1 and r['ema'] and \
     set(r['final_loss_parts']) == {'box', 'obj', 'cls'} and r['torch_voc07'] == r['torch_voc07']
sys.exit(0 if ok else 1)
EOF
check "result.json: 3 iterations, 48 images, 1 thread, EMA, loss parts, its own mAP" $?
[ "$(grep -c '"iteration"' "$T/run/train_log.jsonl")" -ge 1 ]; check "train_log.jsonl logs the loss" $?

"$W" import-darknet "$T/m.cfg" "$T/run/torch.weights" -o "$T/torch.h5" --threads 1 > /dev/null 2> "$T/err.txt"
check "whittle import-darknet takes torch.weights (exactly the cfg's size)" $?
"$W" export-darknet "$T/torch.h5" -o "$T/back" --threads 1 > /dev/null 2>&1 && cmp -s "$T/back.weights" "$T/run/torch.weights"
check "export-darknet gives torch.weights back byte for byte (header, seen, every float)" $?
wp=$("$W" info "$T/torch.h5" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["total"]["params"])')
tp=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["params"])' "$T/run/result.json")
[ -n "$wp" ] && [ "$wp" = "$tp" ]; check "whittle's parameter count equals torch's ($wp = $tp)" $?

# one image: whittle's forward + decoding + NMS against torch's in-memory model
cmp_detect() { # ckpt torch_detect.txt label
    "$W" detect "$1" "$img" --conf 0.005 --threads 1 > "$T/wdetect.txt" 2> /dev/null || return 1
    "$PY" - "$T/wdetect.txt" "$2" << 'EOF'
import sys
def read(p):
    return [(l.split()[0], float(l.split()[1]), [float(v) for v in l.split()[2:6]]) for l in open(p)]
w, t = read(sys.argv[1]), read(sys.argv[2])
# ties and boxes right at the 0.005 threshold may order or fall differently: match by content
used, miss = [False] * len(t), 0
for c, s, b in w:
    j = next((j for j, (c2, s2, b2) in enumerate(t) if not used[j] and c2 == c and abs(s2 - s) <= 1e-3
              and max(abs(x - y) for x, y in zip(b, b2)) <= 0.15), None)
    if j is None:
        miss += 1
    else:
        used[j] = True
top = min(20, len(w))
top_ok = all(any(c2 == c and abs(s2 - s) <= 1e-3 and max(abs(x - y) for x, y in zip(b, b2)) <= 0.15
                 for c2, s2, b2 in t) for c, s, b in w[:top])
print(f'  whittle {len(w)} boxes, torch {len(t)}, {miss} of whittle\'s unmatched; top {top} all matched: {top_ok}')
sys.exit(0 if len(w) >= 10 and top_ok and miss <= max(2, len(w) // 100) and abs(len(w) - len(t)) <= max(2, len(w) // 100) else 1)
EOF
}
cmp_detect "$T/torch.h5" "$T/run/detect.txt"
check "whittle detect on the imported weights prints torch's boxes for $img_id (stretched input)" $?

# ---- the whole test split: whittle eval, whittle map of torch's detections, torch's own VOC07 ----
"$W" eval "$T/torch.h5" --data "$T/d" --metric voc07 --threads 1 > "$T/eval.txt" 2> /dev/null
check "whittle eval evaluates the imported weights" $?
"$W" eval "$T/torch.h5" --data "$T/d" --metric voc --threads 1 > "$T/eval_voc.txt" 2> /dev/null
check "whittle eval --metric voc evaluates them" $?
ev=$(sed -n 's/^voc07 mAP@0.5 (VOC07 11-point) = \([0-9.na]*\) over.*/\1/p' "$T/eval.txt")
"$W" map --gt "$T/d" --dets "$T/run/dets.txt" > "$T/map.txt" 2> /dev/null
check "whittle map reads torch's detections file" $?
mp=$(sed -n 's/^voc07 mAP@0.5 (VOC07 11-point) = \([0-9.na]*\) over.*/\1/p' "$T/map.txt")
own=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["torch_voc07"])' "$T/run/result.json")
"$PY" -c 'import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= 0.002 and abs(a - c) <= 0.002 else 1)' \
    "${ev:-nan}" "${mp:-nan}" "${own:-nan}"
check "VOC07: whittle eval $ev, whittle map of torch's detections $mp, torch's own $own (within 0.002)" $?

# ---- letterboxed input: placement and box correction as whittle's ----
sed 's/^\[net\]$/[net]\nletter_box=1/' "$T/m.cfg" > "$T/lb.cfg"
"$PY" "$TT" --cfg "$T/lb.cfg" --data "$T/d" --out "$T/lb" --max-iters 1 --threads 1 --no-ema --no-eval \
    --detect-image "$img" --detect-conf 0.005 > "$T/lb.txt" 2>&1 &&
    "$W" import-darknet "$T/lb.cfg" "$T/lb/torch.weights" -o "$T/lb.h5" --threads 1 > /dev/null 2>&1
check "letter_box=1: train 1 iteration (--no-ema) and import" $?
cmp_detect "$T/lb.h5" "$T/lb/detect.txt"
check "whittle detect prints torch's boxes with letter_box=1" $?

# ---- --minutes: the wall-clock budget stops training ----
"$PY" "$TT" --cfg "$T/m.cfg" --data "$T/d" --out "$T/min" --minutes 0.05 --threads 1 --batch 4 --no-eval \
    > "$T/min.txt" 2>&1
check "torch_train.py --minutes 0.05 exits 0" $?
"$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["iterations"] >= 1 and 3.0 <= r["seconds"] < 30 else 1)' "$T/min/result.json"
check "--minutes 0.05 trains about 3 s and stops" $?

[ $fail -eq 0 ] || cat "$T/train.txt"
exit $fail
