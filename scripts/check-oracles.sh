#!/usr/bin/env bash
# Owns: the check that the committed example models, oracles and tree fixtures are what
# scripts/gen_models.py, scripts/gen_tree_fixtures.py and scripts/gen_drift_oracle.py produce (same training libraries, same
# seeds): it regenerates them in place and fails if git sees any difference beyond the last
# float bits of an oracle (scripts/compare_regenerated.py), restoring the committed files.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/gen_models.sh >/dev/null
.venv/bin/python scripts/gen_tree_fixtures.py >/dev/null
.venv/bin/python scripts/gen_drift_oracle.py >/dev/null
for dir in examples tests/fixtures; do
    changed="$(git diff --name-only -- "$dir")"
    if [[ -n "$changed" ]]; then
        # Training is pinned to one BLAS kernel set (the generators set OPENBLAS_CORETYPE), but
        # onnxruntime picks its kernels by CPU too: an oracle computed on an AVX-512 machine can
        # differ in its last float bits. Only that is accepted; then the committed files return.
        # shellcheck disable=SC2086
        if ! .venv/bin/python scripts/compare_regenerated.py $changed; then
            git diff --stat -- "$dir"
            echo "check-oracles: regenerated $dir differs from the committed files (rerun the generators and commit)" >&2
            exit 1
        fi
        # shellcheck disable=SC2086
        git checkout -- $changed
    fi
    if [[ -n "$(git status --porcelain -- "$dir")" ]]; then
        git status --porcelain -- "$dir" >&2
        echo "check-oracles: a generator wrote files under $dir that are not committed" >&2
        exit 1
    fi
done
echo "check-oracles: examples and fixtures reproduce (exactly, or to the last float bits where listed above)"
