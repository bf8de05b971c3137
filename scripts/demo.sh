#!/usr/bin/env bash
# The main job: the whole method on the embedded synthetic dataset.
#   whittle pipeline: the dataset (generated once into runs/synth), a small
#   YOLOv4-tiny (width x0.5, 256x256, 5 classes), baseline training, dynamic
#   sparse training, group channel pruning, fine-tuning with attention
#   distilling and plain fine-tuning as the control, the evaluation of every
#   stage; the table in runs/pipeline/results.md (.csv, .json), charts in
#   runs/pipeline/charts/. 4-12 minutes on 2 cores after the build (AVX-512 to AVX2).
# Rerunning continues an interrupted run (finished stages are kept); remove
# runs/pipeline, or pass --out DIR, for a fresh one. Arguments go to
# whittle pipeline (see ./build/whittle pipeline --help).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh > /dev/null
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
exec ./build/whittle pipeline "$@"
