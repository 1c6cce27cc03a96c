#!/usr/bin/env bash
# Owns: <repo>/.tools/ (gitignored) — a private install of Triton's perf_analyzer 2.60.0.
#
# The PyPI wheel `perf-analyzer==2.60.0` is tagged manylinux_2_38 and its binary needs
# GLIBC_2.38 / GLIBCXX_3.4.32, newer than Debian 12's. So:
#   1. pip install --target .tools/perf-analyzer --platform manylinux_2_38_x86_64 --no-deps
#      --only-binary=:all: perf-analyzer==2.60.0   (bypasses pip's platform check)
#   2. apt-get download Debian trixie's libc6 libstdc++6 libgcc-s1 zlib1g libssl3t64 (+ libzstd1,
#      which trixie's libcrypto needs) through a PRIVATE apt configuration under .tools/apt
#      (APT_CONFIG: own sources list pointing at the trixie suite of the Debian mirror that
#      /etc/apt/sources.list* uses, own state/cache/config dirs, none of the system's apt.conf.d
#      hooks; the system's apt lists, cache and dpkg state are never touched), and unpack them
#      with dpkg-deb -x into .tools/trixie (never installed).
#   3. .tools/bin/perf_analyzer: wrapper running the binary through trixie's ld-linux with
#      --library-path pointing at the unpacked libs.
# Idempotent: re-running with everything in place only re-checks `perf_analyzer --help`.
# Needs: bash, python3 with pip (or PYTHON=...), apt-get, dpkg-deb, and PyPI + the Debian mirror.
# Usage: scripts/install-perf-analyzer.sh   (env: PYTHON=... interpreter whose pip to use;
#        DEBIAN_MIRROR=http://... to override the mirror taken from /etc/apt/sources.list*)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PA_VERSION="2.60.0"
PA_DIR="$TOOLS/perf-analyzer"
PA_BIN="$PA_DIR/perf_analyzer/bin/perf_analyzer"
APT_DIR="$TOOLS/apt"
LIBROOT="$TOOLS/trixie"
WRAPPER="$TOOLS/bin/perf_analyzer"
# libzstd1: trixie's libcrypto.so.3 (OpenSSL 3.5) needs libzstd.so.1 (found with ld.so --list).
DEBS=(libc6 libstdc++6 libgcc-s1 zlib1g libssl3t64 libzstd1)
STAMP="$TOOLS/.perf-analyzer.stamp"
STAMP_WANT="perf-analyzer=$PA_VERSION debs=${DEBS[*]} v3"

log() { echo "install-perf-analyzer: $*" >&2; }

check() {
    local out
    # perf_analyzer 2.60.0 has no --help option (the wrapper maps it to a bare run, which prints
    # the usage text and exits 99), so judge by the usage text, not the exit code.
    out="$("$WRAPPER" --help 2>&1)" || true
    if grep -q -- "--concurrency-range" <<<"$out" && "$WRAPPER" --version 2>&1 | grep -q "Perf Analyzer Version"; then
        return 0
    fi
    echo "$out" | tail -20 >&2
    return 1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_WANT" && -x "$WRAPPER" && -x "$PA_BIN" ]] && check; then
    exit 0
fi

mkdir -p "$TOOLS/bin"

# ---------------------------------------------------------------- 1. the wheel
if [[ ! -x "$PA_BIN" ]]; then
    PY="${PYTHON:-}"
    if [[ -z "$PY" ]]; then
        if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
    fi
    log "pip installing perf-analyzer==$PA_VERSION (manylinux_2_38 wheel) into .tools/perf-analyzer"
    rm -rf "$PA_DIR"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --target "$PA_DIR" \
        --platform manylinux_2_38_x86_64 --no-deps --only-binary=:all: \
        "perf-analyzer==$PA_VERSION"
    [[ -x "$PA_BIN" ]] || chmod +x "$PA_BIN"
fi

# ---------------------------------------------------------------- 2. trixie runtime libs
find_mirror() {
    # First URI in the machine's apt sources (deb822 .sources or one-line .list) whose suite is
    # the release codename itself (not -security / -updates). Falls back to deb.debian.org.
    local codename files
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && files+=("$f")
    done
    local uri=""
    if ((${#files[@]})); then
        uri="$(awk -v cn="$codename" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " cn " ") && uris != "" && out == "") {
                    split(uris, u, " "); out = u[1]
                }
                types = ""; suites = ""; uris = ""
            }
            FNR == 1 { flush() }
            FILENAME ~ /\.sources$/ {
                if ($0 ~ /^[ \t]*$/) { flush(); next }
                if ($1 == "Types:")  { $1 = ""; types = $0 }
                if ($1 == "URIs:")   { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
                if ($1 == "Suites:") { $1 = ""; suites = $0 }
                if ($1 == "Enabled:" && $2 == "no") { types = "" }
                next
            }
            /^[ \t]*deb[ \t]/ {
                flush()
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                if ($(i + 1) == cn && out == "") out = $i
            }
            END { flush(); print out }
        ' "${files[@]}")"
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

have_libs() {
    [[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" || -e "$LIBROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ]] &&
        [[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/libstdc++.so.6" ]] &&
        [[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/libssl.so.3" ]] &&
        [[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/libzstd.so.1" ]] &&
        [[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/libz.so.1" || -e "$LIBROOT/lib/x86_64-linux-gnu/libz.so.1" ]]
}

if ! have_libs; then
    MIRROR="${DEBIAN_MIRROR:-$(find_mirror)}"
    KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
    log "downloading trixie ${DEBS[*]} from $MIRROR (private apt config in .tools/apt)"
    rm -rf "$APT_DIR"
    mkdir -p "$APT_DIR"/{etc/apt.conf.d,etc/sources.list.d,etc/preferences.d,etc/trusted.gpg.d} \
        "$APT_DIR"/{state/lists/partial,cache/archives/partial,debs}
    : >"$APT_DIR/state/status"
    if [[ -f "$KEYRING" ]]; then
        echo "deb [signed-by=$KEYRING] $MIRROR trixie main" >"$APT_DIR/etc/sources.list"
    else
        echo "deb $MIRROR trixie main" >"$APT_DIR/etc/sources.list"
        cp -f /etc/apt/trusted.gpg.d/*.gpg "$APT_DIR/etc/trusted.gpg.d/" 2>/dev/null || true
    fi
    # Keep the machine's proxy settings, if any, and nothing else of its apt configuration (its
    # apt.conf.d hooks would otherwise run, e.g. docker-clean wiping /var/cache/apt/archives).
    proxies="$(apt-config dump 2>/dev/null | grep -E '^Acquire::(http|https|ftp)::Proxy' || true)"
    cat >"$APT_DIR/apt.conf" <<EOF
Dir::Etc "$APT_DIR/etc";
Dir::Etc::Main "apt.conf";
Dir::Etc::Parts "apt.conf.d";
Dir::Etc::SourceList "sources.list";
Dir::Etc::SourceParts "sources.list.d";
Dir::Etc::Preferences "preferences";
Dir::Etc::PreferencesParts "preferences.d";
Dir::Etc::TrustedParts "trusted.gpg.d";
Dir::State "$APT_DIR/state";
Dir::State::status "$APT_DIR/state/status";
Dir::Cache "$APT_DIR/cache";
Dir::Log "$APT_DIR/log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Debug::NoLocking "true";
$proxies
EOF
    export APT_CONFIG="$APT_DIR/apt.conf"
    aptlog="$APT_DIR/apt.log"
    if ! apt-get -q update >"$aptlog" 2>&1; then
        cat "$aptlog" >&2; log "apt-get update (private, trixie) failed"; exit 1
    fi
    if grep -qE '^(W|E):' "$aptlog"; then grep -E '^(W|E):' "$aptlog" >&2; fi
    if ! (cd "$APT_DIR/debs" && apt-get -q download "${DEBS[@]}" >>"$aptlog" 2>&1); then
        cat "$aptlog" >&2; log "apt-get download failed"; exit 1
    fi
    unset APT_CONFIG
    rm -rf "$LIBROOT"
    mkdir -p "$LIBROOT"
    for deb in "$APT_DIR"/debs/*.deb; do
        dpkg-deb -x "$deb" "$LIBROOT"
    done
    # the package lists are ~10 MB and only needed for the download
    rm -rf "$APT_DIR/state/lists" "$APT_DIR/cache"
    have_libs || { log "unpacked trixie packages lack the expected libraries"; exit 1; }
fi

# ---------------------------------------------------------------- 3. the wrapper
if [[ -e "$LIBROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ]]; then
    LDSO_REL="trixie/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
else
    LDSO_REL="trixie/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
fi
cat >"$WRAPPER" <<EOF
#!/usr/bin/env bash
# Generated by scripts/install-perf-analyzer.sh: runs perf_analyzer $PA_VERSION through Debian
# trixie's dynamic loader and libraries unpacked under .tools/trixie (never installed).
# perf_analyzer itself rejects --help/-h; a bare run prints its usage, so map them to that.
if [[ \$# -eq 1 && ( "\$1" == "--help" || "\$1" == "-h" ) ]]; then set --; fi
T="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/.." && pwd)"
L="\$T/trixie/usr/lib/x86_64-linux-gnu:\$T/trixie/lib/x86_64-linux-gnu"
exec "\$T/$LDSO_REL" --library-path "\$L" "\$T/perf-analyzer/perf_analyzer/bin/perf_analyzer" "\$@"
EOF
chmod +x "$WRAPPER"

# ---------------------------------------------------------------- 4. verify
# Every NEEDED library must resolve inside .tools/trixie (not silently from the host).
LDSO="$TOOLS/$LDSO_REL"
LP="$LIBROOT/usr/lib/x86_64-linux-gnu:$LIBROOT/lib/x86_64-linux-gnu"
deps="$("$LDSO" --library-path "$LP" --list "$PA_BIN" 2>&1)" || { echo "$deps" >&2; log "dependency check failed"; exit 1; }
if grep -q "not found" <<<"$deps"; then
    echo "$deps" >&2; log "perf_analyzer has unresolved libraries"; exit 1
fi
if grep -E '=> /' <<<"$deps" | grep -v -- "$LIBROOT" >&2; then
    log "warning: the libraries above resolve outside .tools/trixie"
fi
if ! check; then
    log "'.tools/bin/perf_analyzer --help' did not print its usage"; exit 1
fi
echo "$STAMP_WANT" >"$STAMP"
log "ready: .tools/bin/perf_analyzer ($PA_VERSION)"
