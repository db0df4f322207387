#!/usr/bin/env bash
# A team member's download from the box over the tailnet against the plain routed
# path, same lab, same run: the teammate (tailscaled v1.102.5, userspace
# networking, behind its own NAT) fetches the members' page's connection check
# (64 MiB over HTTPS) from the box relayed over the lab's DERP through the box's
# VPN (strict mode, the default), then with direct paths allowed (strict = false,
# the box restarted), and the same handler served by the kernel on the lab's
# internet without a tailnet. Also: the time from the enrollment script's start
# to the member's first fetch of the box's page. Prints a Markdown section for
# bench/RESULTS.md.
#   ROUNDS=3 bench/mesh.sh      (each round downloads 3 × 64 MiB per path)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# One lab per round: each sets a new box up and enrolls the member afresh.
for _ in $(seq "$rounds"); do
  go test ./integration/mesh -run '^$' -bench 'TeammateDownload' -benchtime 3x -count 1 -timeout 30m >>"$out" 2>&1 || { cat "$out"; exit 1; }
done

# median METRIC SUB: the median across rounds of a metric of a sub-benchmark.
median() {
  grep -E "^BenchmarkTeammateDownload/$2-" "$out" | awk -v m="$1" '{for(i=1;i<=NF;i++) if($(i)==m) print $(i-1)}' | sort -g |
    awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
echo "## The team mesh: a member's download from the box"
echo
echo "Median of $rounds rounds, each downloading 3 × 64 MiB per path with curl in the teammate (\`bench/mesh.sh\`)."
echo "The tailnet's downloads go through the teammate's tailscaled (its SOCKS5 proxy) to the box's members' page over HTTPS."
echo
echo "| path | MB/s | vs routed | DERP drops per MB |"
echo "| --- | --- | --- | --- |"
r=$(median MB/s routed)
for p in routed tailnet-strict tailnet-direct; do
  case $p in
    routed) label="plain routed path, kernel server on the lab's internet (no tailnet, no VPN)" ;;
    tailnet-strict) label="tailnet, strict mode: DERP inside the box's VPN (default)" ;;
    tailnet-direct) label="tailnet, direct paths allowed (strict = false)" ;;
  esac
  v=$(median MB/s "$p")
  d="–"
  [ "$p" != routed ] && d=$(median relay-drops/MB "$p")
  awk -v l="$label" -v v="$v" -v r="$r" -v d="$d" 'BEGIN { printf "| %s | %.1f | %.3f | %s |\n", l, v, (r>0 ? v/r : 0), d }'
done
echo
awk -v s="$(median direct tailnet-strict)" -v d="$(median direct tailnet-direct)" \
  'BEGIN { printf "Path the teammate found (tailscale ping): strict %s, direct-paths mode %s.\n", (s>0.5 ? "direct" : "DERP"), (d>0.5 ? "direct" : "DERP") }'
awk -v e="$(median s-script-to-page enrollment)" -v j="$(median s-box-joins enrollment)" \
  'BEGIN { printf "\nEnrollment: %.1f s from running the member'"'"'s script to their first fetch of the box'"'"'s page; the box'"'"'s own node is up in the tailnet %.1f s after the owner finishes setup.\n", e, j }'
