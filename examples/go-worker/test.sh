#!/usr/bin/env bash
# Builds what the Go worker needs (the ffi static library and the mock binary, release, in the
# repository's default target dir: the cgo package links target/release/libllm_resilience_ffi.a
# by path), then vets and tests the worker with the race detector. The scenario tests start
# the mock themselves; each prints one "[go-worker] …" line, shown here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ -n "${CARGO_TARGET_DIR:-}" && "$CARGO_TARGET_DIR" != "$root/target" ]]; then
    echo "[go-worker] note: CARGO_TARGET_DIR is ignored here; the cgo package links $root/target/release" >&2
fi
cd "$root"
echo "[go-worker] cargo build --release -p llm-resilience-ffi -p mock-openrouter"
CARGO_TARGET_DIR="$root/target" cargo build --release -q -p llm-resilience-ffi -p mock-openrouter
export GOWORK=off GOFLAGS=-mod=mod
export LLMR_MOCK_BIN="${LLMR_MOCK_BIN:-$root/target/release/mock-openrouter}"
cd "$here"
echo "[go-worker] go vet ./..."
go vet ./...
echo "[go-worker] go test -race -count=1 ./..."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
go test -race -count=1 -timeout 300s -v ./... >"$log" 2>&1 || status=$?
grep -E '^\[go-worker\]' "$log" || true
if [[ $status -ne 0 ]]; then
    grep -vE '^(=== (RUN|PAUSE|CONT)|\[go-worker\])' "$log" | grep -E -- '--- FAIL|_test.go:[0-9]+:|^(FAIL|panic)|^\s+' | head -80 >&2 || true
    echo "[go-worker] FAILED" >&2
    exit "$status"
fi
grep -E '^(ok|---.*FAIL)' "$log"
echo "[go-worker] $(grep -c -- '^--- PASS' "$log") tests passed"
