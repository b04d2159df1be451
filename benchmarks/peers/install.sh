#!/usr/bin/env bash
# Installs bench_peers.py's peers in their own virtual environment, so they never become
# polyfuse's dependencies: torch + transformers (the models), litert-torch and ai-edge-litert
# (LiteRT with XNNPACK), mnn (MNN and its converter), onnxruntime.
#   bash benchmarks/peers/install.sh [VENV]        (default benchmarks/peers/.venv)
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")" && pwd)/.venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0 transformers ai-edge-litert==2.3.0 \
  litert-torch==0.10.0 mnn==3.6.1 onnx onnxruntime==1.32.0 numpy
echo "peers installed in $VENV"
