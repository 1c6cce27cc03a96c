#!/usr/bin/env bash
# Owns: what TLS + an API key cost the server: the same release binary served plain and with
# --tls-cert/--tls-key/--api-keys, alternating RUNS times, digits_mlp batch 1, server pinned to
# CPU 0 and the client to CPU 1.
#   - h2load (nghttp2; light enough that the server is the bottleneck): HTTP/2 binary V2
#     inference and gRPC ModelInfer, 4 connections x 8 streams, 10 s each;
#   - perf_analyzer c32 (HTTP binary, gRPC): Triton's own client, which on two cores shares the
#     bottleneck with the server, its TLS included.
# Prints one line per run and the medians; certificates are made with openssl in a temp folder.
#
# Usage: bench/security.sh            (after `cargo build --release`; h2load: apt-get install
#                                      nghttp2-client; perf_analyzer: scripts/install-perf-analyzer.sh)
# Environment: FERROSERVE_BIN [target/release/ferroserve], RUNS [3], PA [1: also perf_analyzer]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${FERROSERVE_BIN:-target/release/ferroserve}"
RUNS="${RUNS:-3}"
PA_ON="${PA:-1}"
PA_BIN="$ROOT/.tools/bin/perf_analyzer"
command -v h2load >/dev/null || { echo "security.sh: h2load missing (apt-get install nghttp2-client)" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "security.sh: $BIN missing (cargo build --release)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'pkill -f "$WORK/keys.toml" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ssl() { openssl "$@" >/dev/null 2>&1; }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/ca.key" \
    -out "$WORK/ca.crt" -days 2 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
ssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/server.key" \
    -out "$WORK/server.csr" -subj "/CN=server"
printf "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" >"$WORK/server.ext"
ssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
    -out "$WORK/server.crt" -days 2 -extfile "$WORK/server.ext"
KEY=$("$BIN" keys add --file "$WORK/keys.toml" --name bench --scope infer,read 2>/dev/null)

# One digits_mlp row as a binary V2 body and as a gRPC ModelInfer message.
python3 - "$WORK" <<'EOF'
import json, struct, sys
work = sys.argv[1]
row = json.load(open("examples/oracles/digits_mlp/request.json"))["inputs"][0]["data"][:64]
raw = struct.pack("<64f", *map(float, row))
header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                 "parameters": {"binary_data_size": 256}}],
                     "parameters": {"binary_data_output": True}}).encode()
open(f"{work}/v2.bin", "wb").write(header + raw)
open(f"{work}/v2.len", "w").write(str(len(header)))
def field(n, wire, payload):  # protobuf, by hand: the fields a ModelInferRequest needs here
    key = bytes([n << 3 | wire])
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + varint(payload)
def varint(v):
    out = b""
    while True:
        b = v & 0x7F; v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v: return out
tensor = field(1, 2, b"input") + field(2, 2, b"FP32") + field(3, 2, varint(1) + varint(64))
message = field(1, 2, b"digits_mlp") + field(5, 2, tensor) + field(7, 2, raw)
open(f"{work}/grpc.bin", "wb").write(b"\0" + struct.pack(">I", len(message)) + message)
EOF

start() {  # start MODE -> server pid in $pid
    local extra=()
    [[ $1 == secure ]] && extra=(--api-keys "$WORK/keys.toml" --tls-cert "$WORK/server.crt" --tls-key "$WORK/server.key")
    taskset -c 0 "$BIN" serve --model-repository examples/models --http-port 18000 --grpc-port 18001 \
        --host 127.0.0.1 "${extra[@]}" >"$WORK/server-$1.log" 2>&1 &
    pid=$!
    sleep 1.5
}
h2() {  # h2 MODE PROTO -> req/s
    local scheme=http hdr=()
    [[ $1 == secure ]] && scheme=https && hdr=(-H "authorization: Bearer $KEY")
    local args=(-D 10 --warm-up-time=1 -c 4 -m 8 -t 1)
    if [[ $2 == http ]]; then
        taskset -c 1 h2load "${args[@]}" -d "$WORK/v2.bin" -H "content-type: application/octet-stream" \
            -H "inference-header-content-length: $(cat "$WORK/v2.len")" "${hdr[@]}" \
            "$scheme://127.0.0.1:18000/v2/models/digits_mlp/infer"
    else
        taskset -c 1 h2load "${args[@]}" -d "$WORK/grpc.bin" -H "content-type: application/grpc" \
            -H "te: trailers" "${hdr[@]}" "$scheme://127.0.0.1:18001/inference.GRPCInferenceService/ModelInfer"
    fi | awk '/^finished in/ {print $4}'
}
pa() {  # pa MODE PROTO -> infer/s
    local url=127.0.0.1:18000 extra=()
    [[ $2 == grpc ]] && url=127.0.0.1:18001
    if [[ $1 == secure ]]; then
        extra=(-H "authorization: Bearer $KEY")
        if [[ $2 == http ]]; then
            url="https://$url"
            extra+=(--ssl-https-verify-peer 1 --ssl-https-verify-host 2 --ssl-https-ca-certificates-file "$WORK/ca.crt")
        else
            extra+=(--ssl-grpc-use-ssl --ssl-grpc-root-certifications-file "$WORK/ca.crt")
        fi
    fi
    timeout 120 taskset -c 1 "$PA_BIN" -m digits_mlp -u "$url" -i "$2" \
        --input-data examples/oracles/digits_mlp/perf_input.json --concurrency-range 32 -p 1000 \
        -s 50 --max-trials 3 "${extra[@]}" 2>&1 | grep -o 'throughput: [0-9.]*' | tail -1 | cut -d' ' -f2
}

declare -A results
for run in $(seq "$RUNS"); do
    for mode in plain secure; do
        start "$mode"
        for proto in http grpc; do
            r=$(h2 "$mode" "$proto"); results["h2load $proto $mode"]+="$r "
            echo "run $run h2load $proto $mode: $r req/s"
            if [[ $PA_ON == 1 && -x $PA_BIN ]]; then
                r=$(pa "$mode" "$proto"); results["perf_analyzer $proto $mode"]+="$r "
                echo "run $run perf_analyzer $proto $mode: $r infer/s"
            fi
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
for tool in h2load perf_analyzer; do
    for proto in http grpc; do
        [[ -n "${results["$tool $proto plain"]:-}" ]] || continue
        p=$(echo "${results["$tool $proto plain"]}" | median)
        s=$(echo "${results["$tool $proto secure"]}" | median)
        echo "$tool $proto: median plain $p, TLS + key $s, change $(echo "($s/$p - 1)*100" | bc -l | cut -c1-5) %"
    done
done
