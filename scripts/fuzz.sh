#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer (clang, AddressSanitizer
# and UndefinedBehaviorSanitizer): tests/fuzz/targets.h lists the targets.
#   scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]
# Each target starts from tests/fuzz/corpus/<target>/ (the seeds, and every
# input that once crashed) and runs N seconds (default 30, CI's short run;
# a release runs an hour each: --seconds 3600). New inputs collect in
# build-fuzz/corpus/<target>/; a crash, leak or timeout stops the target,
# leaves the input in build-fuzz/crashes/<target>/ and makes the script fail.
# Fix it, then copy the input into tests/fuzz/corpus/<target>/: the test
# suite replays it from then on (FuzzCorpus).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=30
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_EACH=$2; shift ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1") ;;
    esac
    shift
done
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(cfg image voc darknet_data weights ckpt groups specs)
./scripts/install-deps.sh
mkdir -p build-fuzz
LOG=build-fuzz/build.log
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWH_FUZZ=ON -DWH_SANITIZE=ON \
    -DWH_BUILD_TESTS=OFF > "$LOG" 2>&1 || { cat "$LOG" >&2; exit 1; }
cmake --build build-fuzz -j "$(nproc)" $(printf -- '--target fuzz_%s ' "${TARGETS[@]}") >> "$LOG" 2>&1 ||
    { tail -40 "$LOG" >&2; exit 1; }
# one thread: the inputs are small, and oneDNN's and the harness's OpenMP stay quiet
export OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1
fail=0
printf '| target | seconds | runs | corpus | result |\n|---|---|---|---|---|\n'
for t in "${TARGETS[@]}"; do
    mkdir -p "build-fuzz/corpus/$t" "build-fuzz/crashes/$t"
    log="build-fuzz/$t.log"
    if ./build-fuzz/fuzz_"$t" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=3072 -malloc_limit_mb=2048 \
        -artifact_prefix="build-fuzz/crashes/$t/" -print_final_stats=1 \
        "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1; then
        result=ok
    else
        result="FAILED: $(ls "build-fuzz/crashes/$t" | head -1) (see $log)"
        fail=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    printf '| %s | %s | %s | %s files | %s |\n' "$t" "$SECONDS_EACH" "${runs:-?}" \
        "$(ls "build-fuzz/corpus/$t" | wc -l)" "$result"
done
exit $fail
