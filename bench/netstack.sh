#!/usr/bin/env bash
# The LAN port's netstack against the kernel on the same veth pair, same run: TCP
# throughput laptop → box (upload) and box → laptop (download), and the idle memory
# of `redoubt serve`. Prints a Markdown section for bench/RESULTS.md.
#   ROUNDS=3 bench/netstack.sh     (each round moves 10 × 32 MiB per direction and path)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test ./integration/bench -run '^$' -bench 'TCP|IdleRSS' -benchtime 10x -count "$rounds" >"$out" 2>&1 || { cat "$out"; exit 1; }

# Median MB/s of a sub-benchmark across rounds.
median() {
  grep -E "^BenchmarkTCP/$1-" "$out" | awk '{for(i=1;i<=NF;i++) if($(i)=="MB/s") print $(i-1)}' | sort -n |
    awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
echo "## LAN netstack vs the kernel, TCP on the same veth pair"
echo
echo "Median of $rounds rounds, each moving 10 × 32 MiB over one connection (\`bench/netstack.sh\`)."
echo
echo "| direction | netstack MB/s | kernel MB/s | ratio |"
echo "| --- | --- | --- | --- |"
for d in download upload; do
  n=$(median "$d/netstack"); k=$(median "$d/kernel")
  awk -v d="$d" -v n="$n" -v k="$k" 'BEGIN { printf "| %s (%s) | %.0f | %.0f | %.2f |\n", d, (d=="download" ? "box → laptop" : "laptop → box"), n, k, (k>0 ? n/k : 0) }'
done
rss=$(grep -E '^BenchmarkIdleRSS' "$out" | awk '{for(i=1;i<=NF;i++) if($(i)=="MiB-rss") print $(i-1)}' | sort -n | head -1)
echo
echo "Idle RSS of \`redoubt serve\` after 3 s: ${rss} MiB."
