#!/usr/bin/env bash
# A real Prometheus server (Debian's package, installed here when missing) scrapes a real
# ferroserve and answers queries about what it scraped. Used by .ci/run.
#   FERROSERVE_BIN   the binary to test (default target/debug/ferroserve)
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v prometheus >/dev/null; then
    echo "installing Debian's prometheus package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# The package's service must not be the one we query: it is never started here (no init),
# and ours listens on a port of its own.
python3 tests/monitoring/prometheus_scrape.py "${FERROSERVE_BIN:-target/debug/ferroserve}"
