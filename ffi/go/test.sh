#!/usr/bin/env bash
# The Go package's checks: builds the release static library, then go vet, go test -race
# (which prints "[go] classify vectors: N passed, M failed"), a GC-stress run (build tag
# llmr_debug with GOGC=1) and the out-of-repository build (test-external.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
(cd "$root" && cargo build --release -p llm-resilience-ffi)
cd "$here"
export GOWORK=off GOFLAGS=-mod=mod
echo "[go] go vet ./..."
go vet ./...
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# -v so that the vector summary of a passing run is shown; only the summary lines, failures
# and the package results are printed (the whole log on failure).
run_tests() {
    if ! "$@" -v ./... >"$log" 2>&1; then
        cat "$log"
        return 1
    fi
    grep -E '^\[go\]|^--- FAIL|^(ok|FAIL)[[:space:]]' "$log"
}
echo "[go] go test -race -count=1 ./..."
run_tests go test -race -count=1
echo "[go] GOGC=1 go test -tags llmr_debug -count=1 ./... (GC before every C call)"
GOGC=1 run_tests go test -tags llmr_debug -count=1
echo "[go] go test -bench . -benchtime 1x ./... (every benchmark once: they check their results)"
if ! go test -run '^$' -bench . -benchtime 1x -count=1 ./... >"$log" 2>&1; then
    cat "$log"
    exit 1
fi
echo "[go] breaker benchmarks, short run (ratios in BENCHMARKS.md): -bench 'Breaker|CgoNoop|Gobreaker' -benchtime 200ms"
if ! go test -run '^$' -bench 'Breaker|CgoNoop|Gobreaker' -benchmem -benchtime 200ms -count=1 . >"$log" 2>&1; then
    cat "$log"
    exit 1
fi
grep -E '^Benchmark' "$log"
echo "[go] test-external.sh"
"$here/test-external.sh"
