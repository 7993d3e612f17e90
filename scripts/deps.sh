#!/usr/bin/env bash
# Installs the Debian packages codebot needs to build, run and test, when any is missing.
# apt-get as root, through sudo otherwise; one clear message when neither can be used.
set -euo pipefail
pkgs=(build-essential pkg-config libuv1-dev libcurl4-openssl-dev libcjson-dev libhiredis-dev
      libseccomp-dev libwebsockets-dev redis-server python3 python3-numpy python3-pandas
      python3-matplotlib python3-websockets python3-aiohttp valgrind)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root or with passwordless sudo, or install them yourself:" >&2
    echo "      apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
