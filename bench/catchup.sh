#!/usr/bin/env bash
# Replay catch-up through the hub, on each store: one subscriber resumes
# 100,000 events behind. For bolt, redis and nats in turn: a fresh backend of
# this script's own (free of other data) and a fresh hub, 100,000 events of
# 100 bytes published with `ssehub publish` (NDJSON batches), then three
# reads that resume from Last-Event-ID 0 and stop at the 100,000th event;
# prints events/s of each read. Needs redis-server, nats-server, curl, bc.
# Run from the repository root: bench/catchup.sh
set -euo pipefail
N=${N:-100000}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
go build -o "$W/ssehub" ./cmd/ssehub
B=$W/ssehub
data=$(printf 'x%.0s' $(seq 100))
seq "$N" | sed "s/.*/$data/" > "$W/lines"
run() { # name, serve flags...
  local name=$1; shift
  "$B" serve --addr 127.0.0.1:18190 --max-replay -1 "$@" > "$W/$name.log" 2>&1 & local pid=$!
  until curl -sf 127.0.0.1:18190/readyz > /dev/null; do sleep 0.05; done
  local p0; p0=$(date +%s.%N)
  "$B" publish --url http://127.0.0.1:18190 --topic replay/a < "$W/lines" > /dev/null
  echo "$name: published $N with ssehub publish in $(echo "$(date +%s.%N) - $p0" | bc) s"
  for i in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N)
    # grep ends at the Nth event; curl ends at its next write (a heartbeat).
    grep -m "$N" '^data:' > "$W/out" < <(curl -sN -H 'Last-Event-ID: 0' 'http://127.0.0.1:18190/events?topic=replay/a')
    t1=$(date +%s.%N)
    [ "$(wc -l < "$W/out")" -eq "$N" ] || { echo "$name: only $(wc -l < "$W/out") events"; exit 1; }
    echo "$name run $i: $(echo "$N / ($t1 - $t0)" | bc) events/s"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run bolt --store bolt --data-dir "$W/bolt"
redis-server --port 16390 --bind 127.0.0.1 --appendonly yes --appendfsync always --save "" \
  --dir "$W" --daemonize yes --pidfile "$W/redis.pid" --logfile "$W/redis.log"
until redis-cli -p 16390 ping > /dev/null 2>&1; do sleep 0.05; done
run redis --store redis --redis-url redis://127.0.0.1:16390
kill "$(cat "$W/redis.pid")"
mkdir -p "$W/nats"
nats-server -js -sd "$W/nats" -a 127.0.0.1 -p 14230 > "$W/nats.log" 2>&1 & npid=$!
sleep 0.5
run nats --store nats --nats-url nats://127.0.0.1:14230
kill "$npid"; wait "$npid" 2>/dev/null || true
