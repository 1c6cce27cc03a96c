#!/usr/bin/env bash
# Owns: the check that ferroserve's image works. Containers cannot start on these machines
# (podman's runtime may not set rlimits), so the image's root is mounted with `buildah mount`
# and its entrypoint run under chroot, as the image's user, with the image's environment:
# what `podman run` would do, less the namespaces. The check serves a model copied into
# /models (as a derived image would), answers a V2 request, serves /metrics on the metrics
# port, reports ready to its own health check (the Containerfile's HEALTHCHECK), exits 0 on
# SIGTERM, and finds no shell in the image.
#
# Usage: scripts/test-image.sh [IMAGE]   (default localhost/ferroserve:latest; build it with
#        scripts/build-image.sh first)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
image="${1:-localhost/ferroserve:latest}"

fail() { echo "test-image: FAIL: $*" >&2; exit 1; }

container="$(buildah from --pull-never "$image")"
mnt=""
server=""
cleanup() {
    [[ -n "$server" ]] && kill -9 "$server" 2>/dev/null || true
    [[ -n "$mnt" ]] && { umount "$mnt/proc" 2>/dev/null || true; buildah umount "$container" >/dev/null || true; }
    buildah rm "$container" >/dev/null 2>&1 || true
}
trap cleanup EXIT

buildah copy --quiet "$container" examples/models/iris_logreg /models/iris_logreg >/dev/null
mnt="$(buildah mount "$container")"

for shell in bin/sh bin/bash usr/bin/sh bin/busybox usr/bin/apt-get usr/bin/dpkg; do
    [[ ! -e "$mnt/$shell" ]] || fail "the image holds /$shell"
done

# The image's configuration: user, environment, entrypoint and command.
config="$(buildah inspect --type image "$image" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]))')"
read_config() { python3 -c "import json,sys; c=json.loads(sys.argv[1]); $1" "$config"; }
user="$(read_config 'print(c.get("User", ""))')"
[[ -n "$user" && "${user%%:*}" != 0 && "${user%%:*}" != root ]] || fail "the image runs as '$user', not as a non-root user"
for port in 8000/tcp 8001/tcp 8002/tcp; do
    read_config "sys.exit(0 if '$port' in c.get('ExposedPorts', {}) else 1)" \
        || fail "the image does not expose $port"
done
mapfile -t environment < <(read_config 'print("\n".join(c.get("Env", [])))')
mapfile -t command < <(read_config 'print("\n".join(c.get("Entrypoint", []) + c.get("Cmd", [])))')

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port="$(free_port)"
grpc_port="$(free_port)"
metrics_port="$(free_port)"

mkdir -p "$mnt/proc"
mount -t proc proc "$mnt/proc" 2>/dev/null || echo "test-image: /proc not mounted (not permitted here)" >&2
log="$(mktemp)"
env -i "${environment[@]}" FERROSERVE_HOST=127.0.0.1 FERROSERVE_HTTP_PORT="$http_port" \
    FERROSERVE_GRPC_PORT="$grpc_port" FERROSERVE_METRICS_PORT="$metrics_port" \
    "$(command -v chroot)" --userspec="$user" "$mnt" "${command[@]}" >"$log" 2>&1 &
server=$!
started="$(date +%s%N)"

base="http://127.0.0.1:$http_port"
ready=0
for _ in $(seq 1 600); do
    if curl -fsS "$base/v2/health/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if [[ $ready != 1 ]]; then
    cat "$log" >&2
    fail "the image's server did not become ready"
fi
echo "test-image: ready $(( ($(date +%s%N) - started) / 1000000 )) ms after start" >&2

answer="$(curl -fsS "$base/v2/models/iris_logreg/infer" \
    -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}')" \
    || { cat "$log" >&2; fail "the V2 request failed"; }
python3 -c '
import json, sys
answer = json.loads(sys.argv[1])
label = next(o for o in answer["outputs"] if o["name"] == "label")
assert label["data"] == [0], answer
' "$answer" || fail "unexpected V2 answer: $answer"
echo "test-image: V2 answer: $answer" >&2

# The Containerfile's HEALTHCHECK command, inside the image.
env -i "${environment[@]}" FERROSERVE_HTTP_PORT="$http_port" \
    "$(command -v chroot)" --userspec="$user" "$mnt" /usr/local/bin/ferroserve health \
    || fail "\`ferroserve health\` in the image did not report the server ready"

# Read whole, then searched: `curl | grep -q` fails under pipefail when grep stops reading.
metrics="$(curl -fsS "http://127.0.0.1:$metrics_port/metrics")" || fail "no answer on the metrics port"
grep -q '^ferroserve_request_duration_seconds_bucket' <<<"$metrics" \
    || fail "no request latency histogram on the metrics port"

kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
[[ $status == 0 ]] || { cat "$log" >&2; fail "the server exited with status $status after SIGTERM"; }
grep -q "listening on http://127.0.0.1:$http_port" "$log" || { cat "$log" >&2; fail "no listening line in the log"; }

size="$(buildah images --format '{{.Size}}' "$image" | head -1)"
echo "test-image: $image works: non-root ($user), no shell, V2 answer, health check, metrics, clean exit on SIGTERM; size $size" >&2
