#!/usr/bin/env bash
# Refreshes constraints.txt: resolves pyproject.toml's ranges afresh in a throw-away venv (torch
# first, as in setup.sh) and freezes the result. Review the diff, run the tests, commit.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3.11 -m venv "$work/venv" 2>/dev/null || python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "torch==2.13.0"
"$work/venv/bin/pip" install --quiet -e ".[dev]"
{
    echo "# The exact versions every machine installs: pip install -c constraints.txt -e '.[dev]'"
    echo "# (after pip install torch==2.13.0). Refresh with: bash scripts/lock.sh"
    "$work/venv/bin/pip" freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
