#!/usr/bin/env bash
# Owns: the Debian packages the checks run for real: buildah (the container image), nginx and
# redis-server (the scale-out test and the shared-state tests). Installs those missing, and
# stops the services the packages start: tests run their own, on ports they pick.
# Usage: scripts/install-debian-packages.sh   (as root; a no-op when all are present)
set -euo pipefail

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v redis-server >/dev/null || need+=(redis-server)
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || need+=(nginx-light)
[[ ${#need[@]} -eq 0 ]] && exit 0

echo "install-debian-packages: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
service nginx stop >/dev/null 2>&1 || true
service redis-server stop >/dev/null 2>&1 || true
