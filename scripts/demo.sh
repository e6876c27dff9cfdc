#!/usr/bin/env bash
# The main job, from a fresh clone: set up, then run the demo.
# `ferlite demo` serves the model pack in modelpack/: no training step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${FERLITE_VENV:-.venv}
"$venv/bin/ferlite" demo "$@"
