#!/usr/bin/env bash
# The box's own download through its external VPN against the kernel without a
# tunnel, same lab, same run: a 256 MiB HTTP download from the lab's internet
# namespace by the box (its egress dialer: wireguard-go and its gVisor netstack,
# through the home router's NAT to the lab's VPN provider, Debian's wireguard-go
# with NAT) and by Go's HTTP client on the box namespace's kernel (same home
# router, no tunnel). Prints a Markdown section for bench/RESULTS.md.
#   ROUNDS=3 bench/vpn.sh      (each round downloads 4 × 256 MiB per path)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test ./integration/vpn -run '^$' -bench 'Download' -benchtime 4x -count "$rounds" -timeout 30m >"$out" 2>&1 || { cat "$out"; exit 1; }

# median METRIC PATH: the median across rounds of a metric of a sub-benchmark.
median() {
  grep -E "^BenchmarkDownload/$2-" "$out" | awk -v m="$1" '{for(i=1;i<=NF;i++) if($(i)==m) print $(i-1)}' | sort -g |
    awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
echo "## The box's own traffic through its external VPN vs the kernel"
echo
echo "Median of $rounds rounds, each downloading 4 × 256 MiB per path over HTTP from the lab's internet (\`bench/vpn.sh\`)."
echo "CPU is seconds per GB downloaded: of the downloading process (user, and system — which includes the kernel's"
echo "work forwarding what that process sends through the lab's NAT hops), of the lab's VPN server (Debian's"
echo "wireguard-go), and of the whole machine (both ends, every hop; shared with anything else running)."
echo
echo "| path | MB/s | process user s/GB | process sys s/GB | VPN server s/GB | machine s/GB |"
echo "| --- | --- | --- | --- | --- | --- |"
for p in tunnel kernel; do
  label="through the tunnel (\`redoubt\`)"
  [ "$p" = kernel ] && label="kernel, no tunnel (Go client)"
  printf '| %s | %.0f | %.2f | %.2f | %.2f | %.2f |\n' "$label" "$(median dl-MB/s $p)" "$(median user-s/GB $p)" \
    "$(median sys-s/GB $p)" "$(median server-s/GB $p)" "$(median machine-s/GB $p)"
done
t=$(median dl-MB/s tunnel); k=$(median dl-MB/s kernel)
tu=$(median user-s/GB tunnel); ts=$(median sys-s/GB tunnel); ku=$(median user-s/GB kernel); ks=$(median sys-s/GB kernel)
awk -v t="$t" -v k="$k" -v tc="$(awk -v a="$tu" -v b="$ts" 'BEGIN{print a+b}')" -v kc="$(awk -v a="$ku" -v b="$ks" 'BEGIN{print a+b}')" \
  'BEGIN { printf "\nRatio tunnel/kernel: throughput %.3f; the downloading process spends %.1f× the CPU per GB.\n", (k>0 ? t/k : 0), (kc>0 ? tc/kc : 0) }'
