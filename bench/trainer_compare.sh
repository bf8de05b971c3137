#!/usr/bin/env bash
# whittle's trainer against an independent PyTorch trainer (bench/torch_train.py):
# the same cfg, the same data, the same wall-clock budget, one core each, at the
# same time, both scored by `whittle eval`.
#
#   bench/trainer_compare.sh DATA CFG MINUTES [SEED] [-- extra whittle train args]
#
#   DATA     a VOC root (classes.txt, ImageSets/Main/{train,test}.txt, Annotations, JPEGImages)
#   CFG      a darknet cfg (e.g. whittle model yolov4-tiny --classes 5 --size 256 -o x.cfg)
#   MINUTES  the training budget of each trainer (wall clock)
#   SEED     default 1
# Environment: WHITTLE (the binary; default build/whittle, else the newest build*/whittle),
# WH_PYTHON (default /usr/bin/python3, needs torch and numpy), OUT (default
# runs/trainer-compare/DATE-seedSEED), SPLIT (the evaluated image set, default test),
# TORCH_ARGS (extra torch_train.py arguments, word-split).
#
# whittle train runs on core 0 (taskset -c 0, --threads 1, OMP_NUM_THREADS=1,
# --batch 16 --subdivisions 1 --minutes MINUTES --test-split '' so that no
# evaluation runs inside its budget); torch_train.py on core 1 (taskset -c 1,
# --threads 1, --batch 16 --minutes MINUTES --no-eval). whittle's --minutes
# (added in parallel with this script) fixes max_batches after 10 iterations to
# what fits the budget and stops at it; torch_train.py drives its schedule by
# elapsed/budget. Then each result is scored the same way, one core each:
# whittle eval --metric voc07 (keeping its detections, --dets-out) and whittle
# eval --metric voc. The torch weights go through whittle import-darknet first.
#
# Prints a markdown table (one row per trainer: iterations, images seen,
# training seconds, img/s, VOC07, VOC) and writes OUT/summary.json and
# OUT/summary.md. Exit status: 0 when both trainers and all evaluations ran.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
usage() {
    sed -n '6,15p' "$0" | cut -c3-
    exit 2
}
[ $# -ge 3 ] || usage
DATA="$1" CFG="$2" MIN="$3"
shift 3
SEED=1
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    SEED="$1"
    shift
fi
if [ $# -gt 0 ]; then
    [ "$1" = "--" ] || usage
    shift
fi
EXTRA=("$@")
PY="${WH_PYTHON:-/usr/bin/python3}"
SPLIT="${SPLIT:-test}"
read -r -a TARGS <<< "${TORCH_ARGS:-}"

W="${WHITTLE:-}"
if [ -z "$W" ]; then
    if [ -x "$ROOT/build/whittle" ]; then
        W="$ROOT/build/whittle"
    else
        W=$(ls -t "$ROOT"/build*/whittle 2> /dev/null | head -1)
    fi
fi
[ -n "$W" ] && [ -x "$W" ] || { echo "trainer_compare: no whittle binary (build it, or set WHITTLE)" >&2; exit 2; }
[ -d "$DATA" ] || { echo "trainer_compare: $DATA: not a folder" >&2; exit 2; }
[ -f "$CFG" ] || { echo "trainer_compare: $CFG: no such cfg" >&2; exit 2; }
"$PY" -c 'import torch, numpy' 2> /dev/null || { echo "trainer_compare: $PY cannot import torch and numpy" >&2; exit 2; }
if ! "$W" train --help 2>&1 | grep -q -- '--minutes'; then
    echo "trainer_compare: $W train has no --minutes option (a time budget is what this compares)" >&2
    exit 2
fi
DATA="$(cd "$DATA" && pwd)"
CFG="$(cd "$(dirname "$CFG")" && pwd)/$(basename "$CFG")"
OUT="${OUT:-$ROOT/runs/trainer-compare/$(date +%Y%m%d-%H%M%S)-seed$SEED}"
mkdir -p "$OUT/whittle" "$OUT/torch" || exit 2
OUT="$(cd "$OUT" && pwd)"

PIN=1
if ! command -v taskset > /dev/null || [ "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" -lt 2 ]; then
    PIN=0
    echo "trainer_compare: warning: no taskset or fewer than 2 cores: the two trainers are not pinned" >&2
fi
pin() { # core command...
    local core="$1"
    shift
    if [ $PIN = 1 ]; then taskset -c "$core" "$@"; else "$@"; fi
}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive

echo "trainer_compare: $MIN min each, seed $SEED, data $DATA, cfg $CFG -> $OUT"
echo "  whittle: $W ($(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo '?'))${EXTRA[*]:+, extra: ${EXTRA[*]}}"
WT_CMD=("$W" train --cfg "$CFG" --data "$DATA" --out "$OUT/whittle/run" --batch 16 --subdivisions 1
        --minutes "$MIN" --seed "$SEED" --threads 1 --test-split '' "${EXTRA[@]}")
PT_CMD=("$PY" "$ROOT/bench/torch_train.py" --cfg "$CFG" --data "$DATA" --out "$OUT/torch/run" --batch 16
        --minutes "$MIN" --seed "$SEED" --threads 1 --no-eval "${TARGS[@]}")
printf '%q ' "${WT_CMD[@]}" > "$OUT/whittle/command.txt"
printf '%q ' "${PT_CMD[@]}" > "$OUT/torch/command.txt"
t0=$(date +%s)
pin 0 "${WT_CMD[@]}" > "$OUT/whittle/train.log" 2>&1 &
pw=$!
pin 1 "${PT_CMD[@]}" > "$OUT/torch/train.log" 2>&1 &
pt=$!
wait $pw
rw=$?
wait $pt
rt=$?
echo "  trained in $(($(date +%s) - t0)) s: whittle exit $rw, torch exit $rt"
[ $rw -eq 0 ] || { echo "--- whittle train.log (tail)"; tail -5 "$OUT/whittle/train.log"; }
[ $rt -eq 0 ] || { echo "--- torch train.log (tail)"; tail -5 "$OUT/torch/train.log"; }

# the evaluation, the same for both (one core each, in parallel)
evaluate() { # name ckpt core
    local d="$OUT/$1"
    [ -s "$2" ] || { echo "no checkpoint $2" > "$d/eval.err"; return 1; }
    pin "$3" "$W" eval "$2" --data "$DATA" --split "$SPLIT" --metric voc07 --threads 1 --dets-out "$d/dets.txt" \
        > "$d/eval_voc07.txt" 2> "$d/eval.err" &&
        pin "$3" "$W" eval "$2" --data "$DATA" --split "$SPLIT" --metric voc --threads 1 \
            > "$d/eval_voc.txt" 2>> "$d/eval.err"
}
if [ $rt -eq 0 ]; then
    "$W" import-darknet "$CFG" "$OUT/torch/run/torch.weights" -o "$OUT/torch/torch.h5" --threads 1 \
        > "$OUT/torch/import.txt" 2>&1 || { echo "  import-darknet failed: $(tail -1 "$OUT/torch/import.txt")"; rt=1; }
fi
ew=1 et=1
[ $rw -eq 0 ] && { evaluate whittle "$OUT/whittle/run/last.h5" 0 & pe1=$!; }
[ $rt -eq 0 ] && { evaluate torch "$OUT/torch/torch.h5" 1 & pe2=$!; }
[ $rw -eq 0 ] && { wait $pe1; ew=$?; }
[ $rt -eq 0 ] && { wait $pe2; et=$?; }
[ $ew -eq 0 ] || echo "  whittle evaluation failed: $(tail -1 "$OUT/whittle/eval.err" 2> /dev/null)"
[ $et -eq 0 ] || echo "  torch evaluation failed: $(tail -1 "$OUT/torch/eval.err" 2> /dev/null)"

"$PY" - "$OUT" "$DATA" "$CFG" "$MIN" "$SEED" "$W" "$rw" "$rt" "$ew" "$et" "${EXTRA[@]}" << 'EOF'
import json, os, re, sys, platform
out, data, cfg, minutes, seed, whittle, rw, rt, ew, et = sys.argv[1:11]
extra = sys.argv[11:]

def metric(path):
    try:
        for line in open(path):
            m = re.match(r'^(voc07|voc|coco) mAP@\S+ \([^)]*\) = (\S+) over', line)
            if m:
                return float(m.group(2))
    except OSError:
        pass
    return None

def whittle_stats():
    batch = 16
    for i, a in enumerate(extra[:-1]):
        if a == '--batch':
            batch = int(extra[i + 1])
    it, secs = None, None
    try:
        for line in open(os.path.join(out, 'whittle/run/train.jsonl')):
            if line.startswith('{"iteration"') and '"loss"' in line:
                it = json.loads(line)['iteration']
    except OSError:
        pass
    try:
        for line in open(os.path.join(out, 'whittle/train.log')):
            m = re.match(r'^done: (\d+) iterations in ([0-9.]+) s', line)
            if m:
                it, secs = int(m.group(1)), float(m.group(2))
    except OSError:
        pass
    return {'iterations': it, 'images_seen': it * batch if it is not None else None, 'seconds': secs,
            'exit': int(rw), 'eval_exit': int(ew)}

def torch_stats():
    try:
        r = json.load(open(os.path.join(out, 'torch/run/result.json')))
    except (OSError, ValueError):
        r = {}
    return {'iterations': r.get('iterations'), 'images_seen': r.get('images_seen'), 'seconds': r.get('seconds'),
            'exit': int(rt), 'eval_exit': int(et), 'torch': r.get('torch'), 'final_loss': r.get('final_loss')}

rows = {'whittle': whittle_stats(), 'torch': torch_stats()}
for k, r in rows.items():
    r['voc07'] = metric(os.path.join(out, k, 'eval_voc07.txt'))
    r['voc'] = metric(os.path.join(out, k, 'eval_voc.txt'))
    r['img_per_s'] = round(r['images_seen'] / r['seconds'], 3) if r['images_seen'] and r['seconds'] else None
cpu = '?'
try:
    cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
except (OSError, StopIteration):
    pass
summary = {'data': data, 'cfg': cfg, 'minutes': float(minutes), 'seed': int(seed), 'whittle': whittle,
           'whittle_extra_args': extra, 'cpu': cpu, 'host': platform.node(), 'trainers': rows}
json.dump(summary, open(os.path.join(out, 'summary.json'), 'w'), indent=1)
f = lambda v, fmt: (fmt % v) if v is not None else 'n/a'
lines = ['| trainer | iterations | images seen | train s | img/s | VOC07 mAP | VOC mAP |',
         '|---|---|---|---|---|---|---|']
for k, r in rows.items():
    lines.append(f"| {k} | {f(r['iterations'], '%d')} | {f(r['images_seen'], '%d')} | {f(r['seconds'], '%.0f')} | "
                 f"{f(r['img_per_s'], '%.2f')} | {f(r['voc07'], '%.4f')} | {f(r['voc'], '%.4f')} |")
open(os.path.join(out, 'summary.md'), 'w').write('\n'.join(lines) + '\n')
print('\n'.join(lines))
print(f'summary: {os.path.join(out, "summary.json")}')
EOF
[ $rw -eq 0 ] && [ $rt -eq 0 ] && [ $ew -eq 0 ] && [ $et -eq 0 ]
