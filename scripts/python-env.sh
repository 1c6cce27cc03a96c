#!/usr/bin/env bash
# Owns: the project's Python virtualenvs (gitignored): <repo>/.venv by default, or the one
# VENV_DIR names with the requirements file REQUIREMENTS names (scripts/batch-env.sh: .venv-batch).
# Creates it with `python3 -m venv`, installs the requirements, and records a stamp (sha256 of
# the requirements file + python version) so that re-running is a no-op when nothing changed.
# Usage: scripts/python-env.sh        (env: PYTHON=python3.11 to pick the interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/${VENV_DIR:-.venv}"
REQ="$ROOT/${REQUIREMENTS:-scripts/requirements.txt}"
NAME="$(basename "$VENV")"
STAMP="$VENV/.requirements.stamp"
PYTHON="${PYTHON:-python3}"

want="$( { sha256sum "$REQ" | cut -d' ' -f1; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

pyver() { "$1" -c 'import sys; print(sys.version)' 2>/dev/null; }
if [[ -x "$VENV/bin/python" && "$(pyver "$VENV/bin/python")" != "$(pyver "$PYTHON")" ]]; then
    echo "python-env: $VENV was made by another interpreter; recreating it" >&2
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "python-env: creating $VENV" >&2
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        # Debian's own python3 ships venv/ensurepip separately (python3-venv).
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
            echo "python-env: installing Debian's python3-venv" >&2
            apt-get install -y -q python3-venv >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
        fi
        "$PYTHON" -m venv "$VENV"
    fi
fi

echo "python-env: installing ${REQ#"$ROOT"/} into $NAME" >&2
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$VENV/bin/python" -m pip install -q -r "$REQ" >"$log" 2>&1; then
    cat "$log" >&2
    echo "python-env: pip install failed" >&2
    exit 1
fi
echo "$want" >"$STAMP"
echo "python-env: $NAME ready ($("$VENV/bin/python" --version))" >&2
