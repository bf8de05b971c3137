#!/usr/bin/env bash
# Configures and builds whittle into build/ (or $WH_BUILD_DIR). Extra
# arguments go to cmake. Warnings are errors when CI is set.
set -euo pipefail
cd "$(dirname "$0")/.."
"./scripts/install-deps.sh"
BUILD=${WH_BUILD_DIR:-build}
WERROR=OFF
[ -n "${CI:-}" ] && WERROR=ON
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWH_WERROR=$WERROR "$@" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
