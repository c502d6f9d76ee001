#!/usr/bin/env bash
# Runs the JS host's tests: transpile the component with jco, then `node --test` (unit tests,
# every classify vector, every breaker/ratelimit/retry/credits step table, every context vector).
# Ends with one line per vector family: `[js] <family> vectors: N passed, M failed`.
#
# The component is target/llm-resilience.wasm (or $LLMR_COMPONENT); it is built here only when
# missing. After changing the core, rebuild it: cargo run -p xtask -- component
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

if [[ -z "${LLMR_COMPONENT:-}" && ! -f "$root/target/llm-resilience.wasm" ]]; then
    (cd "$root" && cargo run --quiet -p xtask -- component)
fi

npm ci --no-audit --no-fund --loglevel=error >/dev/null
npm run --silent build

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
node --test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The vector files print their summaries when they end, which the runner shows among the TAP
# output; repeat them as the last lines.
for family in classify breaker ratelimit retry context credits; do
    line="$(grep -o -E "\[js\] $family vectors: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?" "$log" | tail -n 1)"
    echo "${line:-[js] $family vectors: no summary printed}"
done
exit "$status"
