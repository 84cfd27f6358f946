#!/usr/bin/env bash
# Install QFlow with its test dependencies into .venv and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The dashboard (frontend/) is built by the package build (hatch_build.py: npm ci && npm run
# build, when missing or stale); it needs Node and npm (.ci/run installs Debian's).
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "npm is missing: apt-get install nodejs npm" >&2
    exit 1
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]' -e tests/plugin_pkg
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/lint-imports
# --durations: every CI log lists the slowest tests (the suite aims at 30 minutes in all).
.venv/bin/python -m pytest --durations=30 "$@"
