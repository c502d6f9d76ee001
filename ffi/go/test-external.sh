#!/usr/bin/env bash
# Proves the package works from a Go module outside this repository:
#   1. a replace directive pointing at this checkout (default cgo flags, static lib by path);
#   2. the llmr_pkgconfig build tag, with the library and header "installed" into a prefix and
#      llm-resilience.pc written by gen-pkgconfig.sh.
# Each builds and runs a small program that classifies a response and a transport error.
# Needs the release library: cargo build --release -p llm-resilience-ffi
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="${CARGO_TARGET_DIR:-$root/target}/release/libllm_resilience_ffi.a"
[[ -f "$lib" ]] || { echo "[go-external] missing $lib (cargo build --release -p llm-resilience-ffi)" >&2; exit 2; }
if [[ -n "${CARGO_TARGET_DIR:-}" && "$CARGO_TARGET_DIR" != "$root/target" ]]; then
    echo "[go-external] note: the default cgo flags link $root/target/release; CARGO_TARGET_DIR is only used for the pkg-config run" >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
app="$tmp/app"
mkdir -p "$app"
cat >"$app/go.mod" <<MOD
module example.com/llmr-external

go 1.22

require github.com/llm-resilience/llm-resilience/ffi/go v0.0.0

replace github.com/llm-resilience/llm-resilience/ffi/go => $here
MOD
cat >"$app/main.go" <<'GO'
package main

import (
	"fmt"
	"net/http"
	"os"

	llmr "github.com/llm-resilience/llm-resilience/ffi/go"
)

func main() {
	resp := &http.Response{StatusCode: 529, Header: http.Header{}}
	body := []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	c := llmr.Classify(resp, body)
	fmt.Printf("llm-resilience %s: %v\n", llmr.Version(), c)
	_, err := http.Get("http://127.0.0.1:1/")
	t := llmr.ClassifyTransport(err)
	fmt.Printf("transport: %v\n", t)
	if c.Kind != llmr.KindOverloaded || t.Kind != llmr.KindNetwork {
		os.Exit(1)
	}
}
GO

export GOWORK=off GOFLAGS=-mod=mod GOPROXY=off
cd "$app"
echo "[go-external] replace directive -> $here"
go build -o "$tmp/app-replace" .
"$tmp/app-replace"

echo "[go-external] build tag llmr_pkgconfig, pkg-config llm-resilience"
# A fixed prefix, as a real install has. The go build cache does not key packages on
# pkg-config's output, so a cached build would keep linking the library path of an earlier run;
# the prefix's checksum in CGO_CFLAGS makes a different prefix a different build.
prefix="${CARGO_TARGET_DIR:-$root/target}/llmr-pkgconfig-prefix"
salt="$(printf '%s' "$prefix" | cksum | cut -d' ' -f1)"
rm -rf "$prefix"
mkdir -p "$prefix/lib" "$prefix/include"
cp "$lib" "$prefix/lib/"
cp "$root/ffi/include/llm_resilience.h" "$prefix/include/"
"$here/gen-pkgconfig.sh" "$prefix" >/dev/null
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs llm-resilience
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CGO_CFLAGS="-O2 -g -DLLMR_PREFIX_SALT=$salt" \
    go build -tags llmr_pkgconfig -o "$tmp/app-pkgconfig" .
"$tmp/app-pkgconfig"
echo "[go-external] ok"
