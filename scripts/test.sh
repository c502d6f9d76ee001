#!/usr/bin/env bash
# Runs every test on every surface: core, C ABI (ASan + valgrind), Go, wasmtime, Python, JS;
# then the AI workers (Rust through the component and natively, Go through cgo) against the
# embedded failing OpenRouter, ours beside naive.
# Usage: scripts/test.sh        (from anywhere; expects the tools that .ci/run installs)
# Prints the workers' scenario outcomes and the conformance vector counts per surface at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

step() { printf '\n==> %s\n' "$*"; }
# Runs a step, keeps its output for the summary, and stops on the first failure.
run() {
  local name=$1; shift
  step "$name: $*"
  if ! "$@" 2>&1 | tee "$logs/$name.log"; then
    echo "FAILED: $name" >&2
    exit 1
  fi
}

run setup bash scripts/setup.sh
run fmt cargo fmt --all --check
run clippy cargo clippy --workspace --all-targets -- -D warnings
# The exact tokenizer (o200k/cl100k tables) is an opt-in core feature until its surfaces land.
run clippy-tokenizer cargo clippy -p llm-resilience --all-targets --all-features -- -D warnings
run component cargo run -q -p xtask -- component
run imports cargo run -q -p xtask -- check-imports target/llm-resilience.wasm
run header bash ffi/check-header.sh
run cargo-test cargo test --workspace -- --nocapture
run tokenizer-test cargo test -p llm-resilience --features tiktoken --lib -- tokens:: context::
run fuzz-build cargo build -q -p llm-resilience-fuzz
run c bash ffi/tests/c/run.sh
run go bash ffi/go/test.sh
run go-worker bash examples/go-worker/test.sh
run python bash examples/python-host/test.sh
run js bash examples/js-host/test.sh

step "AI worker scenarios against the embedded failing OpenRouter (ours beside naive)"
workers=$(grep -h -E '^\[(rust|go)-worker\] .*jobs' "$logs"/cargo-test.log "$logs"/go-worker.log | sort)
echo "$workers"
for worker in rust go; do
  grep -q "^\[$worker-worker\] " <<<"$workers" || { echo "FAILED: no scenario outcome from the $worker worker" >&2; exit 1; }
done

step "conformance vectors, per surface"
summary=$(grep -h -o -E '\[[a-z]+\] [a-z]+ vectors: [0-9]+ passed, [0-9]+ failed' "$logs"/*.log | sort -u)
echo "$summary"
for surface in core c go wasmtime python js; do
  grep -q "^\[$surface\] " <<<"$summary" || { echo "FAILED: no vector count from $surface" >&2; exit 1; }
done
awk '{p += $(NF-3); f += $(NF-1)} END {printf "vectors: %d passed, %d failed\n", p, f}' <<<"$summary"
