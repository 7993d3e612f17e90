#!/usr/bin/env bash
# Runs every test in its own process with a timeout and prints `N passed, N failed` last.
# Unit test binaries and integration scripts report one line per case: `PASS: name` or
# `FAIL: name`. A program that reports none counts as one case, judged by its exit status.
set -uo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CODEBOT_BIN=$root/$build/codebot
export CODEBOT_VAR=$root/var/test-$build
export REDIS_TAG=test-$build
mkdir -p "$CODEBOT_VAR"
REDIS_URL=$(scripts/redis.sh start) || exit 1
export REDIS_URL
export CODEBOT_SANDBOX_SOCKET=$CODEBOT_VAR/sandboxd.sock
log=$CODEBOT_VAR/test-log
: >"$log"
passed=0 failed=0 failures=()
timeout_s=${CODEBOT_TEST_TIMEOUT:-300}
[ -n "${CODEBOT_ASAN:-}" ] && timeout_s=$((timeout_s * 2))
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
    local name=$1; shift
    local out rc
    out=$(timeout -k 5 "$timeout_s" "$@" 2>&1); rc=$?
    printf '=== %s (exit %d)\n%s\n' "$name" "$rc" "$out" >>"$log"
    local p f
    p=$(grep -c '^PASS: ' <<<"$out"); f=$(grep -c '^FAIL: ' <<<"$out")
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        if [ $rc -eq 0 ]; then p=1; else f=1; fi
    elif [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # crashed or timed out after its last report
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        failures+=("$name")
        echo "FAIL $name (exit $rc)"
        grep -E '^FAIL: ' <<<"$out" | sed 's/^/    /'
        [ $rc -eq 124 ] && echo "    timed out after ${timeout_s}s"
        tail -n 15 <<<"$out" | sed 's/^/    | /'
    else
        echo "ok   $name ($p)"
    fi
}

for t in "$build"/tests/unit/test_*; do
    [ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
# Debian's python3: the fakes need its python3-aiohttp, whatever python3 PATH finds first.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
for t in tests/integration/test_*; do
    case "$t" in
    *.py) run_one "integration/$(basename "$t")" "$py" "$t" ;;
    *.sh) run_one "integration/$(basename "$t")" bash "$t" ;;
    esac
done
"$CODEBOT_BIN" sandbox shutdown >/dev/null 2>&1 || true
echo "log: $log"
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
