#!/usr/bin/env bash
# Whole-network cross-check against PyTorch: netdump (tests/tools/netdump.c)
# runs each model forward and backward in the engine, crosscheck.py recomputes
# it in float64 from darknet's definitions and compares every tensor.
#   run_crosscheck.sh BUILD_DIR [SEED]
# Exit: 0 all passed, 1 a mismatch, an error or PyTorch missing, 77 skipped
# by choice (scripts/test.sh --skip python, tests/need.sh).
set -u
B="${1:?usage: run_crosscheck.sh BUILD_DIR [SEED]}"
SEED="${2:-1}"
PY="${WH_PYTHON:-/usr/bin/python3}"  # WH_PYTHON: another interpreter with torch
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../need.sh"
if ! "$PY" -c "import torch" 2>/dev/null; then
    wh_cannot_run python "torch_crosscheck: $PY cannot import torch (Debian: python3-torch)"
fi
if [ ! -x "$B/netdump" ]; then
    echo "torch_crosscheck: $B/netdump not built (cmake --build $B --target netdump)"
    exit 1
fi
export OMP_WAIT_POLICY=passive
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
# model classes size width_multiple batch
#   yolov4-tiny: leaky, route groups/group_id, stride-2 maxpool, upsample
#   yolov4:      mish, shortcut, SPP maxpools (5/9/13, stride 1), routes
#   yolov3-tiny: the size-2 stride-1 maxpool
for spec in "yolov4-tiny 3 96 0.25 2" "yolov4 2 64 0.125 2" "yolov3-tiny 1 64 0.25 2"; do
    set -- $spec
    echo "== $1 classes=$2 size=$3 width_multiple=$4 batch=$5 seed=$SEED"
    if ! "$B/netdump" "$1" "$2" "$3" "$4" "$5" "$SEED" "$T/$1.bin"; then
        echo "torch_crosscheck: netdump $1 failed"
        fail=1
        continue
    fi
    "$PY" "$HERE/crosscheck.py" "$T/$1.bin" || fail=1
    rm -f "$T/$1.bin"
done
[ $fail -eq 0 ] && echo "torch_crosscheck: all models agree" || echo "torch_crosscheck: FAILED"
exit $fail
