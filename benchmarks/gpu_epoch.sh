#!/usr/bin/env bash
# On the lent GPU machine (JAX and CUDA, no TensorFlow, no package index): Keras from the bundle that
# benchmarks/gpu_bundle.py packed, then benchmarks/gpu_epoch.py for our BiGRU (JAX) and the torch
# peer (cuDNN) on the same card; their JSON lands in $OUT after each epoch. Each part has its own time
# limit (KERAS_SECONDS, TORCH_SECONDS) so that a slow first part still leaves the second its turn.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The newest Keras in the bundle that this Python runs (ours, recipe.json's, from CPython 3.11 on).
$PYTHON -m pip install --quiet --no-index --find-links gpu_bundle/wheels keras \
  || $PYTHON -m pip install --quiet --user --no-index --find-links gpu_bundle/wheels keras || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
export KERAS_BACKEND=jax PYTHONPATH=. PYTHONUNBUFFERED=1
timeout "${KERAS_SECONDS:-270}" $PYTHON benchmarks/gpu_epoch.py --bundle gpu_bundle --out "${OUT:-.}" "$@"
keras_status=$?
timeout "${TORCH_SECONDS:-150}" $PYTHON benchmarks/gpu_epoch.py --bundle gpu_bundle --out "${OUT:-.}" --peer torch "$@"
torch_status=$?
exit $(( keras_status != 0 ? keras_status : torch_status ))
