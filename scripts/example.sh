#!/usr/bin/env bash
# Install QFlow and run the example project's pipeline on the embedded defaults
# (SQLite metadata and a local artifact store under examples/classification/.qflow).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[examples]'
.venv/bin/qflow run logistic_regression --project examples/classification "$@"
.venv/bin/qflow runs --project examples/classification --limit 5
