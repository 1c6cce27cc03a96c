#!/usr/bin/env bash
# Owns: the Python package's check (crates/python): builds the abi3 wheel with maturin, installs
# it into .venv-batch (scripts/batch-env.sh: pyspark, pyarrow, pandas, pytest) and runs
# crates/python/tests: numpy and Arrow predictions against the oracles, zero-copy pass-through,
# and a Spark local[2] job whose answers must equal `ferroserve batch`'s on the same Parquet.
# Spark needs Java 17+: Debian's openjdk-17-jre-headless is installed when `java` is missing.
# Usage: scripts/test-python.sh   (env: FERROSERVE_BIN, default target/debug/ferroserve;
#        PROFILE=release for an optimised wheel; the dev one reuses `cargo test`'s artifacts)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v java >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "test-python: installing Debian's openjdk-17-jre-headless for Spark" >&2
        apt-get install -y -q openjdk-17-jre-headless >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q openjdk-17-jre-headless >/dev/null; }
    else
        echo "test-python: Spark needs Java 17+ (java not found)" >&2
        exit 1
    fi
fi

bash scripts/batch-env.sh
PY="$ROOT/.venv-batch/bin/python"
rm -rf target/wheels
(cd crates/python && env -u VIRTUAL_ENV "$ROOT/.venv-batch/bin/maturin" build \
    --profile "${PROFILE:-dev}" -i "$PY" -o "$ROOT/target/wheels")
"$PY" -m pip install -q --force-reinstall --no-deps target/wheels/ferroserve-*.whl
FERROSERVE_BIN="${FERROSERVE_BIN:-target/debug/ferroserve}" \
    "$PY" -m pytest -q -p no:cacheprovider crates/python/tests
