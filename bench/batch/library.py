#!/usr/bin/env python3
"""The library baseline of the batch benchmark: a Parquet file scored by the model's own library.

Owns nothing on disk but the --output file. What a user writes without ferroserve: read the
Parquet in chunks with pyarrow (`ParquetFile.iter_batches(batch_size=...)`), turn each chunk
into a pandas DataFrame (`to_pandas()`), predict with the library on every core, and write `id`
plus the prediction with pyarrow's `ParquetWriter` (snappy). One chunk at a time, in order.

  --lib xgboost       xgboost Booster(model.json), nthread=THREADS, `inplace_predict(df)`:
                      the positive class's probability (float32)
  --lib lightgbm      lightgbm Booster(model_file=model.txt), `predict(df, num_threads=THREADS)`
                      (float64)
  --lib onnxruntime   onnxruntime InferenceSession(model.onnx), intra-op threads THREADS,
                      inter-op 1, on `df[features].to_numpy(float32)`: column 1 of
                      `probabilities` (float32), the onnxmltools conversions' second output

Prints one JSON object on stdout: rows, seconds (model load + read + predict + write, from
after the imports to the closed output file: Python's start and imports are not counted, the
wall clock of the whole process is measured by run.sh), rows_per_s, the phase times
(load, read = Parquet + to_pandas, predict, write), and the settings.

Usage: .venv-batch/bin/python bench/batch/library.py --lib xgboost \\
           --model target/bench-models/batch-repo/xgboost/1/model.json \\
           --input target/bench-data/batch/rows-10000000.parquet --output /tmp/out.parquet \\
           [--batch-rows 65536] [--threads 2] [--columns f0,...,f19]
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np
import pandas  # noqa: F401  (imported here, so the first to_pandas() does not pay for it)
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = [f"f{i}" for i in range(20)]


class Xgboost:
    def __init__(self, path, threads):
        import xgboost as xgb
        self.version = xgb.__version__
        self.booster = xgb.Booster(model_file=str(path))
        self.booster.set_param({"nthread": threads})

    def predict(self, df):
        return np.asarray(self.booster.inplace_predict(df), dtype=np.float32)


class Lightgbm:
    def __init__(self, path, threads):
        import lightgbm as lgb
        self.version = lgb.__version__
        self.booster = lgb.Booster(model_file=str(path))
        self.threads = threads

    def predict(self, df):
        return np.asarray(self.booster.predict(df, num_threads=self.threads), dtype=np.float64)


class Onnxruntime:
    def __init__(self, path, threads):
        import onnxruntime as ort
        self.version = ort.__version__
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if "probabilities" not in outputs:
            sys.exit(f"library: {path} has no `probabilities` output (outputs: {outputs}); "
                     "expected an onnxmltools conversion with zipmap off")
        self.output = "probabilities"

    def predict(self, df):
        x = df.to_numpy(dtype=np.float32)
        (p,) = self.session.run([self.output], {self.input: x})
        return np.ascontiguousarray(p[:, 1], dtype=np.float32)


LIBS = {"xgboost": Xgboost, "lightgbm": Lightgbm, "onnxruntime": Onnxruntime}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", choices=sorted(LIBS), required=True)
    ap.add_argument("--model", type=pathlib.Path, required=True)
    ap.add_argument("--input", type=pathlib.Path, required=True)
    ap.add_argument("--output", type=pathlib.Path, required=True)
    ap.add_argument("--batch-rows", type=int, default=65536, help="rows per chunk (65536)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help=f"threads for the library (default: one per core, {os.cpu_count()})")
    ap.add_argument("--columns", default=",".join(FEATURES),
                    help="feature columns, in the model's order (f0,...,f19)")
    ap.add_argument("--id", default="id", help="column copied to the output (id)")
    args = ap.parse_args()
    columns = args.columns.split(",")
    for what, path in (("model", args.model), ("input", args.input)):
        if not path.is_file():
            sys.exit(f"library: the {what} file {path} does not exist")

    t0 = time.perf_counter()
    model = LIBS[args.lib](args.model, args.threads)
    t_load = time.perf_counter() - t0

    source = pq.ParquetFile(args.input)
    missing = [c for c in [args.id] + columns if c not in source.schema_arrow.names]
    if missing:
        sys.exit(f"library: {args.input} has no column(s) {missing} "
                 f"(it has {source.schema_arrow.names})")
    t_read = t_predict = t_write = 0.0
    rows = 0
    writer = None
    batches = source.iter_batches(batch_size=args.batch_rows, columns=[args.id] + columns)
    while True:
        t = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            t_read += time.perf_counter() - t
            break
        df = batch.to_pandas()
        t_read += time.perf_counter() - t

        t = time.perf_counter()
        scores = model.predict(df[columns])
        t_predict += time.perf_counter() - t
        if len(scores) != len(df):
            sys.exit(f"library: {args.lib} returned {len(scores)} scores for {len(df)} rows")

        t = time.perf_counter()
        out = pa.RecordBatch.from_arrays([batch.column(args.id), pa.array(scores)],
                                         names=[args.id, "score"])
        if writer is None:
            writer = pq.ParquetWriter(args.output, out.schema, compression="snappy")
        writer.write_batch(out)
        t_write += time.perf_counter() - t
        rows += len(df)
    t = time.perf_counter()
    if writer is not None:
        writer.close()
    t_write += time.perf_counter() - t
    seconds = time.perf_counter() - t0

    print(json.dumps({
        "lib": args.lib, "version": model.version, "model": str(args.model),
        "input": str(args.input), "rows": rows, "seconds": round(seconds, 4),
        "rows_per_s": round(rows / seconds) if seconds > 0 else None,
        "phases": {"load": round(t_load, 4), "read": round(t_read, 4),
                   "predict": round(t_predict, 4), "write": round(t_write, 4)},
        "batch_rows": args.batch_rows, "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
