#!/usr/bin/env bash
# Owns: the toolchain pieces the WebAssembly build needs, all project-local or rustup-managed:
#   - the wasm32-unknown-unknown target of the pinned Rust toolchain (rustup target add),
#   - wasm-bindgen-cli at exactly the version of the `wasm-bindgen` crate in Cargo.lock, in
#     .tools/wasm-bindgen/bin (cargo install; ~3 min the first time, a no-op afterwards).
# Prints the wasm-bindgen binary's path on stdout.
# Usage: scripts/wasm-env.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "wasm-env: adding the wasm32-unknown-unknown target" >&2
    rustup target add wasm32-unknown-unknown >&2
fi

# The CLI must match the crate exactly: it reads a schema the macro wrote into the module.
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
[[ -n "$version" ]] || { echo "wasm-env: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
TOOLS="$ROOT/.tools/wasm-bindgen"
BIN="$TOOLS/bin/wasm-bindgen"
if [[ ! -x "$BIN" ]] || [[ "$("$BIN" --version)" != "wasm-bindgen $version" ]]; then
    echo "wasm-env: installing wasm-bindgen-cli $version into ${TOOLS#"$ROOT"/}" >&2
    # Not --locked: its lock file pins webpki-roots 1.0.11, which the registry this machine
    # reaches does not serve. A debug-ish profile halves the build; the CLI's speed
    # on a few-MB module does not matter.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=false \
        cargo install --quiet wasm-bindgen-cli --version "=$version" --root "$TOOLS" >&2
fi
echo "$BIN"
