#!/usr/bin/env bash
# Sets everything up (the project's venv, vLLM's venv, the models the answering tests serve),
# then runs the linters, the type checker and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    local name=$1
    shift
    local start=$SECONDS
    echo "=== $name"
    "$@"
    echo "=== $name: $((SECONDS - start)) s"
}

step setup bash scripts/setup.sh
step "setup vLLM" bash scripts/setup_llm.sh
step "setup Chromium" bash scripts/setup_chromium.sh
step "models" bash -c ".venv/bin/sourcebook models prepare small && .venv/bin/sourcebook models prepare demo"
step "ruff check" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step mypy .venv/bin/mypy
step pytest .venv/bin/python -m pytest "$@"
echo "=== all steps passed in $SECONDS s"
