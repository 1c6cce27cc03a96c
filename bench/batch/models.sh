#!/usr/bin/env bash
# Owns: target/bench-models/batch-repo/, the ferroserve model repository of the batch benchmark
# (bench/batch/run.sh). Not committed; rebuilt in seconds from target/bench-models/trees/, which
# scripts/gen_bench_trees.py trains (run here in .venv when its files are missing, ~30 s).
#
#   batch-repo/xgboost/1/model.json         XGBoost 3.2, binary:logistic, 100 trees, depth 8,
#                                           20 features (ferroserve's tree runtime)
#   batch-repo/lightgbm/1/model.txt         LightGBM 4.7, binary, 100 trees, 63 leaves, same data
#   batch-repo/xgboost_onnx/1/model.onnx    the XGBoost model converted by onnxmltools
#                                           (ferroserve's ONNX-ML interpreter; onnxruntime's leg)
#   batch-repo/lightgbm_onnx/1/model.onnx   the LightGBM model converted by onnxmltools
#
# Every model takes one float32 input tensor `input` [N, 20]; the batch command maps the columns
# f0..f19 onto it in order (`--columns f0,...,f19`), so the models' feature names do not matter.
# No model.toml: each runtime is chosen by its file name.
#
# Usage: bench/batch/models.sh            (FORCE=1 retrains the models)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TREES="$ROOT/target/bench-models/trees"
REPO="$ROOT/target/bench-models/batch-repo"

need=("$TREES/xgboost/model.json" "$TREES/xgboost/model.onnx" "$TREES/lightgbm/model.txt"
      "$TREES/lightgbm/model.onnx" "$TREES/rows.f32")
missing=0
for f in "${need[@]}"; do [[ -f "$f" ]] || missing=1; done
if [[ "$missing" == 1 || "${FORCE:-0}" == 1 ]]; then
    echo "models: training the tree models (scripts/gen_bench_trees.py --skip-timing, in .venv)" >&2
    bash "$ROOT/scripts/python-env.sh"
    "$ROOT/.venv/bin/python" "$ROOT/scripts/gen_bench_trees.py" --skip-timing
fi

place() {  # place SRC NAME FILE: SRC as REPO/NAME/1/FILE, copied only when it changed
    local dst="$REPO/$2/1/$3"
    mkdir -p "$(dirname "$dst")"
    cmp -s "$1" "$dst" 2>/dev/null || cp "$1" "$dst"
}
place "$TREES/xgboost/model.json" xgboost model.json
place "$TREES/lightgbm/model.txt" lightgbm model.txt
place "$TREES/xgboost/model.onnx" xgboost_onnx model.onnx
place "$TREES/lightgbm/model.onnx" lightgbm_onnx model.onnx
echo "models: $REPO ready (xgboost, lightgbm, xgboost_onnx, lightgbm_onnx)" >&2
