#!/usr/bin/env bash
# Owns: the perf_analyzer conformance/benchmark run against ferroserve.
#
# Starts its own server ($FERROSERVE_BIN serve --model-repository examples/models --http-port 0
# --host 127.0.0.1, port parsed from the "listening on http://127.0.0.1:PORT" log line), then runs
# Triton's perf_analyzer (installed by scripts/install-perf-analyzer.sh) on one model with real rows
# (examples/oracles/<model>/perf_input.json), batch 1, for each concurrency and both HTTP tensor
# formats (binary: the default; json: --input-tensor-format json --output-tensor-format json).
# Each run is bounded by `timeout`. Prints a table of throughput and p50/p99 latency; exits
# non-zero if the server does not start or any perf_analyzer run fails.
#
# Usage: tests/conformance/perf_analyzer.sh [--release]
#   --release (or FERROSERVE_PROFILE=release): default binary target/release/ferroserve, for
#             benchmarking (build it with `cargo build --release` first); also pins the server
#             and perf_analyzer to different cores when PA_PIN is unset.
# Environment (defaults in brackets):
#   FERROSERVE_BIN   server binary [target/debug/ferroserve, or target/release/ferroserve with --release]
#   PA_MODEL         model [digits_mlp]           PA_CONCURRENCY  concurrency levels ["1 8"]
#   PA_INTERVAL_MS   measurement window [2000]    PA_TIMEOUT_S    limit per run [120]
#   PA_STABILITY     stability percentage, perf_analyzer -s [25 (debug), 10 (release)]
#   PA_FORMATS       protocols and tensor formats ["binary json grpc"]: HTTP binary, HTTP JSON, gRPC
#   PA_PIN           1: server on CPU 0, perf_analyzer on CPU 1 (taskset) [0, or 1 with --release]
#   PA_OUT           folder for the csv files and logs [a temp folder, removed at exit]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PROFILE="${FERROSERVE_PROFILE:-debug}"
for arg in "$@"; do
    case "$arg" in
        --release) PROFILE=release ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "perf_analyzer.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

BIN="${FERROSERVE_BIN:-target/$PROFILE/ferroserve}"
[[ "$BIN" = /* ]] || BIN="$ROOT/$BIN"
PA="$ROOT/.tools/bin/perf_analyzer"
MODEL="${PA_MODEL:-digits_mlp}"
CONCURRENCY="${PA_CONCURRENCY:-1 8}"
INTERVAL_MS="${PA_INTERVAL_MS:-2000}"
TIMEOUT_S="${PA_TIMEOUT_S:-120}"
FORMATS="${PA_FORMATS:-binary json grpc}"
if [[ "$PROFILE" == release ]]; then
    STABILITY="${PA_STABILITY:-10}"; PIN="${PA_PIN:-1}"
else
    STABILITY="${PA_STABILITY:-25}"; PIN="${PA_PIN:-0}"
fi
INPUT_DATA="$ROOT/examples/oracles/$MODEL/perf_input.json"

die() { echo "perf_analyzer.sh: $*" >&2; exit 1; }
[[ -x "$BIN" ]] || die "server binary not found: $BIN (cargo build$([[ $PROFILE == release ]] && echo " --release"), or set FERROSERVE_BIN)"
[[ -x "$PA" ]] || die "perf_analyzer not installed: run scripts/install-perf-analyzer.sh"
[[ -f "$INPUT_DATA" ]] || die "no input data $INPUT_DATA (run scripts/gen_models.py)"

if [[ -n "${PA_OUT:-}" ]]; then
    OUT="$PA_OUT"; mkdir -p "$OUT"; KEEP_OUT=1
else
    OUT="$(mktemp -d)"; KEEP_OUT=0
fi

SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [[ "$KEEP_OUT" == 1 ]] || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SERVER_PIN=() PA_PIN_CMD=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
    SERVER_PIN=(taskset -c 0) PA_PIN_CMD=(taskset -c 1)
fi

# ------------------------------------------------------------------ start the server
SERVER_LOG="$OUT/server.log"
NO_COLOR=1 "${SERVER_PIN[@]}" "$BIN" serve --model-repository "$ROOT/examples/models" \
    --http-port 0 --grpc-port 0 --host 127.0.0.1 >"$SERVER_LOG" 2>&1 </dev/null &
SERVER_PID=$!

PORT=""
for _ in $(seq 600); do # 60 s
    PORT="$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$SERVER_LOG" |
        grep -oE 'listening on https?://127\.0\.0\.1:[0-9]+' | head -1 | grep -oE '[0-9]+$' || true)"
    [[ -n "$PORT" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "server exited before listening"; }
    sleep 0.1
done
[[ -n "$PORT" ]] || { tail -50 "$SERVER_LOG" >&2; die "no 'listening on http://127.0.0.1:PORT' line within 60 s"; }
GRPC_PORT="$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$SERVER_LOG" |
    grep -oE 'listening on grpc://127\.0\.0\.1:[0-9]+' | head -1 | grep -oE '[0-9]+$' || true)"

http_status() { # GET path -> HTTP status code, with bash's /dev/tcp (no curl needed)
    local line=""
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
    IFS= read -r -t 5 line <&3 || true
    exec 3<&- 3>&-
    awk '{print $2}' <<<"$line"
}
ready=""
for _ in $(seq 600); do
    if [[ "$(http_status /v2/health/ready 2>/dev/null)" == 200 ]]; then ready=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$ready" ]] || { tail -50 "$SERVER_LOG" >&2; die "/v2/health/ready never answered 200"; }
echo "perf_analyzer.sh: $(basename "$BIN") ($PROFILE) on 127.0.0.1:$PORT, model $MODEL, batch 1," \
    "window ${INTERVAL_MS} ms, stability ${STABILITY}%${SERVER_PIN:+, pinned}" >&2

# ------------------------------------------------------------------ run perf_analyzer
ROWS=()
FAILED=0
for fmt in $FORMATS; do
    endpoint=(-u "127.0.0.1:$PORT" -i http)
    case "$fmt" in
        binary) fmt_args=() ;;
        json) fmt_args=(--input-tensor-format json --output-tensor-format json) ;;
        grpc)
            [[ -n "$GRPC_PORT" ]] || die "the server logged no 'listening on grpc://127.0.0.1:PORT' line"
            fmt_args=() endpoint=(-u "127.0.0.1:$GRPC_PORT" -i grpc)
            ;;
        *) die "unknown tensor format $fmt (binary|json|grpc)" ;;
    esac
    for c in $CONCURRENCY; do
        tag="${fmt}-c${c}"
        csv="$OUT/$tag.csv"
        log="$OUT/$tag.log"
        rc=0
        timeout --kill-after=10 "$TIMEOUT_S" "${PA_PIN_CMD[@]}" "$PA" -m "$MODEL" "${endpoint[@]}" \
            --input-data "$INPUT_DATA" --concurrency-range "$c:$c" --measurement-interval "$INTERVAL_MS" \
            -s "$STABILITY" "${fmt_args[@]}" -f "$csv" >"$log" 2>&1 || rc=$?
        if [[ $rc -ne 0 || ! -s "$csv" ]]; then
            FAILED=1
            [[ $rc -eq 124 || $rc -eq 137 ]] && why="timed out after ${TIMEOUT_S} s" || why="exit $rc"
            echo "perf_analyzer.sh: FAILED $tag ($why); last lines of its output:" >&2
            tail -25 "$log" | sed 's/^/    /' >&2
            ROWS+=("$fmt $c FAILED - - - -")
            continue
        fi
        # CSV header: Concurrency,Inferences/Second,Client Send,...,Server Compute Infer,...,
        #             p50 latency,p90 latency,p95 latency,p99 latency  (times in microseconds)
        row="$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
            NR == 2 { printf "%.1f %.3f %.3f %.3f %.3f", $col["Inferences/Second"], $col["p50 latency"] / 1000,
                      $col["p90 latency"] / 1000, $col["p99 latency"] / 1000, $col["Server Compute Infer"] / 1000 }' "$csv")"
        ROWS+=("$fmt $c $row")
    done
done

if [[ "$KEEP_OUT" == 1 ]]; then echo "perf_analyzer.sh: csv files and logs in $OUT" >&2; fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "perf_analyzer.sh: the server died during the runs:" >&2; tail -30 "$SERVER_LOG" >&2
    FAILED=1
fi

# server infer ms: the server's own compute_infer time per request, from its statistics
printf '%-8s %5s %12s %10s %10s %10s %16s\n' format conc "infer/s" "p50 ms" "p90 ms" "p99 ms" "server infer ms"
for r in "${ROWS[@]}"; do
    # shellcheck disable=SC2086
    set -- $r
    printf '%-8s %5s %12s %10s %10s %10s %16s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7"
done

if [[ $FAILED -ne 0 ]]; then
    echo "perf_analyzer.sh: some runs failed" >&2
    exit 1
fi
