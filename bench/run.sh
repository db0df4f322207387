#!/usr/bin/env bash
# make bench: every comparison, each measured side by side in one run against the
# usual tool for the job (the kernel, dnsmasq, …). Each bench/*.sh script prints a
# Markdown section; copy the sections into bench/RESULTS.md with the machine and date.
#
#   bench/run.sh              all of them
#   bench/run.sh netstack     only bench/netstack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export REDOUBT_BIN="${REDOUBT_BIN:-$PWD/bin/redoubt}"
echo "# Run on $(hostname), $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d)"
for s in bench/*.sh; do
  name=$(basename "$s" .sh)
  [ "$name" = run ] && continue
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  echo
  bash "$s"
done
