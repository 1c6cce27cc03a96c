#!/usr/bin/env bash
# Owns: the batch-scoring Python virtualenv at <repo>/.venv-batch (gitignored), used by the Spark
# test of the `ferroserve` Python package (scripts/test-python.sh) and by bench/batch/: pyspark,
# pyarrow, pandas, xgboost, lightgbm, onnxruntime, maturin, pytest, pinned by
# scripts/requirements-batch.txt. scripts/python-env.sh does the work (stamped, a no-op when
# nothing changed). Spark also needs Java 17+ on PATH; scripts/test-python.sh installs it.
set -euo pipefail
VENV_DIR=.venv-batch REQUIREMENTS=scripts/requirements-batch.txt \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/python-env.sh"
