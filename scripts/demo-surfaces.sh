#!/usr/bin/env bash
# The surfaces demo: classify a dozen real error bodies through every surface (core, C, Go, wasmtime,
# Python, JS) and print one table. Embedded data only: no API key, no network.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> setting up (first run on a fresh machine takes a few minutes)"
bash scripts/setup.sh >/dev/null
echo "==> building the component, the CLI, the C library, the C and Go demo programs"
cargo run -q -p xtask -- component
cargo build -q -p llmr-host --bin llmr
cargo build -q -p llm-resilience-ffi --release
mkdir -p target/demo
cc -O2 -Wall -Wextra -I ffi/include -o target/demo/classify_jsonl ffi/examples/classify_jsonl.c \
  target/release/libllm_resilience_ffi.a $(pkg-config --cflags --libs libcjson) -ldl -lpthread -lm
(cd ffi/go && go build -o ../../target/demo/llmr-go ./cmd/llmr-classify)
(cd examples/js-host && npm run -s build >/dev/null)
echo
python3 scripts/demo.py
