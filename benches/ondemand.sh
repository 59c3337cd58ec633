#!/usr/bin/env bash
# On-demand latency: starts `dispatcher serve` (release) on a free port and times N
# RenderNow calls for a 3-page statement. Usage: benches/ondemand.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-10000}
cargo build --release -p dispatcher -p pressrun-benches --bins >/dev/null
tmp=$(mktemp -d)
./target/release/dispatcher serve --listen 127.0.0.1:0 --state "$tmp/state.sqlite" > "$tmp/serve.out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q listening "$tmp/serve.out" && break; sleep 0.05; done
addr=$(sed -n 's/dispatcher listening on //p' "$tmp/serve.out")
./target/release/ondemand --server "$addr" --requests "$requests"
