#!/usr/bin/env bash
# Owns: building and running the parser fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, ASan).
# Installs cargo-fuzz into .tools/ on first use (pinned version). The machine's only toolchain
# is stable, so the sanitizer's -Z flags are allowed with RUSTC_BOOTSTRAP=1.
# Each target starts from a seed corpus of the committed fixtures (copied, never modified).
# Usage: scripts/fuzz.sh [SECONDS per target, default 30]   (0: build only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-30}"
CARGO_FUZZ_VERSION=0.13.2
TOOLS="$ROOT/.tools"

if [[ ! -x "$TOOLS/bin/cargo-fuzz" ]] || ! "$TOOLS/bin/cargo-fuzz" --version | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools" >&2
    cargo install --quiet --locked --root "$TOOLS" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
"$TOOLS/bin/cargo-fuzz" build -O --debug-assertions
[[ "$SECONDS_PER_TARGET" == 0 ]] && exit 0

fixtures="$ROOT/tests/fixtures/trees"
for target in xgboost_json xgboost_ubjson lightgbm_text; do
    corpus="$ROOT/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    for f in "$fixtures"/*/*/model.*; do
        case_name="$(basename "$(dirname "$f")")"
        case "$target:$f" in
            xgboost_json:*model.json | xgboost_ubjson:*model.ubj | lightgbm_text:*model.txt)
                cp -n "$f" "$corpus/$case_name.$(basename "$f")" ;;
        esac
    done
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s" >&2
    "$TOOLS/bin/cargo-fuzz" run -O --debug-assertions "$target" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=262144 -print_final_stats=1 2>&1 |
        grep -E "^(stat::number_of_executed_units|==|SUMMARY|.*panicked)" >&2 || true
    if [[ -d "artifacts/$target" ]] && compgen -G "artifacts/$target/crash-*" >/dev/null; then
        echo "fuzz: $target found a crash: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: no crashes" >&2
