#!/usr/bin/env bash
# The one test command: builds .venv with edge-ext and its test extras if needed, lints, then
# runs the whole suite (unit, in-process gRPC, real Envoy e2e). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.edge-ext-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  touch "$stamp"
fi

# Lint first (pyflakes' rules and syntax errors, configured in pyproject.toml): a finding fails the run.
.venv/bin/python -m ruff check --quiet .

# Two processes by default (EDGE_EXT_TEST_WORKERS; 0 runs in this one): the e2e modules wait on
# Envoy and the mock providers most of the time. --dist loadfile keeps each module, and so its
# module-scoped edge, in one process.
workers=${EDGE_EXT_TEST_WORKERS:-2}
set +e
if [ "$workers" = "0" ]; then
  .venv/bin/python -m pytest "$@"
else
  .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
fi
code=$?
set -e
# pytest's 5 means "no tests collected": a run that tested nothing is a failure.
if [ "$code" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$code"
