#!/usr/bin/env bash
# Owns: the scale-out check: three ferroserve replicas on loopback behind Debian's nginx, with
# Debian's redis-server as the bandits' shared state (scripts/install-debian-packages.sh
# installs both when missing); see
# tests/scaleout/run.py for what is checked.
# Usage: tests/scaleout/run.sh   (env: FERROSERVE_BIN [target/debug/ferroserve], ROUNDS [5000])
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

bash scripts/install-debian-packages.sh
exec python3 tests/scaleout/run.py --bin "${FERROSERVE_BIN:-target/debug/ferroserve}" --rounds "${ROUNDS:-5000}"
