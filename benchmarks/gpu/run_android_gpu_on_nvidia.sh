#!/bin/bash
# android-gpu on a Linux machine with an NVIDIA GPU (a lent CUDA machine, a container): the
# measurements kept in benchmarks/results/*_h200.json, in one run.
#
#   OUT=results_dir bash benchmarks/gpu/run_android_gpu_on_nvidia.sh
#
# Such machines often have NVIDIA's OpenCL driver (libnvidia-opencl.so.1) but no ICD file naming
# it, or only PoCL's: this script points the ICD loader at the driver alone (OCL_ICD_VENDORS), so
# pf_run picks the GPU. If the machine has no ICD loader (libOpenCL.so.1) or clinfo, put the
# Debian/Ubuntu packages ocl-icd-libopencl1 and clinfo (.deb files) in $DEBS: they are unpacked
# under /tmp/ocl. Needs python3 with numpy, onnx, onnxruntime, sympy, networkx, jinja2, pybind11,
# ml_dtypes >= 0.7, torch and transformers (to export the models and time PyTorch on the GPU).
# Each step has its own time limit (seconds: BENCH_S, TEST_S, CAL_S, VAL_S).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee -a "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
NV=${NV:-$(for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat; do
  ls "$d"/libnvidia-opencl.so.1 2>/dev/null; done | head -1)}
[ -n "$NV" ] || { echo "no libnvidia-opencl.so.1 found (set NV=/path/to/it)"; exit 3; }
mkdir -p /tmp/ocl/vendors && echo "$NV" > /tmp/ocl/vendors/nvidia.icd
export OCL_ICD_VENDORS=/tmp/ocl/vendors
for f in ${DEBS:-}/*.deb; do [ -f "$f" ] && dpkg -x "$f" /tmp/ocl; done
if [ -f /tmp/ocl/usr/lib/x86_64-linux-gnu/libOpenCL.so.1 ]; then
  export PF_OPENCL_LIB=/tmp/ocl/usr/lib/x86_64-linux-gnu/libOpenCL.so.1
  mkdir -p /tmp/ocl/bin  # clinfo alone gets the unpacked loader
  printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/ocl/usr/lib/x86_64-linux-gnu exec /tmp/ocl/usr/bin/clinfo "$@"\n' > /tmp/ocl/bin/clinfo
  chmod +x /tmp/ocl/bin/clinfo
  export PATH="/tmp/ocl/bin:$PATH"
fi
clinfo -l || true
echo "== $(date -u) bench_opencl (seq 128)"
timeout "${BENCH_S:-300}" python3 benchmarks/bench_opencl.py --seq 128 --runs 20 --torch-cuda --json "$OUT/bench_opencl.json"
echo "== $(date -u) tests/test_android_gpu.py on this driver"
timeout "${TEST_S:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_android_gpu.py \
  -k "not oclgrind and not device_build" 2>&1 | tail -15
echo "== $(date -u) calibrate android-gpu, then validate the cost model"
timeout "${CAL_S:-150}" python3 -m polyfuse calibrate --target android-gpu -o "$OUT/profile.json" --force
[ -f "$OUT/profile.json" ] && timeout "${VAL_S:-200}" python3 benchmarks/validate_cost_model.py --target android-gpu \
  --profile "$OUT/profile.json" --jobs "$(nproc)" --rounds 2 --json "$OUT/validate_cost_model.json"
echo "== $(date -u) done"
