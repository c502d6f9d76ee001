#!/usr/bin/env bash
# Runs the Python host's tests: the unit tests and every classify vector, through the component.
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
python3 -m pytest -q
