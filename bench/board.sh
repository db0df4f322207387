#!/usr/bin/env bash
# The board: image sizes (make image), and from the x86-64 image booted in QEMU
# between the lab's laptop and home router (integration/board): power-on to the
# laptop's DHCP lease, an update's apply + trial boot + keep, idle memory.
# Prints a Markdown section for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s image >/dev/null
echo "## The board: image, boot, update, memory"
echo
echo "$(uname -m), $(nproc) cores, $(date -u +%Y-%m-%d). \`make image\` at $(git rev-parse --short HEAD); QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), OVMF."
echo
echo "| image | file | root (squashfs) | gzip -1 |"
echo "| --- | --- | --- | --- |"
for img in out/image/redoubt-*.img; do
  size=$(stat -c %s "$img")
  gz=$(gzip -1 -c "$img" | wc -c)
  root=$(go run ./cmd/redoubt-image inspect "$img" | awk '/^  2 /{print $6}')
  printf '| %s | %.1f MiB | %.1f MiB (partition) | %.1f MiB |\n' "$(basename "$img")" "$(echo "$size/1048576" | bc -l)" "$(echo "$root/1048576" | bc -l)" "$(echo "$gz/1048576" | bc -l)"
done
for u in out/image/redoubt-*.rdu; do
  printf '| %s (update) | %.1f MiB | | |\n' "$(basename "$u")" "$(echo "$(stat -c %s "$u")/1048576" | bc -l)"
done
echo
log=$(mktemp)
(cd integration/board && go test -count=1 -v -timeout 14m -run TestImageInQEMU . >"$log" 2>&1) || { tail -40 "$log"; exit 1; }
grep -oE 'QEMU with [a-z]+' "$log" | head -1
grep -oE 'waiting for setup [0-9.]+s after power-on|lease [0-9./]+ [0-9.]+s after power-on|update applied and kept in [0-9.]+s \(.*\)|idle resident memory: .*' "$log" | sed 's/^/* /'
rm -f "$log"
