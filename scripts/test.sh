#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the whole suite.
#   scripts/test.sh [--asan] [--skip NAME[,NAME...]]
# Under CI (CI=true) or with --asan it also runs the suite once more in an
# AddressSanitizer + UndefinedBehaviorSanitizer build, and fuzzes every
# parser for 30 s (scripts/fuzz.sh).
# Nothing is skipped silently: a test that cannot run here fails, saying
# what is missing. To skip a kind of check on purpose (tests/need.sh):
#   --skip mpi      app_mpi (Open MPI)
#   --skip python   torch_crosscheck and the h5py checks (/usr/bin/python3)
#   --skip mount    app_crash's full-disk and read-only checks (root: a tmpfs)
# and the summary at the end names what was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
ASAN=0
SKIP=""
[ -n "${CI:-}" ] && ASAN=1
while [ $# -gt 0 ]; do
    case "$1" in
    --asan) ASAN=1 ;;
    --skip)
        [ $# -ge 2 ] || { echo "test.sh: --skip needs a NAME (mpi, python, mount)" >&2; exit 2; }
        for n in ${2//,/ }; do
            case "$n" in
            mpi | python | mount) SKIP="${SKIP:+$SKIP,}$n" ;;
            *) echo "test.sh: --skip: unknown name '$n' (known: mpi, python, mount)" >&2; exit 2 ;;
            esac
        done
        shift ;;
    -h | --help) usage ;;
    *) echo "test.sh: unknown option '$1'" >&2; usage ;;
    esac
    shift
done
export WH_TEST_SKIP="$SKIP"
# Our own ops and oneDNN share one OpenMP runtime. Passive waiting keeps a
# shared 2-core machine usable while tests run (active spinning made a step
# about 10x slower when another process was busy).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

summary() {
    if [ -n "$SKIP" ]; then
        echo "test.sh: skipped by choice (--skip $SKIP): see tests/need.sh; ctest lists the skipped tests above"
    fi
}
trap summary EXIT

./scripts/build.sh
(cd build && ctest --output-on-failure -j 2)

if [ "$ASAN" = 1 ]; then
  WH_BUILD_DIR=build-asan ./scripts/build.sh -DCMAKE_BUILD_TYPE=Debug -DWH_SANITIZE=ON
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     LSAN_OPTIONS="suppressions=$PWD/../tests/lsan.supp:print_suppressions=0" \
     ctest --output-on-failure -j 2)
  # the short fuzzing run: every parser of outside input, 30 s each
  ./scripts/fuzz.sh --seconds 30
fi
