#!/usr/bin/env bash
# Runs a command as root: directly when we are root, through sudo otherwise.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then exec "$@"; fi
command -v sudo >/dev/null || { echo "this needs root (network namespaces): run it as root" >&2; exit 1; }
exec sudo --preserve-env=PATH,GOPATH,GOCACHE,GOMODCACHE,HOME "$@"
