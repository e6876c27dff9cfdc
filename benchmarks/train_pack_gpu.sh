#!/usr/bin/env bash
# The model pack's training on one lent GPU: every job at once, one process each, then the best
# variant of each architecture chosen on VALIDATION (train_pack.py merge) and copied to $OUT.
#
#   bash benchmarks/train_pack_gpu.sh smoke    # a few minutes: every job, 3 short epochs, --limit
#   bash benchmarks/train_pack_gpu.sh full     # the pack run, each job within BUDGET_S seconds
#   JOBS=targets bash benchmarks/train_pack_gpu.sh smoke|full   # only the pack's two models below issue
#        29's targets (MobileNetV2, EfficientNetB0), each with and without cutout; four jobs, not six,
#        so each gets more of the GPU (see "targets" below)
#
# Why all at once: a MobileNet train step at batch 128 keeps an H200 far from busy, and a lease is
# short, so the jobs share the GPU (each process takes a slice of its memory). The students are
# therefore distilled from teacher probabilities scored before the run (--teacher-soft, the previous
# pack's MobileNetV2 + MobileNetV3-Small), not from this run's teachers, which finish at the same time.
# Two variants are trained of each ImageNet-initialised model (BatchNorm frozen or trained); validation
# picks one. Needs: .pack/fer2013.jpeg.npz and .pack/teacher_train.npy (see modelpack/README.md),
# the ImageNet weights in WEIGHTS (default .pack/weights), and Keras 3 with JAX (wheels in .whl).
#
# targets: what the CPU rounds taught (the issue 29 notes). Continuing the shipped models no longer pays
# (MobileNetV2 twice, EfficientNetB0 three times: each ended at or below where it started; weight averages
# of their epochs did not help either), so these start afresh with what the first GPU run lacked: the
# pack's best teacher, cutout (on the CPU +0.2 to +1.1 pt against the same run without it), MobileNetV2
# also at 160 px (ImageNet weights; it overfitted after ~20 epochs at 128), EfficientNetB0 from random
# weights with the whole budget (it was still rising at 14 epochs). Needs TEACHER (default
# .pack/teacher4_train.npy, `train_pack.py teacher`'s choice, its .json beside it) and the MobileNetV2
# ImageNet weights; upload ~57 MiB without modelpack/. The merge holds only those two architectures:
# `train_pack.py replace` then decides on validation, against the shipped models.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
jobs=${JOBS:-all}
case "$mode:$jobs" in smoke:all|full:all|smoke:targets|full:targets) ;;
  *) echo "usage: [JOBS=all|targets] $0 smoke|full" >&2; exit 2 ;; esac
out=${OUT:-runs/gpu-out}
runs=runs/gpu-$mode
[ "$jobs" = targets ] && runs=runs/gpu-targets-$mode
weights=${WEIGHTS:-.pack/weights}
mkdir -p "$out" "$runs"
if [ -z "${SKIP_WHEELS:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d)  # the wheels the machine lacks (keras, namex, optree), for this run only
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH=$site
fi
export PYTHONPATH=src:.:${PYTHONPATH:-} KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv,noheader 2>/dev/null

if [ "$mode" = smoke ]; then
  common=(--limit "${SMOKE_LIMIT:-6144}" --max-epochs 3 --final-eval-s 5)
  budget=1000; hard=240
else
  common=(--max-epochs 150)
  budget=${BUDGET_S:-420}; hard=$((budget + 60))
fi
if [ "$jobs" = targets ]; then
  teacher=${TEACHER:-.pack/teacher4_train.npy}
  note=$(python3 - "${teacher%.npy}.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print(f"the pack's {t['teacher']} (ONNX, flip-averaged; validation {t['val_accuracy']:.4f}), scored before the run")
PY
) || { echo "no ${teacher%.npy}.json beside $teacher (train_pack.py teacher writes both)" >&2; exit 2; }
else
  teacher=${TEACHER:-.pack/teacher_train.npy}
  note="previous pack's MobileNetV2 + MobileNetV3-Small (ONNX, flip-averaged), scored before the run"
fi
common+=(--data .pack/fer2013.jpeg.npz --weights-dir "$weights" --jobs pack --augment host --size 128
         --student-size 128 --shift 0.1 --host-workers 3 --teacher-soft "$teacher" --teacher-note "$note"
         --budgets "$budget,$budget,$budget,$budget")

run() {  # run NAME ARGS...: one job in the background, its log beside its run folder
  local name=$1; shift
  mkdir -p "$runs/$name"
  timeout -s INT "$hard" python3 benchmarks/train_pack.py train "${common[@]}" --out "$runs/$name" "$@" \
    >"$runs/$name.log" 2>&1 &
}
start=$(date +%s)
if [ "$jobs" = targets ]; then
  run v2_160_cutout --archs mobilenet_v2 --size 160 --distill-pretrained --freeze-bn --cutout 0.5
  run v2_cutout --archs mobilenet_v2 --distill-pretrained --freeze-bn --cutout 0.5
  run b0_cutout --archs efficientnet_b0 --cutout 0.5
  run b0 --archs efficientnet_b0
else
  run v2_bnfrozen --archs mobilenet_v2 --freeze-bn
  run v2_bntrain --archs mobilenet_v2 --no-freeze-bn
  run v3s_bnfrozen --archs mobilenet_v3_small --freeze-bn
  run v3s_bntrain --archs mobilenet_v3_small --no-freeze-bn
  run v3l --archs mobilenet_v3_large
  run b0 --archs efficientnet_b0
fi
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
  sleep "${POLL_S:-30}"
  echo "--- $(( $(date +%s) - start )) s: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
  for f in "$runs"/*.log; do printf '%s: %s\n' "$(basename "$f" .log)" "$(grep -E 'epoch|==|Error' "$f" | tail -1)"; done
done
wait
echo "=== all jobs ended after $(( $(date +%s) - start )) s"
python3 benchmarks/train_pack.py merge --runs "$runs"/*/ --out "$out/pack"
tar czf "$out/logs.tar.gz" "$runs"/*.log "$runs"/*/results.json "$runs"/*/*.progress.json 2>/dev/null
for f in "$out"/pack/*.npz; do  # the device tool returns files of at most 16 MiB
  if [ "$(stat -c %s "$f")" -gt 16000000 ]; then split -b 15000000 -d "$f" "$f.part"; rm "$f"; fi
done
ls -la "$out" "$out/pack"
