#!/usr/bin/env bash
# On-demand latency: starts `dispatcher serve` (release) on a free port and times N
# RenderNow calls for a 3-page statement from C concurrent clients, optionally while a
# batch run of B statements renders on the same dispatcher (in-process, all cores).
# Usage: [ON_DEMAND_THREADS=N] benches/ondemand.sh [REQUESTS] [CLIENTS] [BATCH_RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-10000}
clients=${2:-1}
batch=${3:-0}
cargo build --release -p dispatcher -p renderer -p pressrun-benches --bins >/dev/null
tmp=$(mktemp -d)
./target/release/dispatcher serve --listen 127.0.0.1:0 --state "$tmp/state.sqlite" \
  --data-root "$tmp" --out-root "$tmp" --template-root examples \
  --on-demand-threads "${ON_DEMAND_THREADS:-1}" > "$tmp/serve.out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q listening "$tmp/serve.out" && break; sleep 0.05; done
addr=$(sed -n 's/dispatcher listening on //p' "$tmp/serve.out")
if [ "$batch" -gt 0 ]; then
  ./target/release/renderer example-data statement --records "$batch" --seed 1 > "$tmp/batch.jsonl"
  run=$(./target/release/dispatcher submit --server "$addr" --template examples/statement \
    --data "$tmp/batch.jsonl" --out "$tmp/batch-out" --run-date 2026-11-23)
  echo "batch run $run active" >&2
fi
./target/release/ondemand --server "$addr" --requests "$requests" --clients "$clients"
if [ "$batch" -gt 0 ]; then
  ./target/release/dispatcher status --server "$addr" >&2
fi
