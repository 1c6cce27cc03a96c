#!/usr/bin/env bash
# Owns: the client-side checks of the WebAssembly build.
#   1. builds the npm package (both builds) and the demo page's generated parts
#      (scripts/build-web-demo.sh),
#   2. runs the package's Node tests: the shared numeric conformance cases and the API,
#   3. type-checks a TypeScript use of the package against its .d.ts files,
#   4. opens the demo page in headless Chromium (Debian's package, installed here when
#      missing; playwright-core from examples/web's lock file) and checks it predicts.
# Usage: scripts/test-web.sh     env: FERROSERVE_BIN (the binary serving the page)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/build-web-demo.sh

echo "test-web: the package in Node" >&2
node --test crates/wasm/npm/test/

if ! command -v chromium >/dev/null; then
    [[ $EUID -eq 0 ]] || { echo "test-web: Chromium is missing; install Debian's chromium package" >&2; exit 1; }
    echo "test-web: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
(cd examples/web && npm ci --no-audit --no-fund --loglevel=error)

echo "test-web: the package's TypeScript types (tsc --noEmit on examples/web/test/types.ts)" >&2
(cd examples/web && npx tsc -p tsconfig.json)

echo "test-web: the demo page in headless Chromium" >&2
CHROMIUM="$(command -v chromium)" node --test examples/web/test/
