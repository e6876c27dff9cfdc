#!/usr/bin/env bash
# The main job, from a fresh clone: set up, then run the demo.
# `ferlite demo` serves the model pack in modelpack/: no training step.
set -euo pipefail
cd "$(dirname "$0")/.."
FERLITE_TEST_TOOLS=0 bash scripts/setup.sh  # the demo needs no apt package
venv=${FERLITE_VENV:-.venv}
"$venv/bin/ferlite" demo "$@"
