#!/usr/bin/env bash
# The demo: the support bot's AI worker answers a queue of customer messages through an
# embedded OpenRouter that fails on purpose (outages, 429 storms, long conversations, credit
# running out, flaky network), once with llm-resilience's policy running in the WebAssembly
# component and once with a naive policy; then the side-by-side report, the timeline picture,
# and a shutdown/resume run that must lose no job. No API key, no network: the mock listens
# on 127.0.0.1 inside the worker.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> setting up (first run on a fresh machine takes a few minutes)"
bash scripts/setup.sh >/dev/null
echo "==> building the component and the worker"
cargo run -q -p xtask -- component
cargo build -q -p llmr-worker
echo "==> running every scenario twice (ours, naive): about two minutes"
target/debug/llmr-worker demo --out target/demo "$@"
