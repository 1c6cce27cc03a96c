#!/usr/bin/env bash
# Owns: the check that the committed example models and oracles are what scripts/gen_models.py
# produces (same training libraries, same seeds): it regenerates them in place and fails if
# git sees any difference.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/gen_models.sh >/dev/null
if ! git diff --exit-code --stat -- examples/; then
    echo "check-oracles: regenerated examples differ from the committed ones (run scripts/gen_models.sh and commit)" >&2
    exit 1
fi
if [[ -n "$(git status --porcelain -- examples/)" ]]; then
    git status --porcelain -- examples/ >&2
    echo "check-oracles: the generator wrote files that are not committed" >&2
    exit 1
fi
echo "check-oracles: examples reproduce exactly"
