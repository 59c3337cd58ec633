#!/usr/bin/env bash
# Farm throughput: the example statement run through `dispatcher run` and N `renderer serve`
# processes on 127.0.0.1, output written to disk. Prints the dispatcher's summary line and
# its peak RSS. Usage: benches/farm.sh [RECORDS] [NODES] [STOPPED]
# With STOPPED=1 one more node is started and SIGSTOPped once the run is under way: the
# dispatcher detects the stall, moves its shards, and its memory stays bounded by the
# in-flight window (the peak RSS printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-33000}
nodes=${2:-2}
stopped=${3:-0}
cargo build --release -p renderer -p dispatcher --bins >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
./target/release/renderer example-data statement --records "$records" --seed 1 > "$tmp/data.jsonl"
addrs=()
for i in $(seq "$nodes"); do
  ./target/release/renderer serve --listen 127.0.0.1:0 --threads 1 > "$tmp/node$i.out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$tmp/node$i.out" && break; sleep 0.05; done
  addrs+=(--renderer "$(sed -n 's/renderer listening on //p' "$tmp/node$i.out")")
done
if [ "$stopped" = 1 ]; then
  ./target/release/renderer serve --listen 127.0.0.1:0 --threads 1 > "$tmp/hung.out" 2>/dev/null &
  hung=$!
  pids+=($hung)
  for _ in $(seq 100); do grep -q listening "$tmp/hung.out" && break; sleep 0.05; done
  addrs+=(--renderer "$(sed -n 's/renderer listening on //p' "$tmp/hung.out")")
  ( sleep 3; kill -STOP "$hung"; echo "node $hung stopped (SIGSTOP)" >&2 ) &
fi
/usr/bin/time -f "dispatcher peak RSS %M KiB" ./target/release/dispatcher run --quiet --template examples/statement \
  --data "$tmp/data.jsonl" --out "$tmp/out" --run-date 2026-11-23 "${addrs[@]}"
[ "$stopped" = 1 ] && kill -CONT "$hung" || true
