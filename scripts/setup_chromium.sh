#!/usr/bin/env bash
# Headless Chromium for the answer-eval report test (tests/evals/test_eval_store.py opens the HTML
# report and checks that its plots render). Debian's package; nothing to do when it is installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
chromium --version
