#!/usr/bin/env bash
# Sets everything up and runs Sourcebook end to end on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sourcebook quickstart "$@"
