#!/usr/bin/env bash
# Status-path benchmark: a real `noteflow serve` process on SQLite (release build, its own data
# directory) and, beside it, many concurrent gRPC clients calling GetDiarizationJobStatus.
# Usage: scripts/bench-status.sh [--clients 1,16,64,256] [--seconds 10] [--jobs 100]
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p noteflow-cli
cargo build --release -p noteflow-server --example status_bench
data=$(mktemp -d)
out=$(mktemp)
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data" "$out"' EXIT

RUST_LOG=warn target/release/noteflow serve --listen 127.0.0.1:0 --no-metrics --data-dir "$data" >"$out" &
server=$!
for _ in $(seq 100); do
    grep -q "serving gRPC on" "$out" && break
    sleep 0.1
done
addr=$(sed -n 's/^noteflow serving gRPC on \([^ ]*\).*/\1/p' "$out")
[ -n "$addr" ] || { echo "the server did not start" >&2; exit 1; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(date -u +%F)"
target/release/examples/status_bench --server "http://$addr" "$@"
