#!/usr/bin/env bash
# Owns: two start-up figures of a ferroserve binary on the example repository:
#   - time from process start to the first `GET /v2/health/ready` = 200 (polled every 2 ms),
#   - the server's resident memory (VmRSS) once ready and idle.
# Usage: bench/startup_and_memory.sh [BIN] [RUNS]   (default target/release/ferroserve, 5 runs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/release/ferroserve}"
RUNS="${2:-5}"
PORT_FILE=$(mktemp)
trap 'rm -f "$PORT_FILE"' EXIT

for run in $(seq 1 "$RUNS"); do
    start=$(date +%s%N)
    "$BIN" serve --model-repository "$ROOT/examples/models" --host 127.0.0.1 --http-port 0 --grpc-port 0 --log info 2>"$PORT_FILE" &
    pid=$!
    port=""
    for _ in $(seq 1 5000); do
        port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$PORT_FILE" | grep -oE '[0-9]+$' || true)
        [[ -n "$port" ]] && break
        sleep 0.001
    done
    for _ in $(seq 1 5000); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/health/ready" || true)
        [[ "$code" == 200 ]] && break
        sleep 0.002
    done
    ready=$(( ($(date +%s%N) - start) / 1000000 ))
    sleep 1
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    echo "run $run: ready after ${ready} ms, idle RSS $((rss / 1024)) MiB (${rss} kB)"
    kill -TERM "$pid"; wait "$pid" || true
done
