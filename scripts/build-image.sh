#!/usr/bin/env bash
# Owns: building ferroserve's OCI image FROM scratch with buildah: the binary (profile `image`:
# LTO, no symbols) and the files scripts/image-rootfs.sh lays out around it (exactly the shared
# libraries it links, ONNX Runtime when asked, the non-root user 65532; no shell, no package
# manager), configured by the Containerfile's final stage (user, environment, ports,
# entrypoint), which builds the same image with docker.
#
# Usage: scripts/build-image.sh [--onnxruntime] [--binary PATH] [--tag NAME] [--archive FILE]
#   --onnxruntime   put ONNX Runtime in the image (scripts/fetch-onnxruntime.sh fetches it), as
#                   the binary's only ONNX engine; without it, the binary's only ONNX engine is
#                   tract, built in (each image carries one engine: neither needs the other)
#   --binary PATH   use this ferroserve binary instead of building one
#   --tag NAME      the local image name (default: localhost/ferroserve:latest,
#                   localhost/ferroserve:onnxruntime with --onnxruntime)
#   --archive FILE  also save the image as an OCI archive (a tar file) there
# Prints the image's uncompressed size (the files in its single layer) and the archive's size.
# Needs Debian's buildah (installed when missing) and root, as buildah's storage does.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

with_ort=0
binary=""
tag=""
archive=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --onnxruntime) with_ort=1 ;;
        --binary) binary="$2"; shift ;;
        --tag) tag="$2"; shift ;;
        --archive) archive="$2"; shift ;;
        *) echo "build-image: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done
if [[ -z "$tag" ]]; then
    tag=localhost/ferroserve:latest
    [[ $with_ort == 1 ]] && tag=localhost/ferroserve:onnxruntime
fi

command -v buildah >/dev/null || bash scripts/install-debian-packages.sh

if [[ -z "$binary" ]]; then
    # One ONNX engine, and without `files` (batch, profile, export): the server needs none.
    engine=tract
    [[ $with_ort == 1 ]] && engine=onnxruntime
    cargo build --profile image -p ferroserve --no-default-features --features "$engine" --quiet
    binary="${CARGO_TARGET_DIR:-target}/image/ferroserve"
fi

rootfs="$(mktemp -d)"
container=""
cleanup() {
    rm -rf "$rootfs" "$rootfs.settings"
    [[ -n "$container" ]] && buildah rm "$container" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [[ $with_ort == 1 ]]; then
    bash scripts/fetch-onnxruntime.sh
    bash scripts/image-rootfs.sh "$binary" "$rootfs" .tools/onnxruntime/lib/libonnxruntime.so
else
    bash scripts/image-rootfs.sh "$binary" "$rootfs"
fi

# The image's settings are the Containerfile's final stage, read here, so that the image built
# either way is configured the same. (HEALTHCHECK is Docker's own: OCI images have none, and
# Kubernetes probes the endpoints instead.)
python3 - Containerfile >"$rootfs.settings" <<'PY'
import json, shlex, sys

lines, current = [], ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if not current and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    lines.append(current + line)
    current = ""
final = max(i for i, l in enumerate(lines) if l.split()[0].upper() == "FROM")
args = []
for line in lines[final + 1:]:
    word, _, rest = line.strip().partition(" ")
    word, rest = word.upper(), rest.strip()
    if word in ("COPY", "HEALTHCHECK"):
        continue
    if word == "USER":
        args += ["--user", rest]
    elif word == "WORKDIR":
        args += ["--workingdir", rest]
    elif word == "ENV":
        args += ["--env", rest]
    elif word == "EXPOSE":
        for port in rest.split():
            args += ["--port", port]
    elif word == "VOLUME":
        args += ["--volume", rest]
    elif word == "LABEL":
        for pair in shlex.split(rest):
            args += ["--label", pair]
    elif word in ("ENTRYPOINT", "CMD"):
        json.loads(rest)  # the exec form only
        args += ["--" + word.lower(), rest]
    else:
        sys.exit(f"build-image: Containerfile: {word} in the final stage is not handled here")
sys.stdout.write("\0".join(args) + "\0")
PY
mapfile -d '' settings <"$rootfs.settings"

version="$("$binary" --version | awk '{print $2}')"
container="$(buildah from scratch)"
buildah copy --quiet "$container" "$rootfs" / >/dev/null
# buildah copy gives what it copies to root; the state folder belongs to the server's user.
state="$(buildah mount "$container")/var/lib/ferroserve"
mkdir -p "$state"
chown 65532:65532 "$state"
buildah umount "$container" >/dev/null
buildah config "${settings[@]}" \
    --label org.opencontainers.image.version="$version" \
    --label io.ferroserve.onnxruntime="$([[ $with_ort == 1 ]] && echo yes || echo no)" \
    "$container"
buildah commit --quiet --format oci --rm "$container" "$tag" >/dev/null
container=""

bytes="$(du -sb --apparent-size "$rootfs" | cut -f1)"
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo "build-image: $tag: $(mb "$bytes") uncompressed ($bytes bytes), ONNX Runtime $([[ $with_ort == 1 ]] && echo included || echo "not included")" >&2
if [[ -n "$archive" ]]; then
    rm -f "$archive"
    buildah push --quiet "$tag" "oci-archive:$archive:$tag" >/dev/null
    echo "build-image: $archive: $(mb "$(stat -c %s "$archive")") as an OCI archive (gzip layers)" >&2
fi
