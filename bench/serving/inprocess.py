#!/usr/bin/env python3
"""The "physical limit" reference of bench/serving/: the in-process onnxruntime call, one thread.

For each model, the median wall time of InferenceSession.run (1 intra-op thread, 1 inter-op,
sequential) on the benchmark's own rows at each batch size asked for, and the rows per second
that gives (batch / median). Run it pinned to the core the servers get (run.py does).

Also the batch-1 call after the core sat idle for --idle-gap-us (a sleep before each call), as
it runs in a server at concurrency 1, where the core idles between requests: on a virtual
machine the caches and the idle vCPU make that call much slower than a hot loop's.

Prints one JSON object: {"onnxruntime": version, "models": {model: {batch: {"median_us",
"rows_per_s", "calls"}, "b1_after_idle": {"gap_us", "median_us", "calls"}}}}.

Usage: .venv/bin/python bench/serving/inprocess.py --models mlp,cnn --batches 1,8,32 [--budget 1.5]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from gen_models import ort_session  # noqa: E402  (same folder: the one session setup)

DATA = pathlib.Path(__file__).resolve().parents[2] / "target" / "bench-models" / "serving"


def median_seconds(fn, budget, min_calls=20, idle_gap_s=0.0):
    for _ in range(3):
        fn()
    times = []
    deadline = time.perf_counter() + budget
    while len(times) < min_calls or time.perf_counter() < deadline:
        if idle_gap_s:
            time.sleep(idle_gap_s)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200_000:
            break
    return float(np.median(times)), len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds per (model, batch)")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--idle-gap-us", type=float, default=300.0,
                    help="idle time before each call of the batch-1 'after idle' figure; 0: skip")
    args = ap.parse_args()
    data = pathlib.Path(args.data)
    batches = sorted({int(b) for b in args.batches.split(",") if b})
    out = {"onnxruntime": ort.__version__, "models": {}}
    for m in [m for m in args.models.split(",") if m]:
        s = ort_session(data / "models" / m / "model.onnx")
        rows = np.load(data / "data" / m / "rows.npy")
        name = s.get_inputs()[0].name
        res = {}
        for b in batches:
            reps = -(-b // len(rows))
            x = np.ascontiguousarray(np.concatenate([rows] * reps)[:b])
            med, calls = median_seconds(lambda x=x: s.run(None, {name: x}), args.budget)
            res[str(b)] = {"median_us": med * 1e6, "rows_per_s": b / med, "calls": calls}
        if args.idle_gap_us > 0:
            x = np.ascontiguousarray(rows[:1])
            med, calls = median_seconds(lambda x=x: s.run(None, {name: x}), args.budget,
                                        idle_gap_s=args.idle_gap_us / 1e6)
            res["b1_after_idle"] = {"gap_us": args.idle_gap_us, "median_us": med * 1e6, "calls": calls}
        out["models"][m] = res
    print(json.dumps(out))


if __name__ == "__main__":
    main()
