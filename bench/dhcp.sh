#!/usr/bin/env bash
# Redoubt's DHCP server against dnsmasq, in the same lab topology and the same run:
# leases per second and drop rate under perfdhcp from the laptop's namespace, and
# the time from the laptop's link coming up to a bound lease with udhcpc and
# dhclient. Prints a Markdown section for bench/RESULTS.md. Needs root.
#   ROUNDS=3 PERIOD=5 bench/dhcp.sh     (about 5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
export REDOUBT_BIN="${REDOUBT_BIN:-$PWD/bin/redoubt}"
exe=$(mktemp)
trap 'rm -f "$exe"' EXIT
go build -o "$exe" ./bench/dhcpbench
"$exe" -rounds "${ROUNDS:-3}" -period "${PERIOD:-5}" ${DHCPBENCH_FLAGS:-}
