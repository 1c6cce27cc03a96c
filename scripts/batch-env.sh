#!/usr/bin/env bash
# Owns: the batch-scoring Python virtualenv at <repo>/.venv-batch (gitignored), used by the Spark
# test of the `ferroserve` Python package and by bench/batch/ (pyspark, pyarrow, pandas,
# xgboost, lightgbm, onnxruntime, maturin, pytest).
# Creates it with `python3 -m venv`, installs scripts/requirements-batch.txt, and records a stamp
# (sha256 of requirements-batch.txt + python version) so that re-running is a no-op when nothing
# changed. The same scheme as scripts/python-env.sh, which owns .venv.
# Usage: scripts/batch-env.sh        (env: PYTHON=python3.11 to pick the interpreter)
# Spark also needs a Java 17+ runtime on PATH (`java -version`); this script does not install it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-batch"
REQ="$ROOT/scripts/requirements-batch.txt"
STAMP="$VENV/.requirements.stamp"
PYTHON="${PYTHON:-python3}"

want="$( { sha256sum "$REQ" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

pyver() { "$1" -c 'import sys; print(sys.version)' 2>/dev/null; }
if [[ -x "$VENV/bin/python" && "$(pyver "$VENV/bin/python")" != "$(pyver "$PYTHON")" ]]; then
    echo "batch-env: $VENV was made by another interpreter; recreating it" >&2
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "batch-env: creating $VENV" >&2
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        # Debian's own python3 ships venv/ensurepip separately (python3-venv).
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
            echo "batch-env: installing Debian's python3-venv" >&2
            apt-get install -y -q python3-venv >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
        fi
        "$PYTHON" -m venv "$VENV"
    fi
fi

echo "batch-env: installing scripts/requirements-batch.txt into .venv-batch (~1.2 GB)" >&2
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$VENV/bin/python" -m pip install -q -r "$REQ" >"$log" 2>&1; then
    cat "$log" >&2
    echo "batch-env: pip install failed" >&2
    exit 1
fi
echo "$want" >"$STAMP"
echo "batch-env: ready ($("$VENV/bin/python" --version))" >&2
