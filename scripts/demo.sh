#!/usr/bin/env bash
# The main job. Until the training pipeline lands this generates YOLOv4 and
# prints its size report; later it runs the whole compression pipeline on
# the embedded synthetic dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
mkdir -p runs/demo
./build/whittle model yolov4 --classes 80 --size 416 -o runs/demo/yolov4.cfg
./build/whittle info runs/demo/yolov4.cfg
