#!/usr/bin/env bash
# Owns: the side-by-side serving benchmark, end to end.
#   1. bench/serving/setup.sh      installs the peers and load tools under .tools/bench/ (idempotent)
#   2. bench/serving/gen_models.py generates the models, rows and oracles into
#                                  target/bench-models/serving/ (skipped when already there)
#   3. bench/serving/run.py        starts ferroserve, Triton, MLServer and FastAPI+onnxruntime one
#                                  at a time pinned to one core, checks every answer against the
#                                  oracle, loads each from the other core (perf_analyzer HTTP
#                                  binary / HTTP JSON / gRPC; wrk and grpc.aio for MLServer) and
#                                  writes bench/results/serving-<date>.{md,csv,json}
# Build ferroserve first: cargo build --release -p ferroserve (or set FERROSERVE_BIN).
# Every setting is an environment variable read by run.py (see its header, or run.sh --help):
# FERROSERVE_BIN, SERVERS, MODELS, PROTOCOLS, CONCURRENCY, WINDOW_MS, ...
# Usage: bench/serving/run.sh                   (full run: 30-60 min)
#        SERVERS=ferroserve MODELS=mlp CONCURRENCY=8 WINDOW_MS=500 bench/serving/run.sh   (smoke)
#        SKIP_SETUP=1 ...                       (do not run setup.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
case "${1:-}" in
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
                 .venv/bin/python - <<'PY' 2>/dev/null || true
import ast, pathlib
print(ast.get_docstring(ast.parse(pathlib.Path("bench/serving/run.py").read_text())))
PY
                 exit 0 ;;
    "") ;;
    *) echo "run.sh: no arguments (settings are environment variables; --help)" >&2; exit 2 ;;
esac
if [[ "${SKIP_SETUP:-0}" != 1 ]]; then bash bench/serving/setup.sh; fi
[[ -f "${BENCH_DATA:-target/bench-models/serving}/manifest.json" ]] || .venv/bin/python bench/serving/gen_models.py
exec .venv/bin/python bench/serving/run.py
