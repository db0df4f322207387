#!/usr/bin/env bash
# The box's resolver against dnsmasq doing the same job, same lab, same veth pair,
# same run: each round runs `redoubt serve` then dnsmasq (with the box's address on
# the LAN port, the netstack stopped), both authoritative for the box's names and
# answering NXDOMAIN to everything else, and dnsperf from the laptop against each:
# queries/s with 100 outstanding, CPU per query, latency p50/p99 at a fixed
# 10 000 and 1 000 queries/s; then a flood (10 clients × 5 000 outstanding, 100 000 distinct
# names, 4 × the run length) for each, reporting RSS halfway, at the end and at
# its peak. Prints a Markdown section for
# bench/RESULTS.md.
#   ROUNDS=5 SECONDS_PER_RUN=5 bench/dns.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
export DNS_BENCH_SECONDS="${SECONDS_PER_RUN:-5}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# One round per -count: each runs Redoubt, then dnsmasq.
go test ./integration/dns -run '^$' -bench 'DNSPerf|DNSFlood' -benchtime 1x -count "$rounds" -timeout 60m -v >"$out" 2>&1 ||
  { cat "$out"; exit 1; }

# metric BENCH NAME: the median over the rounds of the value reported before unit
# NAME on BENCH's result lines (for peaks: the largest, with max).
metric() {
  grep -E "^Benchmark$1-[0-9]+ " "$out" | awk -v m="$2" '{for(i=1;i<=NF;i++) if($(i)==m) print $(i-1)}' | sort -g |
    awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
maxmetric() {
  grep -E "^Benchmark$1-[0-9]+ " "$out" | awk -v m="$2" '{for(i=1;i<=NF;i++) if($(i)==m) print $(i-1)}' | sort -g | tail -1
}
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "## DNS: Redoubt's resolver vs dnsmasq"
echo
echo "Same lab, same veth pair, same run: $rounds round(s), each running \`redoubt serve\`"
echo "and then dnsmasq $(dnsmasq --version | head -1 | awk '{print $3}') on the box's LAN address, with dnsperf"
echo "$(dnsperf -h 2>&1 | awk '/^Version/ {print $2}') in the laptop's namespace (\`bench/dns.sh\`, ${DNS_BENCH_SECONDS} s per run)."
echo "The mix: half the box's names (A, AAAA, PTR), half names it stops (A, AAAA, HTTPS over"
echo "8 000 distinct names); both servers gave the same answers (checked). Medians over the"
echo "rounds (latency: the median of each round's percentile); peak RSS: the largest."
echo "Load average when done: $load (the machine is shared: latency tails move with it)."
echo
echo "| | Redoubt | dnsmasq | ratio |"
echo "| --- | --- | --- | --- |"
rq=$(metric DNSPerf redoubt-qps); dq=$(metric DNSPerf dnsmasq-qps)
awk -v r="$rq" -v d="$dq" 'BEGIN { printf "| queries/s, 100 outstanding | %.0f | %.0f | %.2f |\n", r, d, (d>0 ? r/d : 0) }'
rc=$(metric DNSPerf redoubt-cpu-µs/query); dc=$(metric DNSPerf dnsmasq-cpu-µs/query)
awk -v r="$rc" -v d="$dc" 'BEGIN { printf "| server CPU per query | %.1f µs | %.1f µs | %.2f |\n", r, d, (d>0 ? r/d : 0) }'
for rate in 10k 1k; do
  for p in p50 p99; do
    key="$p"; [ "$rate" = 1k ] && key="1k-$p"
    r=$(metric DNSPerf "redoubt-$key-µs"); d=$(metric DNSPerf "dnsmasq-$key-µs")
    awk -v p="$p" -v q="$rate" -v r="$r" -v d="$d" 'BEGIN { printf "| latency %s at %s queries/s | %.2f ms | %.2f ms | |\n", p, (q=="10k" ? "10 000" : "1 000"), r/1000, d/1000 }'
  done
done
rl=$(metric DNSPerf redoubt-lost-%); dl=$(metric DNSPerf dnsmasq-lost-%)
echo "| queries lost | ${rl}% | ${dl}% | |"
fq=$(metric DNSFlood redoubt-qps); dfq=$(metric DNSFlood dnsmasq-qps)
awk -v r="$fq" -v d="$dfq" 'BEGIN { printf "| queries/s under a flood (10 × 5 000 outstanding) | %.0f | %.0f | %.2f |\n", r, d, (d>0 ? r/d : 0) }'
mib() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
echo "| RSS idle | $(mib "$(metric DNSFlood redoubt-idle-MiB)") MiB | $(mib "$(metric DNSFlood dnsmasq-idle-MiB)") MiB | |"
echo "| RSS halfway through / at the end of the flood | $(mib "$(metric DNSFlood redoubt-half-MiB)") / $(mib "$(metric DNSFlood redoubt-end-MiB)") MiB | $(mib "$(metric DNSFlood dnsmasq-half-MiB)") / $(mib "$(metric DNSFlood dnsmasq-end-MiB)") MiB | |"
echo "| peak RSS under the flood (VmHWM) | $(mib "$(maxmetric DNSFlood redoubt-peak-MiB)") MiB | $(mib "$(maxmetric DNSFlood dnsmasq-peak-MiB)") MiB | |"
echo
echo "<details><summary>Each run, in order</summary>"
echo
echo '```'
grep -E 'result (redoubt|dnsmasq):' "$out" | sed -E 's/^ *bench_test.go:[0-9]+: result //'
echo '```'
echo
echo "</details>"
