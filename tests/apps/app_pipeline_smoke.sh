#!/usr/bin/env bash
# whittle pipeline and whittle ablate on a tiny dataset with the smoke budget
# (a few iterations per stage):
#  - the whole pipeline writes its tables and charts, and its numbers agree
#    with whittle eval and whittle info of the stage checkpoints;
#  - a run cut into pieces by --stop-after (rerun until done) ends with the
#    same table as the uninterrupted run (one thread: bit-for-bit resume);
#  - a rerun with other settings is refused and changes nothing;
#  - ablate shares stages (one baseline, one sparse run per scheduler and
#    seed, ...), writes one CSV line per run, and a rerun redoes nothing.
. "$(dirname "$0")/common.sh" "$@"

"$W" mkdata --out "$T/d" --images 16 --size 96 --seed 3 > /dev/null
P=(--data "$T/d" --budget smoke --size 96 --threads 1)
"$W" pipeline "${P[@]}" --out "$T/a" > "$T/a.txt" 2>&1
check "pipeline exits 0" $?
for f in results.md results.csv results.json settings.txt charts/loss.png charts/gamma.png charts/channels.png \
    charts/attention.png 1-baseline/last.h5 2-sparse/last.h5 3-pruned/pruned.h5 4-finetune/last.h5 5-distill/last.h5; do
    [ -s "$T/a/$f" ]; check "pipeline writes $f" $?
done
for f in loss gamma channels attention; do
    [ "$(head -c 8 "$T/a/charts/$f.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]
    check "charts/$f.png is a PNG" $?
done
[ "$(grep -c '^|' "$T/a/results.md")" -eq 7 ]; check "results.md: header, rule and 5 stages" $?
grep -q "^| stage | voc07 mAP@0.5 (VOC07 11-point) |" "$T/a.txt"; check "the printed table names its metric" $?
col() { awk -F, -v s="$2" -v c="$3" '$1 == s { print $c }' "$1/results.csv"; } # csv, stage, column
p0=$(col "$T/a" baseline 4); p2=$(col "$T/a" pruned 4); p4=$(col "$T/a" distilled 4)
[ -n "$p0" ] && [ -n "$p2" ] && [ "$p2" -lt "$p0" ] && [ "$p2" = "$p4" ]
check "pruning removes parameters ($p0 -> $p2) and the fine-tunes keep the pruned network ($p4)" $?
grep -q "pruning .*batch norm re-estimated on 32 images" "$T/a.txt" &&
    grep -q "^Batch-norm statistics re-estimated after the check above on 32 " "$T/a/3-pruned/report.md"
check "the pruned stage re-estimates batch-norm statistics (smoke: 2 batches of 16) and says so" $?
info=$("$W" info "$T/a/3-pruned/pruned.cfg" | sed -n 's/^Total parameters: \([0-9]*\) .*/\1/p')
[ "$info" = "$p2" ]; check "the pruned row's parameters = whittle info of pruned.cfg ($info)" $?
m_eval=$("$W" eval "$T/a/5-distill/last.h5" --data "$T/d" --threads 1 | sed -n 's/^voc07 mAP@0.5 .* = \([0-9.]*\) .*/\1/p')
m_row=$(awk -F, '$1 == "distilled" { printf "%.4f", $3 }' "$T/a/results.csv")
[ -n "$m_eval" ] && [ "$m_eval" = "$m_row" ]; check "the distilled row's mAP ($m_row) = whittle eval of its checkpoint ($m_eval)" $?
python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert d['metric'] == 'voc07' and [s['stage'] for s in d['stages']] == ['baseline', 'sparse', 'pruned', 'fine-tuned', 'distilled']
assert d['stages'][2]['train_img_per_s'] is None and d['stages'][0]['train_img_per_s'] > 0
" "$T/a/results.json"
check "results.json lists the 5 stages (no training speed for the pruned row)" $?

# ---- interrupted and resumed: the same numbers ----
runs=0
while [ ! -e "$T/b/results.md" ] && [ $runs -lt 10 ]; do
    "$W" pipeline "${P[@]}" --out "$T/b" --stop-after 2 >> "$T/b.txt" 2>&1 || break
    runs=$((runs + 1))
done
[ $runs -ge 4 ] && [ -e "$T/b/results.md" ]; check "--stop-after 2: $runs reruns finish the pipeline" $?
grep -q "stopped at iteration 2 of 4 (--stop-after); rerun the same command to go on" "$T/b.txt"
check "a stopped run says how to go on" $?
cut -d, -f1-5 "$T/a/results.csv" > "$T/a.cut"
cut -d, -f1-5 "$T/b/results.csv" > "$T/b.cut"
cmp -s "$T/a.cut" "$T/b.cut"; check "the resumed pipeline's mAP, parameters and FLOPs equal the uninterrupted run's" $?
"$W" pipeline "${P[@]}" --out "$T/b" > "$T/b2.txt" 2>&1 && ! grep -q "starting\|resuming" "$T/b2.txt" &&
    [ "$(grep -c "done before" "$T/b2.txt")" -eq 5 ]
check "a rerun of a finished pipeline trains nothing" $?

# ---- from darknet weights and back ----
"$W" export-darknet "$T/a/1-baseline/last.h5" -o "$T/dn" > /dev/null 2>&1 &&
    "$W" import-darknet "$T/dn.cfg" "$T/dn.weights" -o "$T/imp.h5" > /dev/null 2>&1
check "the baseline goes to darknet and back" $?
"$W" pipeline --data "$T/d" --budget smoke --threads 1 --init "$T/imp.h5" --out "$T/i" > "$T/i.txt" 2>&1
check "pipeline --init (an imported darknet baseline) exits 0" $?
grep -q "baseline     given" "$T/i.txt" && [ ! -e "$T/i/1-baseline/last.h5" ] &&
    [ "$(col "$T/i" baseline 3)" = "$(col "$T/a" baseline 3)" ] && [ "$(col "$T/i" baseline 4)" = "$p0" ]
check "the given baseline is measured, not trained (same mAP and parameters)" $?
"$W" export-darknet "$T/i/5-distill/last.h5" -o "$T/small" > /dev/null 2>&1 &&
    "$W" import-darknet "$T/small.cfg" "$T/small.weights" -o "$T/small.h5" > /dev/null 2>&1
m1=$("$W" eval "$T/small.h5" --data "$T/d" --threads 1 | sed -n 's/^voc07 mAP@0.5 .* = \([0-9.]*\) .*/\1/p')
m2=$(awk -F, '$1 == "distilled" { printf "%.4f", $3 }' "$T/i/results.csv")
[ -n "$m1" ] && [ "$m1" = "$m2" ]; check "the distilled network as darknet cfg + weights keeps its mAP ($m1 = $m2)" $?

# ---- bad input ----
sum=$(cat "$T/a/settings.txt" "$T/a/results.csv" | md5sum)
"$W" pipeline "${P[@]}" --out "$T/a" --target-params 0.3 > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 1 ] && grep -q "holds runs with other settings" "$T/err.txt" &&
    [ "$(cat "$T/a/settings.txt" "$T/a/results.csv" | md5sum)" = "$sum" ]
check "other settings in a used folder: exit 1, files untouched" $?
"$W" pipeline --budget huge --out "$T/c" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown budget 'huge'" "$T/err.txt"; check "an unknown budget exits 2" $?
"$W" ablate --grid sched=constant flavour=x --out "$T/c" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown key 'flavour'" "$T/err.txt"; check "an unknown grid key exits 2" $?
"$W" ablate --grid distill=magic --out "$T/c" > /dev/null 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "distill=magic" "$T/err.txt"; check "an unknown distill mode exits 2" $?

# ---- ablate ----
"$W" ablate "${P[@]}" --grid sched=constant,dynamic groups=global distill=none,attention --seeds 2 --out "$T/g" \
    > "$T/g.txt" 2>&1
check "ablate exits 0" $?
n() { find "$T/g" -maxdepth 1 -type d -name "$1" | wc -l; }
[ "$(n 'baseline')" -eq 1 ] && [ "$(n 'sparse-*')" -eq 4 ] && [ "$(n 'pruned-*')" -eq 4 ] && [ "$(n 'ft-*')" -eq 8 ]
check "ablate shares stages: 1 baseline, 4 sparse, 4 prunings, 8 fine-tunes for 2x1x2 x 2 seeds" $?
[ "$(wc -l < "$T/g/ablation.csv")" -eq 9 ]; check "ablation.csv: one line per run" $?
[ "$(grep -c '^| \(constant\|dynamic\) | global | \(none\|attention\) |' "$T/g/ablation.md")" -eq 4 ]
check "ablation.md: one row per combination" $?
[ "$(grep -c '^| \(constant\|dynamic\) | [0-9.]* +- [0-9.]* | [0-9.]* +- ' "$T/g/ablation.md")" -eq 2 ]
check "ablation.md: the sparse models' mAP and |gamma| share per scheduler" $?
[ -s "$T/g/ablation.png" ] && python3 -c "import json,sys; assert len(json.load(open(sys.argv[1]))['runs']) == 8" \
    "$T/g/ablation.json"
check "ablation.json and ablation.png" $?
# every JSON file the pipeline and ablate wrote parses with Python's json,
# strictly (NaN and Infinity are not JSON: a missing number must be null)
/usr/bin/python3 - "$T/a" "$T/g" << 'EOF_PY'
import json, pathlib, sys
def no_constants(c): raise ValueError("not JSON: " + c)
files = bad = 0
for root in sys.argv[1:]:
    for p in pathlib.Path(root).rglob("*.json*"):
        if p.suffix not in (".json", ".jsonl"): continue
        files += 1
        try:
            text = p.read_text()
            docs = [l for l in text.splitlines() if l.strip()] if p.suffix == ".jsonl" else [text]
            for d in docs: json.loads(d, parse_constant=no_constants)
        except Exception as e:
            bad += 1
            print("  %s: %s" % (p, e))
print("  %d JSON files, %d invalid" % (files, bad))
sys.exit(1 if bad or files < 10 else 0)
EOF_PY
check "every .json and .jsonl file written parses with Python's json (strict)" $?
m1=$(awk -F, '$1 == "dynamic" && $3 == "attention" && $4 == 2 { print $7 }' "$T/g/ablation.csv")
m2=$("$W" eval "$T/g/ft-dynamic-global-attention-s2/last.h5" --data "$T/d" --threads 1 |
    sed -n 's/^voc07 mAP@0.5 .* = \([0-9.]*\) .*/\1/p')
awk -v a="$m1" -v b="$m2" 'BEGIN { exit !(a != "" && b != "" && (a - b < 6e-5 && b - a < 6e-5)) }'
check "a run's CSV mAP ($m1) = whittle eval of its checkpoint ($m2)" $?
"$W" ablate "${P[@]}" --grid sched=constant,dynamic groups=global distill=none,attention --seeds 2 --out "$T/g" \
    > "$T/g2.txt" 2>&1 && ! grep -q "starting\|resuming\|  pruning " "$T/g2.txt"
check "rerunning a finished grid trains and prunes nothing" $?
exit $fail
