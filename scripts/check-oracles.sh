#!/usr/bin/env bash
# Owns: the check that the committed example models, oracles and tree fixtures are what
# scripts/gen_models.py, scripts/gen_tree_fixtures.py and scripts/gen_drift_oracle.py produce (same training libraries, same
# seeds): it regenerates them in place and fails if git sees any difference.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/gen_models.sh >/dev/null
.venv/bin/python scripts/gen_tree_fixtures.py >/dev/null
.venv/bin/python scripts/gen_drift_oracle.py >/dev/null
for dir in examples tests/fixtures; do
    if ! git diff --exit-code --stat -- "$dir"; then
        echo "check-oracles: regenerated $dir differs from the committed files (rerun the generators and commit)" >&2
        exit 1
    fi
    if [[ -n "$(git status --porcelain -- "$dir")" ]]; then
        git status --porcelain -- "$dir" >&2
        echo "check-oracles: a generator wrote files under $dir that are not committed" >&2
        exit 1
    fi
done
echo "check-oracles: examples and fixtures reproduce exactly"
