#!/usr/bin/env bash
# Stages 1 to 3 from the command line on a tiny dataset and model:
# train -> sparse (3 iterations) -> prune (scale-module, ratios) -> the
# pruned network's cfg counts what the report says, eval reads its
# checkpoint, darknet weights load back -> distill (3 iterations: the teacher's
# file is untouched, the student changes); and bad input: a used output
# folder (left untouched), unknown grouping, bad flags, a wrong number of
# ratios, a truncated checkpoint.
. "$(dirname "$0")/common.sh" "$@"

"$W" mkdata --out "$T/d" --images 12 --size 96 --seed 3 > /dev/null
"$W" model yolov4-tiny --classes 5 --size 96 --width-multiple 0.5 -o "$T/m.cfg" 2> /dev/null
"$W" train --cfg "$T/m.cfg" --data "$T/d" --out "$T/run" --batch 4 --subdivisions 1 --max-batches 2 \
    --eval-every 0 > /dev/null 2>&1
check "train a baseline" $?
"$W" sparse --weights "$T/run/last.h5" --data "$T/d" --out "$T/sp" --sched dynamic:s=0.01 --batch 4 \
    --subdivisions 1 --max-batches 3 --eval-every 0 > "$T/sparse.txt" 2>&1
check "sparse exits 0" $?
[ "$(wc -l < "$T/sp/gamma.jsonl")" -ge 2 ]; check "sparse logs |gamma| statistics (per epoch and at the end)" $?
[ -s "$T/sp/gamma_hist.png" ]; check "sparse draws the histogram PNG" $?

# ---- prune ----
"$W" prune "$T/sp/last.h5" --groups scale-module --ratio 0.4 --round-to 4 --bench-runs 1 --darknet \
    -o "$T/pr" > "$T/prune.txt" 2> "$T/prune.err"
check "prune exits 0" $?
for f in pruned.cfg pruned.h5 pruned.weights report.md report.json; do
    [ -s "$T/pr/$f" ]; check "prune writes $f" $?
done
after=$(sed -n 's/^  "params": \[\([0-9]*\), \([0-9]*\)\],/\2/p' "$T/pr/report.json")
before=$(sed -n 's/^  "params": \[\([0-9]*\), \([0-9]*\)\],/\1/p' "$T/pr/report.json")
info=$("$W" info "$T/pr/pruned.cfg" | sed -n 's/^Total parameters: \([0-9]*\) .*/\1/p')
[ -n "$after" ] && [ "$after" = "$info" ]; check "the report's parameters after ($after) = whittle info of pruned.cfg ($info)" $?
[ -n "$before" ] && [ "$after" -lt "$before" ]; check "fewer parameters ($before -> $after)" $?
grep -q "^| parameters | $before | $after |" "$T/pr/report.md"; check "report.md states the totals" $?
/usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['params'][1] == $after" "$T/pr/report.json"
check "report.json is valid JSON with the same totals" $?
grep -q "latency batch 8" "$T/pr/report.md"; check "report.md has latency at batch 8" $?
grep -q "Output error of the compact network" "$T/pr/report.md"; check "report.md prints the output error" $?
awk -F'|' '/^\| [0-9]+ \| / { if (($5 + 0) % 4 != 0 && $5 + 0 != $4 + 0) bad = 1 } END { exit bad }' "$T/pr/report.md"
check "round-to 4: every pruned layer keeps a multiple of 4" $?
"$W" eval "$T/pr/pruned.h5" --data "$T/d" > "$T/eval.txt" 2>&1; check "eval reads the pruned checkpoint" $?
grep -q "^voc07 mAP@0.5" "$T/eval.txt"; check "eval of the pruned network names its metric" $?
# darknet's pair: pruned.cfg + pruned.weights load back (exact size check) and evaluate the same
"$W" import-darknet "$T/pr/pruned.cfg" "$T/pr/pruned.weights" -o "$T/dn.h5" > /dev/null 2>&1
check "pruned.cfg + pruned.weights import as a darknet pair" $?
"$W" eval "$T/dn.h5" --data "$T/d" > "$T/eval_dn.txt" 2>&1
[ "$(grep '^voc07 mAP' "$T/eval.txt")" = "$(grep '^voc07 mAP' "$T/eval_dn.txt")" ]
check "and give the same mAP as pruned.h5" $?

# ---- batch-norm recalibration (--data): only the running statistics change ----
"$W" prune "$T/sp/last.h5" --groups scale-module --ratio 0.4 --round-to 4 --bench-runs 0 --data "$T/d" \
    --bn-batches 2 -o "$T/pr_bn" > "$T/prune_bn.txt" 2>&1
check "prune --data exits 0" $?
grep -q "^Batch-norm statistics re-estimated after the check above on 32 unaugmented training images" "$T/pr_bn/report.md"
check "report.md says the statistics were re-estimated on 2 x 16 images" $?
/usr/bin/python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['bn_recalibration_images'] == 32" \
    "$T/pr_bn/report.json"
check "report.json counts the images" $?
cmp -s "$T/pr/pruned.cfg" "$T/pr_bn/pruned.cfg"; check "the same pruned cfg with and without recalibration" $?
if /usr/bin/python3 -c "import h5py" 2> /dev/null; then
    /usr/bin/python3 - "$T/pr/pruned.h5" "$T/pr_bn/pruned.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
stats = same = 0
def visit(name, obj):
    global stats, same
    if not isinstance(obj, h5py.Dataset) or not name.startswith("layers/"):
        return
    x, y = obj[()], b[name][()]
    if name.endswith("rolling_mean") or name.endswith("rolling_variance"):
        stats += 1
        assert not np.array_equal(x, y), name  # re-estimated
    elif name.endswith(("weights", "biases", "scales")):
        same += 1
        assert np.array_equal(x, y), name  # untouched
a.visititems(visit)
assert stats > 0 and same > 0, (stats, same)
PY
    check "pruned.h5: every running statistic changed, every weight, bias and scale is the same" $?
fi
"$W" prune "$T/sp/last.h5" --groups scale-module --ratio 0.4 --bench-runs 0 --data "$T/nowhere" -o "$T/pr_bad" \
    > /dev/null 2> "$T/prune_bad.err"
[ $? -ne 0 ] && grep -q "nowhere" "$T/prune_bad.err" && [ ! -e "$T/pr_bad" ]
check "prune --data with a missing folder fails naming it and writes nothing" $?

# ---- distill the pruned student from the sparse teacher ----
t_sum=$(md5sum < "$T/sp/last.h5")
"$W" distill --teacher "$T/sp/last.h5" --student "$T/pr/pruned.h5" --data "$T/d" --out "$T/di" --batch 4 \
    --subdivisions 1 --max-batches 3 --eval-every 0 --at-beta-scale 0.001 > "$T/distill.txt" 2>&1
check "distill exits 0" $?
grep -q "^attention losses (per mini-batch, mean over the run): L[0-9]" "$T/distill.txt"
check "distill reports the attention loss of each paired layer" $?
[ "$(md5sum < "$T/sp/last.h5")" = "$t_sum" ]; check "the teacher's checkpoint is untouched" $?
[ -s "$T/di/attention_0000000.h5" ] && [ -s "$T/di/attention_0000002.h5" ]
check "distill dumps the maps at the first and last iteration" $?
[ "$(head -c 4 "$T/di/attention_0000002.png" 2> /dev/null | od -An -c | tr -d ' ')" = '211PNG' ]
check "and draws the PNG panel" $?
if ! /usr/bin/python3 -c "import h5py" 2> /dev/null; then
    wh_part_cannot_run python "/usr/bin/python3 cannot import h5py (Debian: python3-h5py): the attention maps read as a user would"
    check "h5py reads the attention maps" $?
else
    /usr/bin/python3 - "$T/di/attention_0000002.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
layers = list(f["layers"][()])
assert len(layers) > 0 and f["images"].shape[1] == 3
for i in layers:
    t, s = f["teacher/layer_%03d" % i][()], f["student/layer_%03d" % i][()]
    assert t.shape == s.shape and t.shape[0] == f["images"].shape[0], (i, t.shape, s.shape)
    assert np.allclose(np.linalg.norm(t.reshape(t.shape[0], -1), axis=1), 1, atol=1e-4)  # L2-normalised
PY
    check "h5py reads the maps: teacher and student per layer, each L2-normalised" $?
fi
"$W" export-darknet "$T/di/last.h5" -o "$T/di_dn" > /dev/null 2>&1
[ -s "$T/di_dn.weights" ] && ! cmp -s <(tail -c +21 "$T/di_dn.weights") <(tail -c +21 "$T/pr/pruned.weights")
check "the student's weights changed (darknet payloads past the 20-byte header differ)" $?
"$W" distill --teacher "$T/sp/last.h5" --student "$T/pr/pruned.h5" --data "$T/d" --out "$T/dk" --batch 4 \
    --subdivisions 1 --max-batches 2 --eval-every 0 --at-beta-scale 0.001 --kd-logits 1 --kd-boxes 1 \
    --dump-images 0 > "$T/kd.txt" 2>&1
grep -q "; logit KL [0-9].*; box L2 [0-9]" "$T/kd.txt" && [ ! -e "$T/dk/attention_0000000.h5" ]
check "distill --kd-logits/--kd-boxes add both terms (and --dump-images 0 dumps nothing)" $?
"$W" distill --student "$T/pr/pruned.h5" --data "$T/d" --out "$T/di2" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "needs --teacher" "$T/err.txt"; check "distill without --teacher exits 2" $?
"$W" distill --teacher "$T/sp/last.h5" --student "$T/pr/pruned.h5" --data "$T/d" --out "$T/di3" --batch 4 \
    --subdivisions 1 --max-batches 1 --at-layers 2:1,999:1 > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "attention layer 999" "$T/err.txt"; check "a layer the nets lack exits 1 naming it" $?

# ---- dry run and bad input ----
"$W" prune "$T/sp/last.h5" --groups global --ratio 0.3 --bench-runs 0 --dry-run > "$T/dry.txt" 2>&1
check "--dry-run exits 0" $?
grep -q "^| all |" "$T/dry.txt"; check "--dry-run prints the report (group 'all')" $?
sum_before=$(md5sum "$T/pr/pruned.h5")
"$W" prune "$T/sp/last.h5" --groups global -o "$T/pr" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "not an empty folder" "$T/err.txt"; check "a used -o folder exits 2" $?
[ "$(md5sum "$T/pr/pruned.h5")" = "$sum_before" ]; check "and leaves its files untouched" $?
"$W" prune "$T/sp/last.h5" --groups bogus --dry-run > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "unknown grouping 'bogus' (known: global, layer, scale, scale-module, file)" "$T/err.txt"
check "an unknown grouping exits 1 listing the known ones" $?
"$W" prune "$T/sp/last.h5" --groups global --merge vote --dry-run > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "union or majority" "$T/err.txt"; check "--merge vote exits 2" $?
"$W" prune "$T/sp/last.h5" --groups global --ratios 0.1,0.2 --dry-run --bench-runs 0 > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "2 ratios given for 1 groups (all)" "$T/err.txt"; check "a wrong number of ratios exits 1 naming the groups" $?
"$W" prune "$T/sp/last.h5" --groups global --target-params 120% --dry-run > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ]; check "--target-params 120% exits 2" $?
head -c 5000 "$T/sp/last.h5" > "$T/trunc.h5"
"$W" prune "$T/trunc.h5" --groups global --dry-run > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "trunc.h5" "$T/err.txt"; check "a truncated checkpoint exits 1 naming it" $?
exit $fail
