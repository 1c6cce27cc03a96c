#!/usr/bin/env python3
"""Closed-loop gRPC load for bench/serving/: C coroutines on grpc.aio, each sending KServe V2
ModelInfer (batch 1, rows in raw_input_contents, as tritonclient sends them) and waiting for the
answer before sending the next. For servers perf_analyzer cannot drive (MLServer has no
ModelConfig RPC), and, for a same-tool comparison, for the others too.

Prints one JSON line: {"requests", "errors", "seconds", "infer_per_s", "p50_us", "p90_us",
"p99_us", "first_error"}. Latency is measured around each call (send to answer decoded).

Usage (the project venv: grpcio + tritonclient's generated V2 stubs):
  .venv/bin/python bench/serving/grpc_load.py --url 127.0.0.1:8001 --model mlp \
      --rows target/bench-models/serving/data/mlp/rows.npy --concurrency 8 --seconds 5
"""

import argparse
import asyncio
import json
import time

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

V2_OF_NUMPY = {np.dtype("float32"): "FP32", np.dtype("float64"): "FP64", np.dtype("int64"): "INT64"}


def requests_for(model, input_name, rows, outputs):
    reqs = []
    for r in rows:
        x = np.ascontiguousarray(r[None, ...])
        req = service_pb2.ModelInferRequest(model_name=model)
        t = req.inputs.add()
        t.name = input_name
        t.datatype = V2_OF_NUMPY[x.dtype]
        t.shape.extend(x.shape)
        req.raw_input_contents.append(x.tobytes())
        for name in outputs:
            req.outputs.add().name = name
        reqs.append(req)
    return reqs


async def run(args):
    rows = np.load(args.rows)
    reqs = requests_for(args.model, args.input, rows, args.output)
    limit = 256 * 1024 * 1024
    async with grpc.aio.insecure_channel(args.url, options=[
            ("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]) as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        lat, errors, first_error = [], 0, None
        state = {"recording": False, "stop": False}

        async def worker(k):
            nonlocal errors, first_error
            i = k
            while not state["stop"]:
                req = reqs[i % len(reqs)]
                i += args.concurrency
                t0 = time.perf_counter()
                try:
                    await stub.ModelInfer(req, timeout=args.timeout)
                except grpc.aio.AioRpcError as e:
                    if state["recording"]:
                        errors += 1
                        if first_error is None:
                            first_error = f"{e.code().name}: {e.details()}"
                    continue
                if state["recording"]:
                    lat.append(time.perf_counter() - t0)

        tasks = [asyncio.create_task(worker(k)) for k in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        state["recording"] = True
        t_start = time.perf_counter()
        await asyncio.sleep(args.seconds)
        state["recording"] = False
        elapsed = time.perf_counter() - t_start
        state["stop"] = True
        await asyncio.gather(*tasks, return_exceptions=True)
    us = np.asarray(lat) * 1e6
    pct = (lambda q: float(np.percentile(us, q))) if len(us) else (lambda q: None)
    print(json.dumps({"requests": len(lat), "errors": errors, "seconds": elapsed,
                      "infer_per_s": len(lat) / elapsed, "p50_us": pct(50), "p90_us": pct(90),
                      "p99_us": pct(99), "first_error": first_error}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--rows", required=True, help=".npy of input rows (no batch dim per row)")
    ap.add_argument("--input", default="input")
    ap.add_argument("--output", action="append", default=[], help="output to ask for (repeatable)")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
