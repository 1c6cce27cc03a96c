#!/usr/bin/env python3
"""The "custom web server wrapping the framework" baseline of bench/serving/: FastAPI + onnxruntime.

A KServe V2 HTTP server, one process, one uvicorn worker (uvloop + httptools, orjson), that runs
each model with an onnxruntime session of one intra-op thread, called inline in the request
handler (no batching: one request, one model call). It answers what perf_analyzer and tritonclient
need: health, server and model metadata, the Triton model-config
extension (GET /v2/models/{m}/config, without which perf_analyzer aborts), and infer with JSON
tensors and with the binary tensor extension (Inference-Header-Content-Length). No gRPC, no
statistics extension.

Usage (from the venv that bench/serving/setup.sh makes, .tools/bench/fastapi):
  python bench/serving/fastapi_server.py --port 8000 --model mlp=path/to/model.onnx [...]
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import orjson  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402

V2_OF_NUMPY = {np.dtype(k): v for k, v in {
    "float32": "FP32", "float64": "FP64", "float16": "FP16", "int64": "INT64", "int32": "INT32",
    "int16": "INT16", "int8": "INT8", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
    "uint64": "UINT64", "bool": "BOOL"}.items()}
NUMPY_OF_V2 = {v: k for k, v in V2_OF_NUMPY.items()}
V2_OF_ORT = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
             "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(int16)": "INT16",
             "tensor(int8)": "INT8", "tensor(uint8)": "UINT8", "tensor(bool)": "BOOL"}


class ModelError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Model:
    def __init__(self, name, path, max_batch_size):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.name = name
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.max_batch_size = max_batch_size

        def spec(t):
            shape = [d if isinstance(d, int) else -1 for d in t.shape]
            return {"name": t.name, "datatype": V2_OF_ORT.get(t.type, t.type), "shape": shape}

        self.inputs = [spec(t) for t in self.session.get_inputs()]
        self.outputs = [spec(t) for t in self.session.get_outputs()]
        self.output_names = [o["name"] for o in self.outputs]
        self.metadata = orjson.dumps({"name": name, "versions": ["1"], "platform": "onnxruntime_onnx",
                                      "inputs": self.inputs, "outputs": self.outputs})

        def cfg(t):
            return {"name": t["name"], "data_type": "TYPE_" + t["datatype"], "dims": t["shape"][1:]}

        self.config = orjson.dumps({
            "name": name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
            "version_policy": {"latest": {"num_versions": 1}}, "max_batch_size": max_batch_size,
            "input": [cfg(t) for t in self.inputs], "output": [cfg(t) for t in self.outputs],
            "instance_group": [{"name": name, "kind": "KIND_CPU", "count": 1}],
            "default_model_filename": "model.onnx"})

    def infer(self, body: bytes, header_length):
        if header_length is not None:
            try:
                n = int(header_length)
            except ValueError:
                raise ModelError(400, "Inference-Header-Content-Length is not a number") from None
            if not 0 <= n <= len(body):
                raise ModelError(400, "Inference-Header-Content-Length is larger than the body")
            header, binary = body[:n], memoryview(body)[n:]
        else:
            header, binary = body, memoryview(b"")
        try:
            req = orjson.loads(header)
        except orjson.JSONDecodeError as e:
            raise ModelError(400, f"request is not JSON: {e}") from None
        feeds, offset = {}, 0
        for t in req.get("inputs", ()):
            dtype = NUMPY_OF_V2.get(t.get("datatype"))
            if dtype is None:
                raise ModelError(400, f"input {t.get('name')}: unsupported datatype {t.get('datatype')}")
            shape = t.get("shape", ())
            size = (t.get("parameters") or {}).get("binary_data_size")
            try:
                if size is not None:
                    arr = np.frombuffer(binary[offset:offset + size], dtype=dtype).reshape(shape)
                    offset += size
                else:
                    arr = np.asarray(t["data"], dtype=dtype).reshape(shape)
            except (KeyError, ValueError) as e:
                raise ModelError(400, f"input {t.get('name')}: {e}") from None
            feeds[t["name"]] = arr
        try:
            results = self.session.run(self.output_names, feeds)
        except Exception as e:
            raise ModelError(400, f"onnxruntime: {e}") from None
        by_name = dict(zip(self.output_names, results))
        default_binary = bool((req.get("parameters") or {}).get("binary_data_output", False))
        wanted = req.get("outputs") or [{"name": n} for n in self.output_names]
        outputs, blobs = [], []
        for o in wanted:
            arr = by_name.get(o.get("name"))
            if arr is None:
                raise ModelError(400, f"unknown output {o.get('name')}")
            arr = np.ascontiguousarray(arr)
            out = {"name": o["name"], "datatype": V2_OF_NUMPY[arr.dtype], "shape": list(arr.shape)}
            if (o.get("parameters") or {}).get("binary_data", default_binary):
                raw = arr.tobytes()
                out["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                out["data"] = arr.ravel()
            outputs.append(out)
        reply = {"model_name": self.name, "model_version": "1", "outputs": outputs}
        if "id" in req:
            reply["id"] = req["id"]
        text = orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY)
        if not blobs:
            return Response(text, media_type="application/json")
        return Response(b"".join([text, *blobs]), media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(len(text))})


def make_app(models):
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def error(status, message):
        return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")

    def json(payload):
        return Response(payload, media_type="application/json")

    @app.get("/v2/health/live")
    @app.get("/v2/health/ready")
    async def health():
        return Response(status_code=200)

    @app.get("/v2")
    async def server_metadata():
        return json(orjson.dumps({"name": "fastapi-onnxruntime", "version": ort.__version__,
                                  "extensions": ["binary_tensor_data", "model_configuration"]}))

    def lookup(model):
        m = models.get(model)
        if m is None:
            raise ModelError(404, f"unknown model '{model}'")
        return m

    @app.get("/v2/models/{model}")
    @app.get("/v2/models/{model}/versions/{version}")
    async def model_metadata(model: str, version: str = "1"):
        try:
            return json(lookup(model).metadata)
        except ModelError as e:
            return error(e.status, str(e))

    @app.get("/v2/models/{model}/ready")
    @app.get("/v2/models/{model}/versions/{version}/ready")
    async def model_ready(model: str, version: str = "1"):
        return Response(status_code=200 if model in models else 404)

    @app.get("/v2/models/{model}/config")
    @app.get("/v2/models/{model}/versions/{version}/config")
    async def model_config(model: str, version: str = "1"):
        try:
            return json(lookup(model).config)
        except ModelError as e:
            return error(e.status, str(e))

    @app.post("/v2/models/{model}/infer")
    @app.post("/v2/models/{model}/versions/{version}/infer")
    async def infer(model: str, request: Request, version: str = "1"):
        try:
            m = lookup(model)
            body = await request.body()
            return m.infer(body, request.headers.get("inference-header-content-length"))
        except ModelError as e:
            return error(e.status, str(e))

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH.onnx")
    ap.add_argument("--max-batch-size", type=int, default=64,
                    help="max_batch_size reported in the model config (the server takes any batch)")
    args = ap.parse_args()
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = Model(name, path, args.max_batch_size)
    uvicorn.run(make_app(models), host=args.host, port=args.port, loop="uvloop", http="httptools",
                workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
