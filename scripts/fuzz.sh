#!/usr/bin/env bash
# Owns: building and running the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, ASan): the
# model-file parsers, and the network-facing decoders (V2 JSON and binary, TF Serving REST, gRPC).
# Installs cargo-fuzz into .tools/ on first use (pinned version). The machine's only toolchain
# is stable, so the sanitizer's -Z flags are allowed with RUSTC_BOOTSTRAP=1.
# Each parser target starts from a seed corpus of the committed fixtures, each decoder target
# from fuzz/seeds/<target> (fuzz/gen_seeds.py); both copied, never modified. A decoder target
# also fails on any single allocation over 64 MiB: its requests are limited to 1 MiB decoded.
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

# Runs target $1 from corpus $2 for the time given, extra libFuzzer flags after; fails on a crash.
run_target() {
    local target="$1" corpus="$2"
    shift 2
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s" >&2
    "$TOOLS/bin/cargo-fuzz" run -O --debug-assertions "$target" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 "$@" 2>&1 |
        grep -E "^(stat::number_of_executed_units|==|SUMMARY|.*panicked)" >&2 || true
    if [[ -d "artifacts/$target" ]] && compgen -G "artifacts/$target/*-*" >/dev/null; then
        echo "fuzz: $target found a crash: fuzz/artifacts/$target/" >&2
        exit 1
    fi
}

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
    run_target "$target" "$corpus" -max_len=262144
done

for target in v2_json v2_binary tf_serving grpc_infer_request; do
    corpus="$ROOT/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    cp -n "$ROOT/fuzz/seeds/$target"/* "$corpus/"
    run_target "$target" "$corpus" -max_len=65536 -malloc_limit_mb=64
done
echo "fuzz: no crashes" >&2
