#!/usr/bin/env bash
# `make bench`: the benchmarks, printing figures, medians and ratios. Targets are checked
# here, never in timed tests.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CODEBOT_BIN=$root/$build/codebot
export CODEBOT_VAR=$root/var/bench
export REDIS_TAG=bench
mkdir -p "$CODEBOT_VAR"
REDIS_URL=$(scripts/redis.sh start)
export REDIS_URL
export CODEBOT_SANDBOX_SOCKET=$CODEBOT_VAR/sandboxd.sock
trap '"$CODEBOT_BIN" sandbox shutdown >/dev/null 2>&1 || true' EXIT
for b in bench/bench_*.py; do
    echo "== $b"
    /usr/bin/python3 "$b"
done
