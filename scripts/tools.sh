#!/usr/bin/env bash
# Builds the lab's peer programs that come from the Go module proxy, at pinned
# versions, into a cache that later runs reuse:
#   headscale    the coordination server         github.com/juanfont/headscale  v0.29.2
#   tailscaled   a team member's Tailscale client tailscale.com                 v1.102.5 (what the box embeds)
#   tailscale    its command-line tool           tailscale.com                 v1.102.5
#   versitygw    an S3-compatible server         github.com/versity/versitygw  v1.8.0 (backups)
# Idempotent: a tool already built at its version is left alone.
#   scripts/tools.sh          build what is missing, print the directory
set -euo pipefail
cd "$(dirname "$0")/.."

HEADSCALE_VERSION=v0.29.2
TAILSCALE_VERSION=v1.102.5
VERSITY_VERSION=v1.8.0
dir="${REDOUBT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/redoubt/tools}"
mkdir -p "$dir"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

build_headscale() {
  local out="$dir/headscale-$HEADSCALE_VERSION"
  [ -x "$out" ] && return 0
  echo "tools: building headscale $HEADSCALE_VERSION (a few minutes, once)" >&2
  local mod
  mod=$(mktemp -d)
  trap 'rm -rf "$mod"' RETURN
  (cd "$mod" &&
    printf 'module redoubt.tools/headscale\n\ngo 1.26\n' > go.mod &&
    printf 'package tools\n\nimport _ "github.com/juanfont/headscale/cmd/headscale"\n' > tools.go &&
    go get "github.com/juanfont/headscale@$HEADSCALE_VERSION" >/dev/null 2>&1 &&
    go build -trimpath -o "$out.tmp" github.com/juanfont/headscale/cmd/headscale) &&
  mv "$out.tmp" "$out"
}

build_tailscale() {
  local out="$dir/tailscale-$TAILSCALE_VERSION"
  [ -x "$out/tailscaled" ] && [ -x "$out/tailscale" ] && return 0
  echo "tools: building tailscaled and tailscale $TAILSCALE_VERSION (a minute or two, once)" >&2
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath "tailscale.com/cmd/tailscaled@$TAILSCALE_VERSION" "tailscale.com/cmd/tailscale@$TAILSCALE_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_versitygw() {
  local out="$dir/versitygw-$VERSITY_VERSION"
  [ -x "$out" ] && return 0
  echo "tools: building versitygw $VERSITY_VERSION (a minute or two, once)" >&2
  local mod
  mod=$(mktemp -d)
  trap 'rm -rf "$mod"' RETURN
  (cd "$mod" &&
    printf 'module redoubt.tools/versitygw\n\ngo 1.26\n' > go.mod &&
    printf 'package tools\n\nimport _ "github.com/versity/versitygw/cmd/versitygw"\n' > tools.go &&
    go get "github.com/versity/versitygw@$VERSITY_VERSION" >/dev/null 2>&1 &&
    go build -trimpath -o "$out.tmp" github.com/versity/versitygw/cmd/versitygw) &&
  mv "$out.tmp" "$out"
}

build_headscale
build_tailscale
build_versitygw
ln -sfn "headscale-$HEADSCALE_VERSION" "$dir/headscale"
ln -sfn "tailscale-$TAILSCALE_VERSION" "$dir/tailscale"
echo "$dir"
