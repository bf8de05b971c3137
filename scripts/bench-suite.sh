#!/usr/bin/env bash
# The benchmark suite (issue 8): this machine's peak and bandwidth, every op
# at YOLOv4 shapes, whole networks (yolov4-tiny and yolov4, 416 and 224,
# batch 1 and 8, inference and training steps) with PyTorch on the same
# networks in the same run when /usr/bin/python3 has torch, and a pruned
# network against its parent. Prints a table, and keeps every JSON object in
# bench/results/<date>-<host>.jsonl so progress stays visible over time.
#   scripts/bench-suite.sh [--quick] [--runs N] [--threads N] [--no-torch]
# --quick: yolov4-tiny only. Each network runs in its own process (its peak
# memory is its own).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5
THREADS=$(nproc)
QUICK=0
TORCH=1
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --no-torch) TORCH=0 ;;
    --runs) RUNS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    *) echo "bench-suite: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
./scripts/build.sh > /dev/null
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=./build/whittle
mkdir -p bench/results
OUT=bench/results/$(date +%Y%m%d-%H%M%S)-$(hostname -s).jsonl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[ $TORCH -eq 1 ] && ! /usr/bin/python3 -c "import torch" 2> /dev/null && TORCH=0

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "{\"bench\": \"machine\", \"cpu\": \"$cpu\", \"cores\": $(nproc), \"threads\": $THREADS, \"omp_wait_policy\": \"$OMP_WAIT_POLICY\", \"date\": \"$(date -Iseconds)\", \"commit\": \"$(git rev-parse --short HEAD 2> /dev/null || echo none)\"}" >> "$OUT"
$W bench peak --threads "$THREADS" --json >> "$OUT"
PEAK=$(tail -1 "$OUT" | sed -n 's/.*"fma_gflop_per_s": \([0-9.]*\).*/\1/p')
$W bench ops --threads "$THREADS" --runs "$RUNS" --json | tr -d '\n' >> "$OUT"
echo >> "$OUT"

MODELS="yolov4-tiny yolov4"
[ $QUICK -eq 1 ] && MODELS="yolov4-tiny"
for m in $MODELS; do
    for size in 416 224; do
        $W model "$m" --classes 20 --size "$size" -o "$TMP/$m-$size.cfg" 2> /dev/null
        for mode in infer train; do
            for b in 1 8; do
                $W bench net --cfg "$TMP/$m-$size.cfg" --batch "$b" --mode "$mode" --runs "$RUNS" \
                    --threads "$THREADS" --peak "$PEAK" --json | sed "s|$TMP/||" >> "$OUT"
                if [ $TORCH -eq 1 ]; then
                    /usr/bin/python3 bench/torch_compare.py "$TMP/$m-$size.cfg" --size "$size" --batch "$b" \
                        --mode "$mode" --runs "$RUNS" --threads "$THREADS" | sed "s|$TMP/||" >> "$OUT"
                fi
            done
        done
    done
done

# a pruned network against its parent: yolov4-tiny at 416 (5 classes: the
# embedded data's, for the one training step that makes a checkpoint),
# random |gamma|, the scale-module groups, half the parameters, kept counts
# rounded to 8
$W model yolov4-tiny --classes 5 --size 416 -o "$TMP/parent.cfg" 2> /dev/null
$W train --cfg "$TMP/parent.cfg" --out "$TMP/t" --max-batches 1 --batch 2 --subdivisions 1 --test-split '' \
    > "$TMP/log" 2>&1 || { cat "$TMP/log" >&2; exit 1; }
$W prune "$TMP/t/last.h5" --groups scale-module --target-params 0.5 --round-to 8 --bench-runs 0 -o "$TMP/p" \
    > "$TMP/log" 2>&1 || { cat "$TMP/log" >&2; exit 1; }
for b in 1 8; do
    for k in 1 2; do # interleaved, twice: the machine drifts
        $W bench net --cfg "$TMP/parent.cfg" --batch "$b" --runs "$RUNS" --threads "$THREADS" \
            --peak "$PEAK" --json | sed "s|$TMP/parent.cfg|parent|" >> "$OUT"
        $W bench net --cfg "$TMP/p/pruned.cfg" --batch "$b" --runs "$RUNS" --threads "$THREADS" \
            --peak "$PEAK" --json | sed "s|$TMP/p/pruned.cfg|pruned|" >> "$OUT"
    done
done

/usr/bin/python3 - "$OUT" << 'EOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
m = rows[0]; pk = next(r for r in rows if r['bench'] == 'peak')
print(f"machine: {m['cpu']}, {m['cores']} cores, {m['threads']} threads, OMP_WAIT_POLICY {m['omp_wait_policy']}, commit {m['commit']}")
print(f"peak: {pk['fma_gflop_per_s']} GFLOP/s FMA ({pk['fma_gflop_per_s_one_thread']} on one thread), triad {pk['triad_gb_per_s']} GB/s\n")
ops = next((r for r in rows if r['bench'] == 'ops'), None)
if ops:
    print('| op | shape | ms | rate | of peak |\n|---|---|---|---|---|')
    for o in ops['ops']:
        rate = f"{o['gflop_per_s']} GFLOP/s" if 'gflop_per_s' in o else f"{o['gb_per_s']} GB/s"
        pct = o.get('pct_of_peak', o.get('pct_of_triad'))
        print(f"| {o['op']} | {o['shape']} | {o['ms']:.3f} | {rate} | {pct} % |")
    print()
nets = [r for r in rows if r['bench'] == 'net' and r['net'] not in ('parent', 'pruned')]
torch = {(r['net'], r['mode'], r['size'], r['batch']): r for r in rows if r['bench'] == 'torch'}
print('| network | mode | size | batch | img/s | GFLOP/s | % of peak | peak RSS MB | PyTorch img/s | whittle / PyTorch |')
print('|---|---|---|---|---|---|---|---|---|---|')
for r in nets:
    t = torch.get((r['net'], r['mode'], r['size'], r['batch']))
    tt = f"{t['img_per_s']:.2f} | {r['img_per_s'] / t['img_per_s']:.2f}x" if t else '- | -'
    print(f"| {r['net'].replace('.cfg', '')} | {r['mode']} | {r['size']} | {r['batch']} | {r['img_per_s']:.2f} | "
          f"{r['gflop_per_s']:.1f} | {r['pct_of_peak']:.1f} | {r['peak_rss_mb']:.0f} | {tt} |")
pp = [r for r in rows if r['bench'] == 'net' and r['net'] in ('parent', 'pruned')]
if pp:
    print('\n| yolov4-tiny 416 inference | batch | conv GFLOP/img | median ms (2 runs) | latency ratio | FLOP ratio |')
    print('|---|---|---|---|---|---|')
    for b in (1, 8):
        par = [r for r in pp if r['net'] == 'parent' and r['batch'] == b]
        pru = [r for r in pp if r['net'] == 'pruned' and r['batch'] == b]
        if not par or not pru:
            continue
        mp = statistics.median(r['median_s'] for r in par); mq = statistics.median(r['median_s'] for r in pru)
        for name, rs, ms in (('parent', par, mp), ('pruned', pru, mq)):
            runs = ' / '.join('%.1f' % (1e3 * r['median_s']) for r in rs)
            print(f"| {name} | {b} | {rs[0]['conv_gflop_per_img']:.3f} | {runs} | "
                  f"{ms / mp:.2f} | {rs[0]['conv_gflop_per_img'] / par[0]['conv_gflop_per_img']:.2f} |")
print(f"\nresults: {sys.argv[1]}")
EOF
