#!/usr/bin/env bash
# The main job, from a fresh clone: set up, then run the demo.
# `ferlite demo` trains small demo models on synthetic faces first if models/ is empty.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${FERLITE_VENV:-.venv}
"$venv/bin/ferlite" demo "$@"
