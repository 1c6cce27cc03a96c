#!/usr/bin/env bash
# Owns: building the WebAssembly npm package in crates/wasm/npm (its wasm/ folder, gitignored):
#   wasm/full   every model (networks on tract, SIMD128), imported as `ferroserve`
#   wasm/trees  tree ensembles and linear models only, imported as `ferroserve/trees`
# Each is `cargo build --target wasm32-unknown-unknown` then wasm-bindgen `--target web`, whose
# output runs in browsers and (through the package's loader) in Node. Prints each module's size,
# raw and gzipped.
# Usage: scripts/build-wasm.sh [--profile PROFILE] [full|trees]...
#   The default profile, `wasm`, is the shipped build (Cargo.toml: LTO, one codegen unit, small
#   code except tract's kernels); tests use it too: a `dev`-like profile builds no faster, since
#   LTO with one codegen unit does less work than 256 units at opt-level 2 (5 min vs 4 here).
#   Honours CARGO_TARGET_DIR (.ci/run builds it beside the host build, in its own directory).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

profile=wasm
variants=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        full|trees) variants+=("$1"); shift ;;
        *) echo "build-wasm: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ ${#variants[@]} -gt 0 ]] || variants=(full trees)

bindgen="$(bash scripts/wasm-env.sh)"
out_root="crates/wasm/npm/wasm"
for variant in "${variants[@]}"; do
    features=()
    [[ "$variant" == trees ]] && features=(--no-default-features)
    echo "build-wasm: $variant (profile $profile)" >&2
    cargo build --quiet -p ferroserve-wasm --target wasm32-unknown-unknown --profile "$profile" "${features[@]}"
    rm -rf "${out_root:?}/$variant"
    "$bindgen" --target web --weak-refs --remove-name-section --remove-producers-section --out-name ferroserve_wasm --out-dir "$out_root/$variant" \
        "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$profile/ferroserve_wasm.wasm"
    wasm="$out_root/$variant/ferroserve_wasm_bg.wasm"
    printf 'build-wasm: %-5s %s: %s bytes, %s gzipped (-9)\n' "$variant" "$wasm" \
        "$(stat -c %s "$wasm")" "$(gzip -9 -c "$wasm" | wc -c)" >&2
done
