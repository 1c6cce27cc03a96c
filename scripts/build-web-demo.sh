#!/usr/bin/env bash
# Owns: the generated parts of the demo page examples/web (gitignored):
#   vendor/ferroserve/   the npm package (crates/wasm/npm, its wasm built by build-wasm.sh)
#   models/<name>/       iris_logreg and digits_mlp, by `ferroserve export --target web`
# Then `ferroserve serve --static examples/web` (or any static server) serves the page.
# Usage: scripts/build-web-demo.sh [--profile PROFILE]   (see build-wasm.sh)
#   env FERROSERVE_BIN: the ferroserve binary to export with (default: cargo build's debug one)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

profile_args=()
[[ "${1:-}" == --profile ]] && profile_args=(--profile "$2")
bash scripts/build-wasm.sh "${profile_args[@]}" full trees

bin="${FERROSERVE_BIN:-}"
if [[ -z "$bin" ]]; then
    cargo build --quiet -p ferroserve
    bin=target/debug/ferroserve
fi

web=examples/web
package=crates/wasm/npm
rm -rf "$web/vendor/ferroserve"
mkdir -p "$web/vendor/ferroserve"
cp "$package"/{package.json,index.js,index.d.ts,trees.js,trees.d.ts,model.js,types.d.ts} "$web/vendor/ferroserve/"
cp -r "$package/wasm" "$web/vendor/ferroserve/"
for model in iris_logreg digits_mlp; do
    rm -rf "${web:?}/models/$model"
    "$bin" export --target web --model "examples/models/$model" --output "$web/models/$model"
done
echo "build-web-demo: ready; serve it with: $bin serve --static $web" >&2
