#!/usr/bin/env bash
# Owns: the file tree of ferroserve's image, shared by scripts/build-image.sh (buildah) and the
# Containerfile (docker), so the two put in the same files: the binary at
# /usr/local/bin/ferroserve, ONNX Runtime at /usr/local/lib/libonnxruntime.so when given (a
# place ferroserve looks for it), every shared library those link at the path the dynamic
# loader finds it (found with ldd; the loader included; copied as files, since the host's links
# would dangle), /etc/passwd and /etc/group naming root and the server's user (65532), an empty
# /models, a /tmp, and the host's CA bundle at /etc/ssl/certs/ca-certificates.crt (where
# rustls finds it) for models in object storage over HTTPS. No shell, no package manager. The state folder, /var/lib/ferroserve, is
# not in the tree: it must belong to the server's user, and each builder creates it so.
#
# Usage: scripts/image-rootfs.sh BINARY DEST [LIBONNXRUNTIME]
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,/^set /p' "$0" | sed '$d' >&2
    exit 2
fi
binary="$1"
dest="$2"
ort="${3:-}"

# Stripped: symbols and debug info are for a debugger, not for the image.
install -D -s -m 0755 "$binary" "$dest/usr/local/bin/ferroserve"
elves=("$dest/usr/local/bin/ferroserve")
if [[ -n "$ort" ]]; then
    install -D -m 0755 "$(readlink -f "$ort")" "$dest/usr/local/lib/libonnxruntime.so"
    elves+=("$dest/usr/local/lib/libonnxruntime.so")
fi
for elf in "${elves[@]}"; do
    ldd "$elf" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'
done | sort -u | while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
done
mkdir -p "$dest/etc" "$dest/models" "$dest/tmp"
# Object stores (s3://, gs://, az://, https://) are reached over TLS, verified against these.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [[ ! -f "$ca_bundle" ]]; then
    echo "image-rootfs: no $ca_bundle (Debian's ca-certificates package)" >&2
    exit 1
fi
install -D -m 0644 "$ca_bundle" "$dest/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$dest/tmp"
printf '%s\n' "root:x:0:0:root:/root:/sbin/nologin" \
    "ferroserve:x:65532:65532:ferroserve:/var/lib/ferroserve:/sbin/nologin" >"$dest/etc/passwd"
printf '%s\n' "root:x:0:" "ferroserve:x:65532:" >"$dest/etc/group"
