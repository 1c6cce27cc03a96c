"""Client-conformance suite: ferroserve driven by the real Triton client, `tritonclient.http`.

Owns: the checks that ferroserve's KServe V2 / Triton HTTP front-end answers what
tritonclient (2.73.0, pinned in scripts/requirements.txt) sends and expects, on the bundled
example repository (examples/models), with results compared to the oracles in examples/oracles
(FP32 within rtol 1e-5 + atol 1e-6, INT64 exact).

The suite starts the server binary itself:
    $FERROSERVE_BIN serve --model-repository DIR --http-port 0 --grpc-port 0 --host 127.0.0.1 [--model-control explicit]
FERROSERVE_BIN defaults to target/debug/ferroserve (relative to the repo root). The port is read
from the log line "listening on http://127.0.0.1:PORT" (stderr or stdout), then
/v2/health/ready is polled until 200. Teardown sends SIGTERM and waits.

Run: .venv/bin/python -m pytest -q tests/conformance/test_tritonclient.py
(tests/conformance/run.sh sets everything up and runs it.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from harness import MODELS, MODELS_DIR, NP_DTYPE, ORACLE, ORACLES_DIR, ROOT, Server, assert_output, bearer

def make_input(model: str, x: np.ndarray | None = None, binary: bool = True) -> httpclient.InferInput:
    o = ORACLE[model]
    x = o.x if x is None else x
    inp = httpclient.InferInput(o.input_name, list(x.shape), o.input_datatype)
    inp.set_data_from_numpy(x, binary_data=binary)
    return inp


@pytest.fixture(scope="module")
def server():
    """Default model control: every model of examples/models loaded at start."""
    s = Server(MODELS_DIR)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def explicit_server(tmp_path_factory):
    """--model-control explicit, on a private copy of examples/models."""
    repo = tmp_path_factory.mktemp("repo") / "models"
    shutil.copytree(MODELS_DIR, repo)
    s = Server(repo, explicit=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def explicit_client(explicit_server):
    c = explicit_server.client()
    yield c
    c.close()


def raises_server_error(fn, *args, **kwargs) -> InferenceServerException:
    """Call fn, expect an InferenceServerException carrying a decoded {"error": ...} body."""
    with pytest.raises(InferenceServerException) as ei:
        fn(*args, **kwargs)
    e = ei.value
    msg = e.message() or ""
    assert "exception occurred in the client while decoding" not in msg, \
        f"error body is not JSON {{\"error\": ...}}: {msg}"
    status = e.status()
    assert status is None or str(status).startswith(("4", "5")), f"status {status}"
    return e


# ----------------------------------------------------------------------------- health / metadata
def test_server_live(client):
    assert client.is_server_live()


def test_server_ready(client):
    assert client.is_server_ready()


@pytest.mark.parametrize("model", MODELS)
def test_model_ready(client, model):
    assert client.is_model_ready(model)
    assert client.is_model_ready(model, "1")


def test_unknown_model_not_ready(client):
    assert not client.is_model_ready("no_such_model")


def test_server_metadata(client):
    md = client.get_server_metadata()
    assert isinstance(md.get("name"), str) and md["name"]
    assert isinstance(md.get("version"), str) and md["version"]
    ext = md.get("extensions")
    assert isinstance(ext, list)
    for e in ("binary_tensor_data", "model_configuration", "model_repository", "statistics"):
        assert e in ext, f"extension {e!r} missing from {ext}"


@pytest.mark.parametrize("model", MODELS)
def test_model_metadata(client, model):
    o = ORACLE[model]
    md = client.get_model_metadata(model)
    assert md["name"] == model
    if "versions" in md:
        assert "1" in md["versions"]
    assert [i["name"] for i in md["inputs"]] == [o.input_name]
    (inp,) = md["inputs"]
    assert inp["datatype"] == o.input_datatype
    assert [int(d) for d in inp["shape"]] == [-1, *o.x.shape[1:]]
    outs = {t["name"]: t for t in md["outputs"]}
    assert sorted(outs) == sorted(o.outputs)
    for name, (datatype, want) in o.outputs.items():
        assert outs[name]["datatype"] == datatype, name
        assert [int(d) for d in outs[name]["shape"]] == [-1, *want.shape[1:]], name
    # the versioned path answers the same
    assert client.get_model_metadata(model, "1")["name"] == model


@pytest.mark.parametrize("model", MODELS)
def test_model_config(client, model):
    o = ORACLE[model]
    cfg = client.get_model_config(model)
    cfg = cfg.get("config", cfg)  # the gRPC-shaped wrapper is tolerated
    assert cfg["name"] == model
    assert int(cfg["max_batch_size"]) > 0
    (inp,) = cfg["input"]
    assert inp["name"] == o.input_name
    assert inp["data_type"] == "TYPE_FP32"
    assert [int(d) for d in inp["dims"]] == list(o.x.shape[1:])
    out_types = {t["name"]: t["data_type"] for t in cfg["output"]}
    assert out_types == {n: "TYPE_" + dt for n, (dt, _) in o.outputs.items()}


def test_unknown_model_metadata_errors(client):
    e = raises_server_error(client.get_model_metadata, "no_such_model")
    assert "no_such_model" in e.message()


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("model", MODELS)
def test_infer_all_outputs(client, model, binary):
    o = ORACLE[model]
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in o.output_names]
    res = client.infer(model, [make_input(model, binary=binary)], outputs=outputs)
    resp = res.get_response()
    assert resp["model_name"] == model
    assert [t["name"] for t in resp["outputs"]] == o.output_names
    for t in resp["outputs"]:
        if binary:
            assert "data" not in t and int(t["parameters"]["binary_data_size"]) > 0, t
        else:
            assert "data" in t, t
    for n in o.output_names:
        assert_output(model, n, res.as_numpy(n))


@pytest.mark.parametrize("model", MODELS)
def test_infer_defaults(client, model):
    """tritonclient defaults: binary input, no outputs listed (server returns all outputs)."""
    res = client.infer(model, [make_input(model)])
    assert res.get_response()["model_name"] == model
    for n in ORACLE[model].output_names:
        assert_output(model, n, res.as_numpy(n))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("model,output", [
    ("digits_mlp", "probabilities"), ("digits_mlp", "label"),
    ("iris_logreg", "label"), ("iris_logreg", "probabilities"),
])
def test_infer_one_of_two_outputs(client, model, output, binary):
    res = client.infer(model, [make_input(model, binary=binary)],
                       outputs=[httpclient.InferRequestedOutput(output, binary_data=binary)])
    names = [t["name"] for t in res.get_response()["outputs"]]
    assert names == [output]
    assert_output(model, output, res.as_numpy(output))
    (other,) = [n for n in ORACLE[model].output_names if n != output]
    assert res.as_numpy(other) is None


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_batch_1_rows(client, binary):
    """One request per row, as perf_analyzer sends them."""
    model = "digits_mlp"
    o = ORACLE[model]
    for i in range(o.x.shape[0]):
        res = client.infer(model, [make_input(model, o.x[i:i + 1], binary=binary)],
                           outputs=[httpclient.InferRequestedOutput(n, binary_data=binary) for n in o.output_names])
        for n in o.output_names:
            assert_output(model, n, res.as_numpy(n), rows=slice(i, i + 1))


def test_infer_versioned_and_request_id(client):
    model = "iris_logreg"
    res = client.infer(model, [make_input(model)], model_version="1", request_id="req-42")
    resp = res.get_response()
    assert resp["model_name"] == model
    assert resp.get("id") == "req-42"
    assert str(resp.get("model_version", "1")) == "1"
    for n in ORACLE[model].output_names:
        assert_output(model, n, res.as_numpy(n))


def test_async_infer_concurrent(server):
    """8 connections, 32 in-flight batch-1 requests (tritonclient's async_infer)."""
    model = "digits_mlp"
    o = ORACLE[model]
    with server.client(concurrency=8) as c:
        reqs = []
        for k in range(32):
            i = k % o.x.shape[0]
            reqs.append((i, c.async_infer(model, [make_input(model, o.x[i:i + 1])])))
        for i, r in reqs:
            res = r.get_result(timeout=30)
            for n in o.output_names:
                assert_output(model, n, res.as_numpy(n), rows=slice(i, i + 1))


@pytest.mark.parametrize("model", MODELS)
def test_raw_request_json_matches_expected(server, model):
    """POST examples/oracles/<model>/request.json as is; compare with expected.json."""
    o = ORACLE[model]
    body = json.dumps(o.request_body).encode()
    req = urllib.request.Request(f"{server.base_url}/v2/models/{model}/infer", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
        resp = json.loads(r.read())
    assert resp["model_name"] == model
    got = {t["name"]: t for t in resp["outputs"]}
    assert list(got) == o.output_names
    for name, (datatype, want) in o.outputs.items():
        t = got[name]
        assert t["datatype"] == datatype
        assert [int(d) for d in t["shape"]] == list(want.shape)
        arr = np.asarray(t["data"], dtype=NP_DTYPE[datatype]).reshape(want.shape)
        assert_output(model, name, arr)


# ----------------------------------------------------------------------------- statistics / repository
def _model_stats(c, model) -> dict:
    stats = c.get_inference_statistics(model)
    entries = [s for s in stats["model_stats"] if s["name"] == model]
    assert entries, f"no stats entry for {model}: {stats}"
    return entries[0]


def test_inference_statistics(client):
    model = "iris_logreg"
    before = _model_stats(client, model)
    for _ in range(3):
        client.infer(model, [make_input(model)])
    after = _model_stats(client, model)
    assert str(after["version"]) == "1"
    # perf_analyzer reads these with unchecked accessors: all must be present
    for key in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
                "cache_hit", "cache_miss"):
        assert {"count", "ns"} <= set(after["inference_stats"][key]), key
    assert int(after["inference_count"]) >= int(before["inference_count"]) + 3
    assert int(after["execution_count"]) > int(before["execution_count"])
    ok_before = int(before["inference_stats"]["success"]["count"])
    assert int(after["inference_stats"]["success"]["count"]) >= ok_before + 3
    assert int(after["inference_stats"]["compute_infer"]["ns"]) > 0
    # the all-models form lists every model
    names = {s["name"] for s in client.get_inference_statistics()["model_stats"]}
    assert set(MODELS) <= names


def test_model_repository_index(client):
    index = client.get_model_repository_index()
    assert isinstance(index, list), index
    by_name = {e["name"]: e for e in index}
    for model in MODELS:
        assert model in by_name, f"{model} missing from {index}"
        e = by_name[model]
        assert str(e["version"]) == "1", e
        assert e["state"] == "READY", e


def test_load_model_rejected_without_explicit_control(client):
    raises_server_error(client.load_model, "iris_logreg")
    assert client.is_model_ready("iris_logreg")


# ----------------------------------------------------------------------------- explicit model control
def test_explicit_unload_load(explicit_client):
    c = explicit_client
    model = "iris_logreg"
    assert c.is_server_live()
    c.load_model(model)  # loads it, or reloads it if the server loaded it at start
    assert c.is_model_ready(model)
    assert_output(model, "label", c.infer(model, [make_input(model)]).as_numpy("label"))

    c.unload_model(model)
    assert not c.is_model_ready(model)
    e = raises_server_error(c.infer, model, [make_input(model)])
    assert model in e.message()
    states = {x["name"]: x.get("state") for x in c.get_model_repository_index()}
    assert model in states and states[model] != "READY", states

    c.load_model(model)
    assert c.is_model_ready(model)
    res = c.infer(model, [make_input(model)])
    for n in ORACLE[model].output_names:
        assert_output(model, n, res.as_numpy(n))
    states = {x["name"]: x.get("state") for x in c.get_model_repository_index()}
    assert states[model] == "READY", states


def test_explicit_load_unknown_model_errors(explicit_client):
    e = raises_server_error(explicit_client.load_model, "no_such_model")
    assert "no_such_model" in e.message()


# ----------------------------------------------------------------------------- errors
def test_infer_unknown_model(client):
    e = raises_server_error(client.infer, "no_such_model", [make_input("digits_mlp")])
    assert "no_such_model" in e.message()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_wrong_shape(client, binary):
    x = np.zeros((1, 63), dtype=np.float32)
    e = raises_server_error(client.infer, "digits_mlp", [make_input("digits_mlp", x, binary=binary)])
    assert "input" in e.message().lower()


def test_infer_wrong_datatype(client):
    x = ORACLE["digits_mlp"].x.astype(np.float64)
    inp = httpclient.InferInput("input", list(x.shape), "FP64")
    inp.set_data_from_numpy(x)
    e = raises_server_error(client.infer, "digits_mlp", [inp])
    assert "input" in e.message().lower()


def test_infer_unknown_output(client):
    e = raises_server_error(client.infer, "digits_mlp", [make_input("digits_mlp")],
                            outputs=[httpclient.InferRequestedOutput("no_such_output")])
    assert "no_such_output" in e.message()


def test_server_survives_errors(client):
    assert client.is_server_live() and client.is_server_ready()
    res = client.infer("cnn", [make_input("cnn")])
    assert_output("cnn", "logits", res.as_numpy("logits"))


# ----------------------------------------------------------------------------- gRPC (tritonclient.grpc)
import tritonclient.grpc as grpcclient  # noqa: E402


@pytest.fixture(scope="module")
def grpc_client(server):
    assert server.grpc_port, f"the server logged no 'listening on grpc://' line:\n{server.logs()}"
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def explicit_grpc_client(explicit_server):
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{explicit_server.grpc_port}")
    yield c
    c.close()


def grpc_input(model: str, x: np.ndarray | None = None) -> grpcclient.InferInput:
    o = ORACLE[model]
    x = o.x if x is None else x
    inp = grpcclient.InferInput(o.input_name, list(x.shape), o.input_datatype)
    inp.set_data_from_numpy(x)
    return inp


def test_grpc_health_and_metadata(grpc_client):
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    for model in MODELS:
        assert grpc_client.is_model_ready(model)
        assert grpc_client.is_model_ready(model, "1")
    assert not grpc_client.is_model_ready("no_such_model")
    md = grpc_client.get_server_metadata(as_json=True)
    assert md["name"] == "ferroserve"
    assert "model_configuration" in md["extensions"]


@pytest.mark.parametrize("model", MODELS)
def test_grpc_model_metadata_and_config(grpc_client, model):
    o = ORACLE[model]
    md = grpc_client.get_model_metadata(model, as_json=True)
    assert md["name"] == model
    (inp,) = md["inputs"]
    assert inp["name"] == o.input_name and inp["datatype"] == o.input_datatype
    assert [int(d) for d in inp["shape"]] == [-1, *o.x.shape[1:]]
    cfg = grpc_client.get_model_config(model, as_json=True)["config"]
    assert cfg["name"] == model and int(cfg["max_batch_size"]) > 0
    (cin,) = cfg["input"]
    assert cin["data_type"] == "TYPE_FP32"
    assert [int(d) for d in cin["dims"]] == list(o.x.shape[1:])
    out_types = {t["name"]: t["data_type"] for t in cfg["output"]}
    assert out_types == {n: "TYPE_" + dt for n, (dt, _) in o.outputs.items()}


@pytest.mark.parametrize("model", MODELS)
def test_grpc_infer_matches_the_oracle(grpc_client, model):
    o = ORACLE[model]
    res = grpc_client.infer(model, [grpc_input(model)], request_id="g-1")
    assert res.get_response().id == "g-1"
    for name in o.output_names:
        assert_output(model, name, res.as_numpy(name))
    # one output asked for, one row
    name = o.output_names[-1]
    res = grpc_client.infer(model, [grpc_input(model, o.x[:1])],
                            outputs=[grpcclient.InferRequestedOutput(name)])
    assert [t.name for t in res.get_response().outputs] == [name]
    assert_output(model, name, res.as_numpy(name), rows=slice(0, 1))


def test_grpc_async_and_stream_infer(grpc_client):
    import queue

    o = ORACLE["digits_mlp"]
    done: queue.Queue = queue.Queue()
    for i in range(8):
        grpc_client.async_infer("digits_mlp", [grpc_input("digits_mlp", o.x[i:i + 1])],
                                callback=lambda result, error, i=i: done.put((i, result, error)))
    for _ in range(8):
        i, result, error = done.get(timeout=30)
        assert error is None, error
        assert_output("digits_mlp", "label", result.as_numpy("label"), rows=slice(i, i + 1))

    streamed: queue.Queue = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: streamed.put((result, error)))
    try:
        for i in range(3):
            grpc_client.async_stream_infer("digits_mlp", [grpc_input("digits_mlp", o.x[i:i + 1])],
                                           request_id=str(i))
        for i in range(3):
            result, error = streamed.get(timeout=30)
            assert error is None, error
            assert result.get_response().id == str(i)
            assert_output("digits_mlp", "label", result.as_numpy("label"), rows=slice(i, i + 1))
    finally:
        grpc_client.stop_stream()


def test_grpc_statistics_and_repository_index(grpc_client):
    grpc_client.infer("iris_logreg", [grpc_input("iris_logreg")])
    stats = grpc_client.get_inference_statistics("iris_logreg", as_json=True)
    (s,) = stats["model_stats"]
    assert s["name"] == "iris_logreg"
    assert int(s["inference_count"]) >= 16
    assert int(s["inference_stats"]["success"]["count"]) >= 1
    index = grpc_client.get_model_repository_index(as_json=True)
    names = {m["name"]: m for m in index["models"]}
    assert set(MODELS) <= set(names)
    assert all(names[m]["state"] == "READY" for m in MODELS)


def test_grpc_errors_name_the_problem(grpc_client):
    with pytest.raises(InferenceServerException) as e:
        grpc_client.infer("no_such_model", [grpc_input("iris_logreg")])
    assert "no_such_model" in e.value.message()
    assert "NOT_FOUND" in str(e.value.status())
    bad = ORACLE["iris_logreg"].x[:, :3].copy()
    with pytest.raises(InferenceServerException) as e:
        grpc_client.infer("iris_logreg", [grpc_input("iris_logreg", bad)])
    assert "INVALID_ARGUMENT" in str(e.value.status())
    assert "input" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        grpc_client.load_model("cnn")
    assert "explicit" in e.value.message()
    assert grpc_client.is_server_live()


def test_grpc_explicit_unload_load(explicit_grpc_client):
    c = explicit_grpc_client
    assert c.is_model_ready("cnn")
    c.unload_model("cnn")
    assert not c.is_model_ready("cnn")
    c.load_model("cnn")
    assert c.is_model_ready("cnn")
    res = c.infer("cnn", [grpc_input("cnn")])
    assert_output("cnn", ORACLE["cnn"].output_names[0], res.as_numpy(ORACLE["cnn"].output_names[0]))


def test_http_client_sends_its_key(keyed):
    server, keys = keyed
    with server.client() as c:
        # No key: 401, which tritonclient reports with the server's message.
        e = raises_server_error(c.infer, "iris_logreg", [make_input("iris_logreg")])
        assert "needs an API key" in str(e)
        # The key as a header: the oracle's answer.
        res = c.infer("iris_logreg", [make_input("iris_logreg")], headers=bearer(keys["iris"]))
        for name in ORACLE["iris_logreg"].output_names:
            assert_output("iris_logreg", name, res.as_numpy(name))
        assert c.is_model_ready("iris_logreg", headers=bearer(keys["iris"]))
        # The key is limited to iris_logreg; the read key may not infer.
        e = raises_server_error(c.infer, "digits_mlp", [make_input("digits_mlp")],
                                headers=bearer(keys["iris"]))
        assert "may not use model 'digits_mlp'" in str(e)
        e = raises_server_error(c.infer, "iris_logreg", [make_input("iris_logreg")],
                                headers=bearer(keys["read"]))
        assert "lacks the 'infer' scope" in str(e)
        # Statistics need `read`.
        stats = c.get_inference_statistics("iris_logreg", headers=bearer(keys["read"]))
        assert stats["model_stats"][0]["name"] == "iris_logreg"
        # Health needs nothing.
        assert c.is_server_live() and c.is_server_ready()


def test_grpc_client_sends_its_key(keyed):
    import grpc

    server, keys = keyed
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    try:
        with pytest.raises(InferenceServerException) as e:
            c.infer("iris_logreg", [grpc_input("iris_logreg")])
        assert e.value.status() == str(grpc.StatusCode.UNAUTHENTICATED)
        res = c.infer("iris_logreg", [grpc_input("iris_logreg")], headers=bearer(keys["iris"]))
        for name in ORACLE["iris_logreg"].output_names:
            assert_output("iris_logreg", name, res.as_numpy(name))
        with pytest.raises(InferenceServerException) as e:
            c.infer("digits_mlp", [grpc_input("digits_mlp")], headers=bearer(keys["iris"]))
        assert e.value.status() == str(grpc.StatusCode.PERMISSION_DENIED)
        assert c.is_server_live()
    finally:
        c.close()


def test_perf_analyzer_sends_its_key(keyed):
    """perf_analyzer -H passes the key on HTTP and gRPC (a key with `infer` and `read`: it reads
    statistics too); without it every request is refused."""
    server, keys = keyed
    pa = ROOT / ".tools" / "bin" / "perf_analyzer"
    if not pa.is_file():
        pytest.skip("perf_analyzer not installed (scripts/install-perf-analyzer.sh)")
    data = ORACLES_DIR / "iris_logreg" / "perf_input.json"
    for protocol, port in [("http", server.port), ("grpc", server.grpc_port)]:
        base = [str(pa), "-m", "iris_logreg", "-u", f"127.0.0.1:{port}", "-i", protocol,
                "--concurrency-range", "1", "--measurement-interval", "500", "-s", "50",
                "--max-trials", "8"]
        if data.is_file():
            base += ["--input-data", str(data)]
        ok = subprocess.run(base + ["-H", f"authorization: Bearer {keys['bench']}"],
                            capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0, f"{protocol}: {ok.stdout[-2000:]}{ok.stderr[-2000:]}"
        refused = subprocess.run(base, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0, f"{protocol}: perf_analyzer without the key succeeded"


def test_http_client_over_tls_with_a_client_certificate(tls_server):
    server, pki, bench_key = tls_server
    options = {"ca_certs": str(pki.ca_crt), "certfile": str(pki.client_crt), "keyfile": str(pki.client_key)}
    with httpclient.InferenceServerClient(url=server.url, ssl=True, ssl_options=options) as c:
        # The certificate alone lets it infer (its key file entry has `infer`, not `read`).
        res = c.infer("iris_logreg", [make_input("iris_logreg")])
        for name in ORACLE["iris_logreg"].output_names:
            assert_output("iris_logreg", name, res.as_numpy(name))
        e = raises_server_error(c.get_inference_statistics, "iris_logreg")
        assert "lacks the 'read' scope" in str(e)
        # A key sent on the same connection speaks for itself.
        stats = c.get_inference_statistics("iris_logreg", headers=bearer(bench_key))
        assert stats["model_stats"][0]["name"] == "iris_logreg"
    # Without a client certificate there is no connection at all.
    with httpclient.InferenceServerClient(url=server.url, ssl=True,
                                          ssl_options={"ca_certs": str(pki.ca_crt)}) as c:
        with pytest.raises(Exception):
            c.is_server_live()


def test_grpc_client_over_tls_with_a_client_certificate(tls_server):
    server, pki, _ = tls_server
    c = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}", ssl=True,
                                         root_certificates=str(pki.ca_crt),
                                         private_key=str(pki.client_key),
                                         certificate_chain=str(pki.client_crt))
    try:
        assert c.is_server_live()
        res = c.infer("iris_logreg", [grpc_input("iris_logreg")])
        for name in ORACLE["iris_logreg"].output_names:
            assert_output("iris_logreg", name, res.as_numpy(name))
    finally:
        c.close()


def test_perf_analyzer_over_tls(tls_server):
    """perf_analyzer's --ssl-* options on HTTP and gRPC, with its client certificate and a key."""
    server, pki, bench_key = tls_server
    pa = ROOT / ".tools" / "bin" / "perf_analyzer"
    if not pa.is_file():
        pytest.skip("perf_analyzer not installed (scripts/install-perf-analyzer.sh)")
    data = ORACLES_DIR / "iris_logreg" / "perf_input.json"
    ssl = {
        "http": ["--ssl-https-verify-peer", "1", "--ssl-https-verify-host", "2",
                 "--ssl-https-ca-certificates-file", str(pki.ca_crt),
                 "--ssl-https-client-certificate-file", str(pki.client_crt),
                 "--ssl-https-private-key-file", str(pki.client_key)],
        "grpc": ["--ssl-grpc-use-ssl", "--ssl-grpc-root-certifications-file", str(pki.ca_crt),
                 "--ssl-grpc-private-key-file", str(pki.client_key),
                 "--ssl-grpc-certificate-chain-file", str(pki.client_crt)],
    }
    for protocol, port in [("http", server.port), ("grpc", server.grpc_port)]:
        url = f"https://127.0.0.1:{port}" if protocol == "http" else f"127.0.0.1:{port}"
        cmd = [str(pa), "-m", "iris_logreg", "-u", url, "-i", protocol,
               "--concurrency-range", "1", "--measurement-interval", "500", "-s", "50",
               "--max-trials", "8", "-H", f"authorization: Bearer {bench_key}", *ssl[protocol]]
        if data.is_file():
            cmd += ["--input-data", str(data)]
        ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0, f"{protocol}: {ok.stdout[-2000:]}{ok.stderr[-2000:]}"
