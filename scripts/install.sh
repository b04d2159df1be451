#!/usr/bin/env bash
# Install polyfuse and everything it needs on a fresh Debian/Ubuntu machine.
#   bash scripts/install.sh          system packages + polyfuse (editable)
#   bash scripts/install.sh --test   ... plus the test requirements (torch, transformers)
set -euo pipefail
cd "$(dirname "$0")/.."

# g++ builds host artifacts; the arm64 cross compiler builds --target android-cpu and user-mode
# qemu runs those here (--device qemu); cmake builds any artifact from its own sources. PoCL is an
# OpenCL device on the CPU, so --target android-gpu runs here (the ICD loader finds it); oclgrind
# checks those kernels for races and uninitialised reads; clinfo lists the OpenCL devices.
APT_PACKAGES=(g++ cmake g++-aarch64-linux-gnu qemu-user pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev
              opencl-c-headers clinfo oclgrind)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install.sh: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check -e ".[nas]"
if [ "${1:-}" = "--test" ]; then
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-test.txt
fi
echo "install.sh: polyfuse $("$PY" -c 'import polyfuse; print(polyfuse.__version__)') installed"
