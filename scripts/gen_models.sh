#!/usr/bin/env bash
# Owns: nothing of its own; regenerates examples/models and examples/oracles by running
# scripts/gen_models.py in the project venv (creating the venv first if needed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/python-env.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/gen_models.py" "$@"
