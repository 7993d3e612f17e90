#!/usr/bin/env bash
# Starts (or stops) a private redis-server on a unix socket under var/, for `make run` and
# `make test` when REDIS_URL is not set. Prints the URL to use.
set -euo pipefail
dir=${CODEBOT_VAR:-$PWD/var}/redis${REDIS_TAG:+-$REDIS_TAG}
sock=$dir/redis.sock
case "${1:-start}" in
start)
    mkdir -p "$dir"
    if ! redis-cli -s "$sock" ping >/dev/null 2>&1; then
        redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir" \
            --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --save 60 1 --appendonly no >/dev/null
        for _ in $(seq 100); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
    fi
    redis-cli -s "$sock" ping >/dev/null || { echo "redis: could not start, see $dir/redis.log" >&2; exit 1; }
    echo "unix://$sock"
    ;;
stop)
    redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1 || true
    ;;
esac
