#!/usr/bin/env bash
# make test, after deps/build/vet/gofmt: bounded fuzzing of every decoder of
# laptop-supplied bytes, every benchmark once, then every test. It ends with Go's
# own per-package summary and the list of skipped tests with their reasons.
set -uo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
export REDOUBT_BIN="$PWD/bin/redoubt"
# A count, not a duration: Go 1.26's fuzzer can end a timed run with a spurious
# "context deadline exceeded".
FUZZTIME="${FUZZTIME:-30000x}"
out=out/test
mkdir -p "$out"
fail=0

echo "==> fuzzing each target for $FUZZTIME"
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=5s "$pkg" >"$out/fuzz-$name.log" 2>&1; then
    echo "FAIL fuzz $pkg $name (see $out/fuzz-$name.log)"; tail -20 "$out/fuzz-$name.log"; fail=1
  else
    echo "ok   fuzz $pkg $name"
  fi
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/:func /:/' | sort)

echo "==> every benchmark once"
if ! go test -run='^$' -bench=. -benchtime=1x -benchmem ./... >"$out/bench.log" 2>&1; then
  echo "FAIL benchmarks (see $out/bench.log)"; grep -E -- '^(--- FAIL|FAIL|panic)' -A5 "$out/bench.log" | head -40; fail=1
else
  echo "ok   $(grep -c '^Benchmark' "$out/bench.log") benchmarks"
fi

echo "==> tests"
go test -count=1 -timeout 25m -v ./... >"$out/test.log" 2>&1
status=$?
grep -E -A30 -e '^\s*--- FAIL' "$out/test.log" | head -200
echo
echo "Skipped tests:"
skipped=$(grep -E -A1 -e '^\s*--- SKIP' "$out/test.log" | grep -vE '^--$' | sed 's/^/  /')
echo "${skipped:-  none}"
echo
echo "Go's summary (full log: $out/test.log):"
grep -E '^(ok|FAIL|\?)\s' "$out/test.log" | grep -v 'no test files' || true
[ $status -eq 0 ] || fail=1
exit $fail
