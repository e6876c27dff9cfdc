#!/usr/bin/env bash
# GPU run of the model pack's training (benchmarks/train_pack.py train) on a lent machine: Keras 3 on
# JAX, augmentation on the host, longer schedules than the CPU pack. Results and weights under $OUT.
#
# Usage, through the device tool from the repository root (carry .gpu and .whl; move modelpack/ out
# of the tree for the call so the upload fits 64 MiB):
#   TRAIN_SECONDS=470 EPOCHS=30,30,25,25 bash scripts/gpu_train_pack.sh
# .gpu: `train_pack.py prepare`'s fer2013.jpeg.npz and the two ImageNet .weights.h5 files
# (../shared/weights); .whl: keras, namex and optree wheels for the machine's Python (the image has
# JAX with CUDA and no TensorFlow). To go on in a later call, copy $OUT/run into runs/gpu1 here,
# carry it and pass RUN_DIR=runs/gpu1: finished jobs are kept, each job's best epoch is checkpointed.
set -u
python -V; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
pip install --quiet --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:src KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=3
python -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())"
timeout "${TRAIN_SECONDS:-500}" python benchmarks/train_pack.py train --data "${DATA_DIR:-.gpu}/fer2013.jpeg.npz" \
  --weights-dir "${DATA_DIR:-.gpu}" --jobs pack --size 128 --student-size 48 --epochs "${EPOCHS:-30,30,40,40}" \
  --augment host --host-workers 12 --out "${RUN_DIR:-$OUT/run}" --cache /tmp 2>&1 | grep -v "^\s*$" | tail -120
echo "exit ${PIPESTATUS[0]}"
ls -la "${RUN_DIR:-$OUT/run}"; [ -n "${RUN_DIR:-}" ] && cp -r "$RUN_DIR" "$OUT/run"
