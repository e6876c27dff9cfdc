#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (idempotent), lint, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k config -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${FERLITE_VENV:-.venv}
"$venv/bin/ruff" check .
"$venv/bin/python" -m pytest "$@"
