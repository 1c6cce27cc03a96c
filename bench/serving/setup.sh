#!/usr/bin/env bash
# Owns: <repo>/.tools/bench/ (gitignored) — everything the side-by-side serving benchmark's peers
# and load tools need, installed privately (never into the system, nothing on PATH):
#   triton/    venv: nvidia-pytriton 0.7.0 (its wheel ships a runnable Triton 2.51 `tritonserver`
#              with the python backend only) + numpy 1.26 + onnxruntime 1.32.0. It is also the
#              python backend stub's environment: with numpy 2 every output comes back empty
#              (the stub is built against numpy 1.x), so this venv pins numpy<2 and run.py puts its bin/ first
#              on the server's PATH.
#   triton-backends -> the wheel's pytriton/tritonserver/backends, Triton's --backend-directory:
#              the python backend plus the stub for this Python (python_backend_stubs/3.X/) copied
#              beside it, as PyTriton lays it out; bin/tritonserver -> the wheel's binary.
#   mlserver/  venv: Seldon MLServer 1.7.1 + mlserver-sklearn/-xgboost/-lightgbm, uvloop 0.21
#              (uvloop >= 0.22 kills every inference worker at start), scikit-learn 1.9.1,
#              lightgbm 4.7.0 and xgboost-cpu 3.2.0 (the versions that trained the models).
#              mlserver-xgboost asks for the 130 MB `xgboost` wheel (+350 MB of NCCL); the
#              CPU-only `xgboost-cpu` provides the same module, hence --no-deps installs.
#   fastapi/   venv: FastAPI + uvicorn + uvloop + httptools + orjson + onnxruntime 1.32.0, for
#              bench/serving/fastapi_server.py.
#   wrk/       Debian's wrk 4.1 and its LuaJIT, unpacked from `apt-get download` (never
#              installed); bin/wrk runs it with the unpacked libraries.
# Every venv is installed from a full lock file, bench/serving/requirements/<venv>.txt (pip freeze
# of a working install, transitive dependencies included), with --no-deps.
# Also runs scripts/python-env.sh (the project venv .venv: tritonclient, the model generators) and
# scripts/install-perf-analyzer.sh (.tools/bin/perf_analyzer).
# Idempotent: each part records a stamp (hash of its lock file + Python version) and is skipped
# when it matches.
# Usage: bench/serving/setup.sh     (env: PYTHON=python3.11 to pick the interpreter for the venvs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/serving"
TOOLS="$ROOT/.tools/bench"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

log() { echo "serving/setup: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$TOOLS/bin"

bash "$ROOT/scripts/python-env.sh"
bash "$ROOT/scripts/install-perf-analyzer.sh"

PYVER="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
PYFULL="$("$PYTHON" -c 'import sys; print(sys.version)')"

# venv NAME: (re)creates .tools/bench/NAME from requirements/NAME.txt unless its stamp matches.
venv() {
    local name="$1" dir="$TOOLS/$1" lock="$HERE/requirements/$1.txt" want
    want="$( { sha256sum "$lock" | cut -d' ' -f1; echo "$PYFULL"; } | sha256sum | cut -d' ' -f1)"
    if [[ -x "$dir/bin/python" && -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$want" ]]; then
        return 0
    fi
    log "installing .tools/bench/$name from bench/serving/requirements/$name.txt"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    local out
    out="$(mktemp)"
    if ! "$dir/bin/python" -m pip install -q --no-deps -r "$lock" >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"; die "pip install for $name failed"
    fi
    rm -f "$out"
    echo "$want" >"$dir/.stamp"
}

venv triton
venv mlserver
venv fastapi

# ---------------------------------------------------------------- Triton's backend directory
SITE="$("$TOOLS/triton/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TS="$SITE/pytriton/tritonserver"
[[ -x "$TS/bin/tritonserver" ]] || die "no tritonserver binary in the nvidia-pytriton wheel ($TS/bin)"
STUB="$TS/python_backend_stubs/$PYVER/triton_python_backend_stub"
[[ -f "$STUB" ]] || die "nvidia-pytriton has no python backend stub for Python $PYVER ($(ls "$TS/python_backend_stubs" | tr '\n' ' '))"
# PyTriton's own layout: the stub copied beside the backend (its RPATH is $ORIGIN-relative, so it
# must live at this depth of the wheel's tree), and --backend-directory pytriton/tritonserver/backends.
BK="$TS/backends/python"
install -m 0755 "$STUB" "$BK/triton_python_backend_stub"
ln -sfn "$TS/backends" "$TOOLS/triton-backends"
ln -sfn "$TS/bin/tritonserver" "$TOOLS/bin/tritonserver"
# The stub embeds libpython$PYVER: it must resolve (run.py adds the interpreter's LIBDIR).
PYLIBDIR="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
if LD_LIBRARY_PATH="$PYLIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$BK/triton_python_backend_stub" | grep -q "not found"; then
    LD_LIBRARY_PATH="$PYLIBDIR" ldd "$BK/triton_python_backend_stub" | grep "not found" >&2
    die "the Triton python backend stub has unresolved libraries (needs a shared libpython$PYVER)"
fi
help="$("$TOOLS/bin/tritonserver" --help 2>&1 || true)"
grep -q -- "--model-repository" <<<"$help" || { tail -5 <<<"$help" >&2; die "tritonserver --help failed"; }

# ---------------------------------------------------------------- wrk (Debian), unpacked
WRK_DEBS=(wrk libluajit2-5.1-2 libluajit2-5.1-common)
wrk_ok() { local v; v="$("$TOOLS/bin/wrk" --version 2>&1 || true)"; grep -q "^wrk " <<<"$v"; }
if ! wrk_ok; then
    log "fetching Debian's ${WRK_DEBS[*]} (apt-get download; unpacked under .tools/bench/wrk)"
    rm -rf "$TOOLS/wrk"
    mkdir -p "$TOOLS/wrk/debs"
    fetch() { (cd "$TOOLS/wrk/debs" && apt-get -q download "$@") >"$TOOLS/wrk/apt.log" 2>&1; }
    if ! fetch "${WRK_DEBS[@]}"; then
        # libluajit2 is bookworm's name; older releases call it libluajit-5.1-2
        if ! fetch wrk libluajit-5.1-2 libluajit-5.1-common; then
            if [[ $EUID -eq 0 ]]; then
                apt-get -q update >/dev/null 2>&1 || true
                fetch "${WRK_DEBS[@]}" || fetch wrk libluajit-5.1-2 libluajit-5.1-common ||
                    { cat "$TOOLS/wrk/apt.log" >&2; die "apt-get download wrk failed"; }
            else
                cat "$TOOLS/wrk/apt.log" >&2; die "apt-get download wrk failed (run apt-get update as root?)"
            fi
        fi
    fi
    for deb in "$TOOLS"/wrk/debs/*.deb; do dpkg-deb -x "$deb" "$TOOLS/wrk/root"; done
    cat >"$TOOLS/bin/wrk" <<'EOF'
#!/usr/bin/env bash
# Generated by bench/serving/setup.sh: Debian's wrk with its LuaJIT unpacked under .tools/bench/wrk.
T="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/wrk/root"
export LD_LIBRARY_PATH="$T/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$T/usr/bin/wrk" "$@"
EOF
    chmod +x "$TOOLS/bin/wrk"
    wrk_ok || { "$TOOLS/bin/wrk" --version >&2 || true; die "wrk does not run"; }
fi

log "ready: .tools/bench/{triton,mlserver,fastapi} venvs, Triton $("$TOOLS/triton/bin/python" -c 'import importlib.metadata as m; print("(nvidia-pytriton", m.version("nvidia-pytriton") + ")")'), $({ "$TOOLS/bin/wrk" --version 2>&1 || true; } | sed -n '1s/^\(wrk [^ ]*\).*/\1/p'), perf_analyzer"
