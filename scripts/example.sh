#!/usr/bin/env bash
# Install QFlow and run the example project's pipeline on the embedded defaults
# (SQLite metadata and a local artifact store under examples/classification/.qflow).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The package build also builds the dashboard (frontend/), which needs Node and npm: Debian's
# are installed when missing and this runs as root; otherwise the example installs without
# the dashboard (the pipeline does not need it).
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "npm not found: installing without the dashboard (apt-get install nodejs npm adds it)" >&2
    export QFLOW_SKIP_FRONTEND=1
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[examples]'
.venv/bin/qflow run logistic_regression --project examples/classification "$@"
.venv/bin/qflow runs --project examples/classification --limit 5
