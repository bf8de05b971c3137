#!/usr/bin/env bash
# The main job: the pipeline on the embedded synthetic dataset.
#   1. the dataset (VOC layout, generated once into runs/synth)
#   2. a small YOLOv4-tiny (width x0.5, 256x256, 5 classes) and its size report
#   3. training from scratch (about 15-20 minutes on 2 cores), evaluated as it goes
#   4. the final evaluation of the best checkpoint, with the metric named
# The compression stages (sparse training, group pruning, distillation) join
# this script as they land. Each run gets its own folder under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=./build/whittle
RUN=runs/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
$W mkdata --out runs/synth
$W model yolov4-tiny --classes 5 --size 256 --width-multiple 0.5 -o "$RUN/yolov4-tiny-s.cfg"
$W info "$RUN/yolov4-tiny-s.cfg" | tail -3
$W train --cfg "$RUN/yolov4-tiny-s.cfg" --data runs/synth --out "$RUN/train" \
    --batch 16 --subdivisions 1 --max-batches 1400 --lr 0.008 --burn-in 100 --policy cosine \
    --eval-every 350 --ckpt-every 200 | grep -v '^ *[0-9]*[1-9]/1400:'
$W eval "$RUN/train/best.h5" --data runs/synth --metric voc07
echo "chart: $RUN/train/chart.png  log: $RUN/train/train.jsonl"
