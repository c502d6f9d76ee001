#!/usr/bin/env bash
# Writes llm-resilience.pc for an install prefix, for the llmr_pkgconfig build tag.
#
#   ffi/go/gen-pkgconfig.sh PREFIX [OUTPUT]
#
# PREFIX is where the library and header are installed:
#   PREFIX/lib/libllm_resilience_ffi.a and PREFIX/include/llm_resilience.h
# OUTPUT defaults to PREFIX/lib/pkgconfig/llm-resilience.pc. The library is named by full path
# in Libs (not -L/-l), so a libllm_resilience_ffi.so next to it is never picked instead.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 PREFIX [OUTPUT]" >&2
    exit 2
fi
prefix="$(cd "$1" && pwd)"
out="${2:-$prefix/lib/pkgconfig/llm-resilience.pc}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
mkdir -p "$(dirname "$out")"
cat >"$out" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: llm-resilience
Description: C ABI of llm-resilience: error classification for LLM API calls
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libllm_resilience_ffi.a -ldl -lpthread -lm
PC
echo "$out"
