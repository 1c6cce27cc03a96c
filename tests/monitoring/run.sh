#!/usr/bin/env bash
# A real Prometheus server (Debian's package, installed here when missing) scrapes a real
# ferroserve and answers queries about what it scraped; then headless Chromium (Debian's
# package, likewise) opens the dashboard. Used by .ci/run.
#   FERROSERVE_BIN   the binary to test (default target/debug/ferroserve)
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
    echo "installing Debian's ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The package's service must not be the one we query: it is never started here (no init),
# and ours listens on a port of its own.
python3 tests/monitoring/prometheus_scrape.py "${FERROSERVE_BIN:-target/debug/ferroserve}"
python3 tests/monitoring/dashboard.py "${FERROSERVE_BIN:-target/debug/ferroserve}"
