#!/usr/bin/env bash
# Creates .venv with the locked dependencies (constraints.txt). Idempotent: when the lock and
# pyproject.toml haven't changed since the last run, it does nothing.
#
# torch goes in first and alone: `pip install torch==2.13.0` takes this machine's local CPU build
# (a GPU machine gets the CUDA build of the same version from PyPI); every later install is
# constrained to that version, so no dependency can swap in a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

quiet_pip() { grep -v -e '^WARNING: Location' -e '^\s*$' || true; }

. scripts/python.sh

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.sourcebook-lock
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "setup: .venv is up to date"
    exit 0
fi

echo "setup: installing torch 2.13.0"
.venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0" 2>&1 | quiet_pip
echo "setup: installing Sourcebook and its locked dependencies"
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]" 2>&1 | quiet_pip
.venv/bin/pip check --disable-pip-version-check
echo "$want" > "$stamp"
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
