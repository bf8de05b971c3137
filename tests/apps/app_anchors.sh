#!/usr/bin/env bash
# Anchors from the data and schedules that fit the run, from the command line:
# - whittle anchors prints an anchors= line and its mean best IoU, which beats
#   darknet's default anchors scaled to the input; model --anchors-from writes
#   the same anchors into the cfg; bad input exits non-zero naming it;
# - a generated cfg's schedule (max_batches 10000, steps 8000,9000, burn_in
#   1000 for 5 classes) follows --max-batches 10: steps 8,9 and burn_in 1, so
#   the logged rates are the cfg's lr until the steps, then / 10 and / 100
#   (worked by hand: the rate logged for iteration k is the one at k - 1).
. "$(dirname "$0")/common.sh" "$@"
export OMP_NUM_THREADS=1
"$W" mkdata --out "$T/d" --images 40 --size 96 --seed 3 > /dev/null; check "mkdata" $?

"$W" anchors --data "$T/d" --size 96 --num 6 > "$T/a.txt" 2> "$T/a.err"; check "anchors exits 0" $?
line=$(grep '^anchors=' "$T/a.txt")
[ "$(echo "${line#anchors=}" | tr ',' '\n' | grep -c '^ *[0-9][0-9]*$')" = 12 ]
check "anchors prints 6 (w, h) pairs ($line)" $?
ours=$(sed -n 's/^mean best IoU \([0-9.]*\)$/\1/p' "$T/a.txt")
theirs=$(sed -n "s/^darknet's default yolov4-tiny anchors scaled to 96x96: mean best IoU \([0-9.]*\)$/\1/p" "$T/a.txt")
awk -v a="$ours" -v b="$theirs" 'BEGIN { exit !(a > b && a <= 1) }'
check "the data's anchors fit better than darknet's scaled ones ($ours > $theirs)" $?

"$W" model yolov4-tiny --classes 5 --size 96 --width-multiple 0.25 --anchors-from "$T/d" -o "$T/m.cfg" 2> "$T/m.err"
check "model --anchors-from exits 0" $?
[ "$(grep -c "^$line\$" "$T/m.cfg")" = 2 ]; check "both [yolo] heads get the anchors whittle anchors printed" $?
grep -q "mean best IoU $ours" "$T/m.err"; check "model says where its anchors came from" $?
"$W" anchors --data "$T/d" > /dev/null 2> "$T/e1.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "needs --size" "$T/e1.txt"; check "anchors without --size exits 2" $?
"$W" anchors --data "$T/nope" --size 96 > /dev/null 2> "$T/e2.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "$T/nope" "$T/e2.txt"; check "anchors on a missing dataset exits 1 naming it" $?
"$W" anchors --data "$T/d" --size 96 --num 0 > /dev/null 2>&1; [ $? -eq 2 ]; check "anchors --num 0 exits 2" $?

grep -q '^max_batches=10000$' "$T/m.cfg" && grep -q '^steps=8000,9000$' "$T/m.cfg" && grep -q '^burn_in=1000$' "$T/m.cfg"
check "a 5-class model gets darknet's custom schedule (10000; 8000,9000; burn-in 1000)" $?
"$W" train --cfg "$T/m.cfg" --data "$T/d" --batch 2 --subdivisions 1 --max-batches 10 --lr 0.01 --eval-every 0 \
    --test-split '' --out "$T/t" > "$T/t.txt" 2>&1; check "train --max-batches 10" $?
grep -q "schedule rescaled from the cfg's max_batches 10000 to 10: steps 8000,9000 -> 8,9, burn_in 1000 -> 1" "$T/t.txt"
check "train says how it rescaled the schedule" $?
lr_at() { sed -n "s/^{\"iteration\": $1, .*\"lr\": \([^,]*\),.*/\1/p" "$T/t/train.jsonl"; }
awk -v a="$(lr_at 5)" -v b="$(lr_at 9)" -v c="$(lr_at 10)" \
    'BEGIN { exit !(a > 0.00999 && a < 0.01001 && b > 0.000999 && b < 0.001001 && c > 0.0000999 && c < 0.0001001) }'
check "the rates follow: 0.01 at iteration 5, 0.001 at 9, 0.0001 at 10 ($(lr_at 5), $(lr_at 9), $(lr_at 10))" $?
"$W" train --cfg "$T/m.cfg" --data "$T/d" --batch 2 --subdivisions 1 --max-batches 10 --burn-in 3 --eval-every 0 \
    --test-split '' --out "$T/t2" > "$T/t2.txt" 2>&1
grep -q "steps 8000,9000 -> 8,9$" "$T/t2.txt"; check "an explicit --burn-in is kept (only the steps rescaled)" $?

# keys darknet's training honours but whittle's does not apply: one warning
# each, with file and line, before the first iteration; neutral values none
sed -e 's/^angle=0$/angle=5/' -e 's/^random=0$/random=1/' "$T/m.cfg" > "$T/w.cfg"
"$W" train --cfg "$T/w.cfg" --data "$T/d" --batch 2 --subdivisions 1 --max-batches 1 --test-split '' \
    --out "$T/t3" > "$T/t3.txt" 2>&1; check "train a cfg with angle=5 and random=1" $?
la=$(grep -n '^angle=5$' "$T/w.cfg" | cut -d: -f1); lr=$(grep -n '^random=1$' "$T/w.cfg" | head -n 1 | cut -d: -f1)
grep -q "warning: $T/w.cfg:$la: \[net\] angle=5 is read but not applied" "$T/t3.txt" &&
    grep -q "warning: $T/w.cfg:$lr: \[yolo\] random=1 is read but not applied" "$T/t3.txt"
check "each unapplied key is named once with its line ($la, $lr)" $?
[ "$(grep -c 'random=1 is read' "$T/t3.txt")" = 1 ]; check "one warning per key, not per [yolo]" $?
w1=$(grep -n 'warning: .*angle=5' "$T/t3.txt" | cut -d: -f1); i1=$(grep -n '^ *1/1: loss' "$T/t3.txt" | cut -d: -f1)
[ -n "$w1" ] && [ -n "$i1" ] && [ "$w1" -lt "$i1" ]; check "the warnings come before the first iteration" $?
! grep -q "warning" "$T/t.txt"; check "a generated cfg trains without such warnings" $?

# --minutes: the run is sized after 10 iterations (the schedule rescaled to
# it, as for --max-batches) and stops at the budget, with a checkpoint
"$W" train --cfg "$T/m.cfg" --data "$T/d" --batch 2 --subdivisions 1 --minutes 0.1 --test-split '' \
    --out "$T/t4" > "$T/t4.txt" 2>&1; check "train --minutes 0.1" $?
grep -q "^time budget: .* s an iteration, .* s left: max_batches [0-9]*; schedule rescaled from the cfg's max_batches 10000" \
    "$T/t4.txt"; check "the budget sizes the run and rescales the schedule" $?
secs=$(awk -F'"seconds": ' '/"loss"/ { split($2, a, ","); t += a[1]; last = a[1] } END { print t - last }' "$T/t4/train.jsonl")
# (train.jsonl's seconds are rounded to 1 ms: a few hundred of them may add up to .1 s too many)
awk -v s="$secs" 'BEGIN { exit !(s < 6.2) }'; check "training stops at the budget (${secs} s before the last iteration)" $?
[ -f "$T/t4/last.h5" ]; check "and leaves a checkpoint" $?
exit $fail
