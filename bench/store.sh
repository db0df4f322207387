#!/usr/bin/env bash
# The apps' blob store (apps/store) against plain files, on the same disk, in
# one run: committing a 64 MiB blob (XChaCha20-Poly1305 in 64 KiB chunks, each
# with a random nonce, fsynced and indexed) against writing and fsyncing the
# same bytes to a file; reading it back (decrypting) against reading the file,
# both from the page cache. CPU seconds per GB are the process's user and
# system time over the bytes. Prints a Markdown section for bench/RESULTS.md.
#   ROUNDS=5 bench/store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test ./apps/store -run '^$' -bench '^Benchmark(Write|Read)$' -benchtime 8x -count "$rounds" -timeout 20m >"$out" 2>&1 || { cat "$out"; exit 1; }

# median BENCH METRIC: the median across rounds of a metric of a benchmark.
median() {
  grep -E "^Benchmark$1-" "$out" | awk -v m="$2" '{for(i=1;i<=NF;i++) if($(i)==m) print $(i-1)}' | sort -g |
    awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
cpu=$(grep -m1 '^cpu:' "$out" | sed 's/^cpu: //')
echo "## The apps' blob store: encrypted blobs against plain files"
echo
echo "$cpu, $(nproc) cores, $(uname -r), $(go env GOVERSION), $(date -u +%Y-%m-%d); \`bench/store.sh\`: median of $rounds rounds of 8 × 64 MiB each."
echo "The machine is shared with other work: the ratios, measured in the same run, are what counts."
echo
echo "| operation | blob store MB/s | plain file MB/s | ratio | blob store CPU s/GB | plain file CPU s/GB |"
echo "| --- | --- | --- | --- | --- | --- |"
for op in Write Read; do
  bm=$(median "$op/blob" MB/s); pm=$(median "$op/plain" MB/s)
  bc=$(median "$op/blob" cpu-s/GB); pc=$(median "$op/plain" cpu-s/GB)
  label="write 64 MiB and commit (fsync)"
  [ "$op" = Read ] && label="read 64 MiB back (page cache)"
  awk -v l="$label" -v bm="$bm" -v pm="$pm" -v bc="$bc" -v pc="$pc" \
    'BEGIN { printf "| %s | %.0f | %.0f | %.2f | %.2f | %.2f |\n", l, bm, pm, (pm > 0 ? bm / pm : 0), bc, pc }'
done
