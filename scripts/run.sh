#!/usr/bin/env bash
# `make run`: a private Redis unless REDIS_URL is set, then the console assistant.
set -euo pipefail
if [ -z "${REDIS_URL:-}" ]; then
    REDIS_URL=$(scripts/redis.sh start)
    export REDIS_URL
fi
exec build/codebot console
