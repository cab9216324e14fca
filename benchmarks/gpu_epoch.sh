#!/usr/bin/env bash
# On the lent GPU machine (JAX and CUDA, no TensorFlow, no package index): Keras from the bundle that
# benchmarks/gpu_bundle.py packed, then benchmarks/gpu_epoch.py; its JSON lands in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The newest Keras in the bundle that this Python runs (ours, recipe.json's, from CPython 3.11 on).
$PYTHON -m pip install --quiet --no-index --find-links gpu_bundle/wheels keras \
  || $PYTHON -m pip install --quiet --user --no-index --find-links gpu_bundle/wheels keras
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
KERAS_BACKEND=jax PYTHONPATH=. $PYTHON benchmarks/gpu_epoch.py --bundle gpu_bundle --out "${OUT:-.}" "$@"
