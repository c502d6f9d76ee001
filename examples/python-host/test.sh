#!/usr/bin/env bash
# Runs the Python host's tests: the unit tests, every classify vector, every step-table vector
# (breaker, ratelimit, retry, credits) and every context vector, through the component. Ends with
# one line per vector family: `[python] <family> vectors: N passed, M failed`.
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

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
python3 -m pytest -q 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# pytest prints the summary lines before its own last line; repeat them at the very end.
for family in classify breaker ratelimit retry context credits; do
    line="$(grep -o -E "\[python\] $family vectors: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?" "$log" | tail -n 1)"
    echo "${line:-[python] $family vectors: no summary printed}"
done
exit "$status"
