#!/usr/bin/env bash
# Owns: .tools/onnxruntime/lib — the ONNX Runtime shared library ferroserve loads at run time
# (libonnxruntime.so.<version> and the libonnxruntime.so / .so.1 links), taken from the official
# `onnxruntime` wheel on PyPI. ferroserve finds it there when run from the checkout; elsewhere,
# copy the file next to the binary or pass --onnxruntime-lib.
#
# Usage: scripts/fetch-onnxruntime.sh            (env: ORT_VERSION=1.32.0, DEST=dir, PYTHON=python3)
# Re-running is a no-op once the library is in place. When the project's .venv already holds
# the same onnxruntime wheel, its copy is used; otherwise the wheel is downloaded with pip
# (manylinux_2_28 x86_64: glibc 2.28 or newer; the library does not depend on Python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORT_VERSION="${ORT_VERSION:-1.32.0}"
DEST="${DEST:-$ROOT/.tools/onnxruntime/lib}"
PYTHON="${PYTHON:-python3}"
LIB="libonnxruntime.so.${ORT_VERSION}"

link() {
    ln -sfn "$LIB" "$DEST/libonnxruntime.so"
    ln -sfn "$LIB" "$DEST/libonnxruntime.so.1"
}

if [[ -f "$DEST/$LIB" ]]; then
    link
    exit 0
fi
mkdir -p "$DEST"

venv_copy="$ROOT/.venv/lib/python3.11/site-packages/onnxruntime/capi/$LIB"
if [[ -f "$venv_copy" ]]; then
    cp "$venv_copy" "$DEST/$LIB.tmp"
    mv "$DEST/$LIB.tmp" "$DEST/$LIB"
    link
    echo "fetch-onnxruntime: copied $LIB from .venv into ${DEST#"$ROOT"/}" >&2
    exit 0
fi

case "$(uname -m)" in
    x86_64) platform=manylinux_2_28_x86_64 ;;
    aarch64) platform=manylinux_2_28_aarch64 ;;
    *) echo "fetch-onnxruntime: no onnxruntime wheel for $(uname -m)" >&2; exit 1 ;;
esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-onnxruntime: downloading onnxruntime $ORT_VERSION ($platform) from PyPI" >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip download "onnxruntime==${ORT_VERSION}" \
    --no-deps --only-binary=:all: --platform "$platform" \
    --python-version 3.11 --implementation cp --abi cp311 -d "$tmp" -q
whl="$(ls "$tmp"/onnxruntime-"${ORT_VERSION}"-*.whl)"
"$PYTHON" - "$whl" "$DEST" "$LIB" <<'PY'
import os, shutil, sys, zipfile
whl, dest, lib = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(f"onnxruntime/capi/{lib}") as src:
    out = os.path.join(dest, lib)
    with open(out + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)
PY
link
echo "fetch-onnxruntime: $LIB in ${DEST#"$ROOT"/}" >&2
