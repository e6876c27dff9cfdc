#!/usr/bin/env bash
# The main job, from a fresh clone: set up, then run the demo.
# Until the local stack lands (`ferlite up` / `ferlite demo`), it runs what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${FERLITE_VENV:-.venv}
"$venv/bin/ferlite" --help
