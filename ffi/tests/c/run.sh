#!/usr/bin/env bash
# Builds ffi/tests/c/classify_vectors.c (then ratelimit_vectors.c, retry_vectors.c,
# breaker_vectors.c, context_vectors.c and credits_vectors.c) against
# the static library and runs each twice:
#   1. compiled with -fsanitize=address,undefined (leaks included),
#   2. compiled plainly and run under valgrind --leak-check=full.
# Fails on any vector failure, abuse-case failure, sanitizer report or valgrind error/leak.
#
# Needs gcc, valgrind and cJSON (Debian: apt-get install -y libcjson-dev).
# LLMR_PROFILE=debug links target/debug instead of target/release (default: release).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root" || exit 2
profile="${LLMR_PROFILE:-release}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
vectors="${LLMR_VECTORS_DIR:-$root/tests/vectors}"

if [[ "$profile" == release ]]; then
    cargo build --release -p llm-resilience-ffi || exit 2
else
    cargo build -p llm-resilience-ffi || exit 2
fi
lib="$target_dir/$profile/libllm_resilience_ffi.a"
[[ -f "$lib" ]] || { echo "[c] missing $lib" >&2; exit 2; }

build="$root/ffi/tests/c/build"
mkdir -p "$build"
src="$root/ffi/tests/c/classify_vectors.c"
cjson_cflags="$(pkg-config --cflags libcjson 2>/dev/null || true)"
cjson_libs="$(pkg-config --libs libcjson 2>/dev/null || echo -lcjson)"
common=(-std=c11 -Wall -Wextra -Werror -g -I"$root/ffi/include" $cjson_cflags)
link=("$lib" $cjson_libs -ldl -lpthread -lm)

status=0
gcc "${common[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=all "$src" -o "$build/classify_vectors_asan" "${link[@]}" || exit 2
gcc "${common[@]}" -O1 "$src" -o "$build/classify_vectors" "${link[@]}" || exit 2

echo "[c] run 1: AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1:exitcode=98 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/classify_vectors_asan" "$vectors"
rc=$?
case $rc in
    0) echo "[c] sanitizers: clean" ;;
    1) echo "[c] sanitizers: clean (vector or abuse failures above)"; status=1 ;;
    *) echo "[c] sanitizers: ERRORS (exit $rc)"; status=1 ;;
esac

echo "[c] run 2: valgrind --leak-check=full"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
    "$build/classify_vectors" "$vectors" >"$build/valgrind.out" 2>&1
rc=$?
grep -v '^\[c\] FAIL' "$build/valgrind.out" | grep -v '^\[c\] skip' || true
case $rc in
    0) echo "[c] valgrind: clean" ;;
    1) echo "[c] valgrind: clean (vector or abuse failures above)"; status=1 ;;
    *) echo "[c] valgrind: ERRORS (exit $rc)"; status=1 ;;
esac

# The rate limiter, retry, breaker, context and credits vectors
# (tests/vectors/{ratelimit,retry,breaker,context,credits}.json): the same two runs for each
# program.
for prog in ratelimit_vectors retry_vectors breaker_vectors context_vectors credits_vectors; do
    gcc "${common[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
        -fno-sanitize-recover=all "$root/ffi/tests/c/$prog.c" -o "$build/${prog}_asan" \
        "${link[@]}" || exit 2
    gcc "${common[@]}" -O1 "$root/ffi/tests/c/$prog.c" -o "$build/$prog" "${link[@]}" || exit 2
    echo "[c] $prog run 1: AddressSanitizer + UndefinedBehaviorSanitizer"
    ASAN_OPTIONS=detect_leaks=1:exitcode=98 UBSAN_OPTIONS=print_stacktrace=1 \
        "$build/${prog}_asan" "$vectors"
    rc=$?
    case $rc in
        0) echo "[c] $prog sanitizers: clean" ;;
        1) echo "[c] $prog sanitizers: clean (vector or abuse failures above)"; status=1 ;;
        *) echo "[c] $prog sanitizers: ERRORS (exit $rc)"; status=1 ;;
    esac
    echo "[c] $prog run 2: valgrind --leak-check=full"
    # valgrind.supp: std's one-time handle of the main thread (see the file).
    valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
        --suppressions="$root/ffi/tests/c/valgrind.supp" \
        "$build/$prog" "$vectors" >"$build/$prog.valgrind.out" 2>&1
    rc=$?
    grep -v '^\[c\] FAIL' "$build/$prog.valgrind.out" || true
    case $rc in
        0) echo "[c] $prog valgrind: clean" ;;
        1) echo "[c] $prog valgrind: clean (vector or abuse failures above)"; status=1 ;;
        *) echo "[c] $prog valgrind: ERRORS (exit $rc)"; status=1 ;;
    esac
done
exit $status
