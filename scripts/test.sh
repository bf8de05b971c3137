#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the whole suite.
# Under CI (CI=true) or with --asan it also runs the suite once more in an
# AddressSanitizer + UndefinedBehaviorSanitizer build, and fuzzes every
# parser for 30 s (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ASAN=0
[ -n "${CI:-}" ] && ASAN=1
[ "${1:-}" = "--asan" ] && ASAN=1
# Our own ops and oneDNN share one OpenMP runtime. Passive waiting keeps a
# shared 2-core machine usable while tests run (active spinning made a step
# about 10x slower when another process was busy).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

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
