#!/usr/bin/env bash
# Stage 3 experiment (issue 6): from one pruned student, fine-tune with the
# same iterations, learning rate and data, per seed: plain fine-tuning
# (whittle train --init), attention distilling, and attention plus the box
# term; VOC07 mAP@0.5 of each, mean over seeds, step speed.
#   scripts/exp-stage3.sh TEACHER.h5 PRUNED.h5 [OUT_DIR] [SEEDS] [ITERATIONS]
# Two runs go side by side with one thread each. Runs already done are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
TEACHER=${1:?usage: scripts/exp-stage3.sh TEACHER.h5 PRUNED.h5 [OUT_DIR] [SEEDS] [ITERATIONS]}
STUDENT=${2:?usage: scripts/exp-stage3.sh TEACHER.h5 PRUNED.h5 [OUT_DIR] [SEEDS] [ITERATIONS]}
OUT=${3:-runs/exp-stage3}
SEEDS=${4:-"1 2 3"}
IT=${5:-300}
DATA=${DATA:-runs/synth}
AT_SCALE=${AT_SCALE:-0.01}
BOX_W=${BOX_W:-10}
W=./build/whittle
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$OUT"
COMMON=(--data "$DATA" --max-batches "$IT" --lr 0.004 --burn-in 0 --policy cosine --batch 16 --subdivisions 1
        --eval-every 0 --threads 1)
run() { # name seed command...
    local name=$1 seed=$2
    shift 2
    [ -s "$OUT/$name-s$seed/last.h5" ] && return 0
    "$@" --out "$OUT/$name-s$seed" --seed "$seed" "${COMMON[@]}" > "$OUT/$name-s$seed.log" 2>&1
}
jobs_=()
for s in $SEEDS; do
    jobs_+=("plain $s $W train --init $STUDENT")
    jobs_+=("attention $s $W distill --teacher $TEACHER --student $STUDENT --at-beta-scale $AT_SCALE --dump-images 0")
    jobs_+=("attention+boxes $s $W distill --teacher $TEACHER --student $STUDENT --at-beta-scale $AT_SCALE --kd-boxes $BOX_W --dump-images 0")
done
for ((k = 0; k < ${#jobs_[@]}; k += 2)); do
    # shellcheck disable=SC2086
    run ${jobs_[k]} &
    # shellcheck disable=SC2086
    [ $((k + 1)) -lt ${#jobs_[@]} ] && run ${jobs_[k + 1]} &
    wait
done
echo "| fine-tune | $(for s in $SEEDS; do printf 'seed %s | ' "$s"; done)mean | img/s (median of runs) |"
echo "|---|$(for s in $SEEDS; do printf -- '---|'; done)---|---|"
for name in plain attention attention+boxes; do
    row="| $name |"
    vals=()
    speeds=()
    for s in $SEEDS; do
        m=$(sed -n 's/^done: .* voc07 \([0-9.]*\) .*/\1/p' "$OUT/$name-s$s.log")
        vals+=("$m")
        speeds+=("$(sed -n 's/.* \([0-9.]*\) img\/s .*/\1/p' "$OUT/$name-s$s.log" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')")
        row="$row $m |"
    done
    mean=$(printf '%s\n' "${vals[@]}" | awk '{t+=$1} END {printf "%.3f", t/NR}')
    sp=$(printf '%s\n' "${speeds[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$row $mean | $sp |"
done
