#!/usr/bin/env bash
# The main job: a statement run end to end on the embedded default (in-process renderer,
# local output folder). Usage: scripts/demo.sh [RECORDS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-10000}
out=${2:-out/statement}
cargo build --release -p renderer --bin renderer
mkdir -p "$(dirname "$out")"
./target/release/renderer example-data statement --records "$records" --seed 1 > "$out.jsonl"
./target/release/renderer render --template examples/statement --data "$out.jsonl" --out "$out" --run-date 2026-11-23 --per-document --replace
