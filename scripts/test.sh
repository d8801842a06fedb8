#!/usr/bin/env bash
# Set up a virtual environment with the test tools, then run the linters, the type
# checker and the whole test suite. Safe to run again: the setup is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
bash scripts/system-deps.sh
bash scripts/caniemail.sh
bash scripts/axe.sh
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
