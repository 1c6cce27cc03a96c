#!/usr/bin/env bash
# Owns: the one entry point of the client-conformance checks.
#   1. scripts/python-env.sh            -> .venv (tritonclient, pytest, ...)
#   2. scripts/install-perf-analyzer.sh -> .tools/bin/perf_analyzer
#   3. pytest -q tests/conformance/test_tritonclient.py   (real tritonclient vs ferroserve)
#      pytest -q tests/conformance/test_kserve_client.py  (KServe's Python SDK, own process)
#   4. tests/conformance/perf_analyzer.sh                 (real perf_analyzer vs ferroserve)
# Every step runs even if another fails; exits non-zero if any step fails.
# It does not build the server: FERROSERVE_BIN (default target/debug/ferroserve, or
# target/release/ferroserve with --release) must exist.
#
# Usage: tests/conformance/run.sh [--release] [--no-perf] [extra pytest args...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PROFILE=debug
PERF=1
PYTEST_ARGS=()
for arg in "$@"; do
    case "$arg" in
        --release) PROFILE=release ;;
        --no-perf) PERF=0 ;;
        *) PYTEST_ARGS+=("$arg") ;;
    esac
done

export FERROSERVE_BIN="${FERROSERVE_BIN:-target/$PROFILE/ferroserve}"
[[ "$FERROSERVE_BIN" = /* ]] || FERROSERVE_BIN="$ROOT/$FERROSERVE_BIN"
if [[ ! -x "$FERROSERVE_BIN" ]]; then
    echo "conformance: server binary not found: $FERROSERVE_BIN (build it first, or set FERROSERVE_BIN)" >&2
    exit 1
fi

bash scripts/python-env.sh
bash scripts/install-perf-analyzer.sh

status=0
echo "== conformance: tritonclient ($FERROSERVE_BIN)" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider tests/conformance/test_tritonclient.py \
    "${PYTEST_ARGS[@]}" || status=1
# A process of its own: KServe's and tritonclient's gRPC modules register the same messages.
echo "== conformance: KServe's Python SDK ($FERROSERVE_BIN)" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider tests/conformance/test_kserve_client.py \
    "${PYTEST_ARGS[@]}" || status=1

if [[ $PERF == 1 ]]; then
    echo "== conformance: perf_analyzer ($FERROSERVE_BIN)" >&2
    perf_args=()
    [[ $PROFILE == release ]] && perf_args+=(--release)
    bash tests/conformance/perf_analyzer.sh "${perf_args[@]}" || status=1
fi

if [[ $status -ne 0 ]]; then
    echo "conformance: FAILED" >&2
else
    echo "conformance: all passed" >&2
fi
exit $status
