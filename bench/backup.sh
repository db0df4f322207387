#!/usr/bin/env bash
# Backups: the box against Debian's restic, same data, same S3 server
# (versitygw on the lab's internet), same run. The box backs up through its VPN
# (its own process: the backup engine and wireguard-go); restic runs in the VPN
# provider's namespace, straight to the server (it cannot use the box's tunnel).
# Phases: a first backup of mixed data, an incremental one after 1 % of the bytes
# changed, a restore. Prints a Markdown section for bench/RESULTS.md.
#   MB=1024 ROUNDS=1 bench/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mb="${MB:-1024}"
rounds="${ROUNDS:-1}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$rounds"); do
  REDOUBT_BENCH_MB="$mb" go test ./integration/backup -run '^$' -bench 'BackupVsRestic' -benchtime 1x -count 1 -timeout 60m >>"$out" 2>&1 || { cat "$out"; exit 1; }
done
median() { # median METRIC SUB
  grep -E "^BenchmarkBackupVsRestic/$2-" "$out" | awk -v m="$1" '{for(i=1;i<=NF;i++) if($(i)==m) print $(i-1)}' | sort -g |
    awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
echo "## Backups: the box against restic"
echo
echo "$mb MiB of mixed data (35 % random like photos and video, 35 % text, 15 % copies, 15 % small files), median of $rounds round(s) (\`bench/backup.sh\`)."
echo "The box: \`redoubt backup now --wait\` (engine and VPN in its process; verification of the new packs included) through its VPN to versitygw over HTTPS."
echo "restic $(restic version | awk '{print $2}') (Debian): from the VPN provider's namespace straight to the same server over HTTPS. CPU is the box's whole process, restic's own."
echo
echo "| phase | redoubt MB/s | restic MB/s | ratio | redoubt CPU-s/GB | restic CPU-s/GB |"
echo "| --- | --- | --- | --- | --- | --- |"
for p in first incremental restore; do
  awk -v p="$p" -v a="$(median MB/s "$p/redoubt")" -v b="$(median MB/s "$p/restic")" -v c="$(median CPU-s/GB "$p/redoubt")" -v d="$(median CPU-s/GB "$p/restic")" \
    'BEGIN { printf "| %s | %.1f | %.1f | %.2f | %.1f | %.1f |\n", p, a, b, (b>0 ? a/b : 0), c, d }'
done
echo
awk -v a="$(median redoubt-MB stored)" -v b="$(median restic-MB stored)" -v d="$(median data-MB stored)" \
  'BEGIN { printf "Stored after both backups: redoubt %.0f MiB, restic %.0f MiB, for %.0f MiB of data.\n", a, b, d }'
