#!/usr/bin/env bash
# run.sh runs the side-by-side SSE benchmarks (ssehub, go-sse, r3labs/sse/v2
# and a bufio.Scanner ceiling) in one go test run, then summarises them:
# a markdown table of medians with each implementation's throughput
# relative to go-sse's in the same benchmark, and benchstat's medians with
# one column per implementation.
# If the main module's sse package has benchmarks, they are run and
# summarised too.
#
# Usage: cd bench && ./run.sh
# Environment: COUNT (default 5) runs of each benchmark; BENCH (default .)
# the -bench pattern. Raw output is kept in results/.
#
# It needs only the Go toolchain and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")"

count=${COUNT:-5}
pattern=${BENCH:-.}
# The newest golang.org/x/perf the module proxy served when this was written.
benchstat_pkg=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

mkdir -p results
raw=results/bench.txt
sseraw=results/sse.txt

{
  echo "# $(go version); nproc $(nproc);" \
    "$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"
  go test -run '^$' -bench "$pattern" -benchmem -count "$count" .
} | tee "$raw"

ssebench=false
if grep -qs '^func Benchmark' ../sse/*_test.go; then
  # Another package's benchmarks: a failure there does not stop the summary.
  if (cd .. && go test -run '^$' -bench "$pattern" -benchmem -count "$count" ./sse/) | tee "$sseraw"; then
    ssebench=true
  else
    echo "run.sh: the sse package benchmarks failed; they are left out" >&2
  fi
fi

# medians prints a markdown table of the median of each metric, the range
# of MB/s, and the ratio of each row's median MB/s to the go-sse row's of
# the same benchmark.
medians() {
  # Each value as "row name unit value", row numbering the names in the
  # order they first appear, so the table keeps the file's order.
  awk '/^Benchmark/ {
         name = $1; sub(/-[0-9]+$/, "", name)
         if (!(name in row)) row[name] = ++rows
         for (i = 3; i < NF; i += 2) print row[name], name, $(i+1), $i
       }' "$1" |
    sort -k1,1n -k3,3 -k4,4g | cut -d' ' -f2- |
    awk '
      function flush() {
        if (key == "") return
        m = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
        split(key, k, SUBSEP); med[k[1], k[2]] = m
        lo[k[1], k[2]] = v[1]; hi[k[1], k[2]] = v[n]
        if (!(k[1] in seen)) { seen[k[1]] = 1; order[++rows] = k[1] }
      }
      { if ($1 SUBSEP $2 != key) { flush(); key = $1 SUBSEP $2; n = 0 }
        v[++n] = $3 }
      END {
        flush()
        print "| benchmark | MB/s | MB/s min–max | ns/op | ns/event | allocs/op | allocs/event | MB/s vs go-sse |"
        print "|---|--:|--:|--:|--:|--:|--:|--:|"
        for (r = 1; r <= rows; r++) {
          b = order[r]; base = b; sub(/impl=[^\/]*$/, "impl=go-sse", base)
          ratio = "–"
          if (base != b && (base, "MB/s") in med && med[base, "MB/s"] > 0)
            ratio = sprintf("%.2f×", med[b, "MB/s"] / med[base, "MB/s"])
          spread = ((b, "MB/s") in med) ? sprintf("%.0f–%.0f", lo[b, "MB/s"], hi[b, "MB/s"]) : "–"
          printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", b,
            f(b, "MB/s", "%.1f"), spread, f(b, "ns/op", "%.0f"), f(b, "ns/event", "%.1f"),
            f(b, "allocs/op", "%.0f"), f(b, "allocs/event", "%g"), ratio
        }
      }
      function f(b, u, fmt) { return ((b, u) in med) ? sprintf(fmt, med[b, u]) : "–" }'
}

echo
echo "== medians of $count runs ($raw)"
medians "$raw"
if $ssebench; then
  echo
  echo "== ssehub sse package benchmarks, medians of $count runs ($sseraw)"
  medians "$sseraw"
fi

echo
echo "== benchstat"
benchstat() { go run "$benchstat_pkg" "$@"; }
# One column per implementation; "vs base" compares with the first column,
# ssehub.
if benchstat -col /impl "$raw"; then
  if $ssebench; then
    echo
    benchstat "$sseraw"
  fi
else
  echo "benchstat is unavailable; the medians above are computed by awk."
fi
