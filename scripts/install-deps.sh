#!/usr/bin/env bash
# Installs the Debian packages whittle needs, only those that are missing.
# Idempotent and silent when everything is already there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libdnnl-dev        # oneDNN 2.x: convolutions
  ocl-icd-opencl-dev # only recommended by libdnnl-dev, but Debian's dnnl-config.cmake
                     # requires OpenCL: without it cmake stops at find_package(dnnl)
  libhdf5-dev        # checkpoints and attention maps
  libgtest-dev       # the test suite
  libjpeg-dev libpng-dev libxml2-dev   # datasets (images, VOC annotations)
  libcjson-dev       # reading JSON (framework/core/json.h)
  python3-torch      # tests: whole-network cross-check against PyTorch (/usr/bin/python3)
  python3-h5py       # tests: the attention-map dumps read as a user would
  libopenmpi-dev openmpi-bin   # data-parallel training over MPI (and its tests)
  clang libclang-rt-14-dev libomp-dev   # scripts/fuzz.sh: libFuzzer targets (CI's short run)
  procps             # tests: pgrep finds a rank to kill (not in a minimal Debian root)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
before=$(dpkg-query -W -f='${Status}\n' | grep -c "install ok installed" || true)
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
after=$(dpkg-query -W -f='${Status}\n' | grep -c "install ok installed" || true)
echo "install-deps: done: $((after - before)) packages installed with their dependencies" >&2
