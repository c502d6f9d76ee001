#!/usr/bin/env bash
# Fails (with a diff) when ffi/include/llm_resilience.h differs from what cbindgen generates
# from the current source. Needs cbindgen 0.29.4:
#   cargo install cbindgen --version 0.29.4 --locked
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
want="0.29.4"
have="$(cbindgen --version | awk '{print $2}')"
if [[ "$have" != "$want" ]]; then
    echo "check-header: cbindgen $want required, found $have" >&2
    exit 2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The same command that produced the committed header, only the output path differs.
cbindgen --config ffi/cbindgen.toml --crate llm-resilience-ffi --output "$tmp/llm_resilience.h" \
    2>"$tmp/cbindgen.log" || { cat "$tmp/cbindgen.log" >&2; exit 1; }
if ! diff -u ffi/include/llm_resilience.h "$tmp/llm_resilience.h"; then
    echo "check-header: ffi/include/llm_resilience.h is stale; regenerate it with:" >&2
    echo "  cbindgen --config ffi/cbindgen.toml --crate llm-resilience-ffi --output ffi/include/llm_resilience.h" >&2
    exit 1
fi
echo "check-header: ffi/include/llm_resilience.h is up to date"
