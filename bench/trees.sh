#!/usr/bin/env bash
# Owns: the tree-evaluator benchmark, side by side with the libraries and onnxruntime.
#   1. scripts/gen_bench_trees.py trains the benchmark models (XGBoost 100 trees depth 8 and
#      LightGBM 100 trees 63 leaves, 20 features, binary) into target/bench-models/trees and
#      times xgboost / lightgbm / onnxruntime on them, one thread each;
#   2. the criterion benchmark crates/trees/benches/predict.rs times ferroserve on the same rows;
#   3. a table of medians per batch size (1, 64, 1024) is printed.
# Usage: bench/trees.sh            (env CPU=N pins every step to core N with taskset)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
pin=()
if [[ -n "${CPU:-}" ]]; then pin=(taskset -c "$CPU"); fi

bash scripts/python-env.sh
"${pin[@]}" .venv/bin/python scripts/gen_bench_trees.py >/dev/null
"${pin[@]}" cargo bench -p ferroserve-trees --bench predict -- --noplot >/dev/null 2>&1 || {
    echo "trees.sh: cargo bench failed; rerun it by hand to see why" >&2
    exit 1
}

.venv/bin/python - <<'PY'
import json, pathlib
root = pathlib.Path("target")
ref = json.loads((root / "bench-models/trees/reference.json").read_text())
rows = {}
for lib in ("xgboost", "lightgbm", "random_forest"):
    name = f"ferroserve ({lib} model)"
    rows[name] = {}
    for b in ("1", "64", "1024"):
        est = json.loads((root / f"criterion/trees_{lib}/{b}/new/estimates.json").read_text())
        rows[name][b] = est["median"]["point_estimate"] * 1e-9
rows.update(ref["seconds"])
def fmt(s):
    return f"{s * 1e6:9.1f} µs" if s < 1e-3 else f"{s * 1e3:9.3f} ms"
print(f"{'one thread, median per call':36} {'batch 1':>12} {'batch 64':>12} {'batch 1024':>12}")
for what, by in rows.items():
    print(f"{what:36} " + " ".join(f"{fmt(by[b]):>12}" for b in ("1", "64", "1024")))
print(f"(xgboost {ref['xgboost_version']}, lightgbm {ref['lightgbm_version']}, "
      f"onnxruntime {ref['onnxruntime_version']})")
PY
