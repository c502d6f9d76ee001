#!/usr/bin/env bash
# Installs what a fresh machine lacks for the demo and the tests; quick when all is there.
# Rust targets, cbindgen (pinned), cJSON + valgrind (Debian), the Python and npm packages.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

shared="$root/../shared"
if [ -x "$shared/tools/ensure-wasm-target" ]; then
  "$shared/tools/ensure-wasm-target" wasm32-unknown-unknown
else
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" ||
    rustup component add "$component"
done
if ! cbindgen --version 2>/dev/null | grep -q '0.29.4'; then
  cargo install cbindgen --version 0.29.4 --locked
fi
need_apt=()
for pkg in libcjson-dev valgrind pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r examples/python-host/requirements.txt \
  2>&1 | grep -v -i 'running pip as the' || true
(cd examples/js-host && npm ci --no-audit --no-fund --loglevel=error)
echo "setup: done"
