#!/usr/bin/env python3
"""The Spark legs of the batch benchmark: a Parquet file through `mapInArrow` in Spark local[2].

Owns nothing on disk. One Spark session (local[2], everything on loopback: SPARK_LOCAL_IP and
spark.driver.bindAddress/host 127.0.0.1, no UI), then RUNS rounds of the legs asked for, in
turn, each one action on `spark.read.parquet(INPUT)` (all 21 columns) sunk into
`.write.format("noop")`:

  noop    the bridge alone: `df.mapInArrow(f, "id long, score float")`, where f yields
          `RecordBatch.from_arrays([batch.column("id"), zeros float32])` for every batch
  score   `ferroserve.spark.score(df, MODEL, columns=[f0..f19], keep=["id"],
          outputs=["probabilities_1"])`: the same output shape as the no-op (id, a float
          score; plus the all-null `_error`); `--outputs ""` returns every output (the Python
          package, crates/python: kept columns + the model's outputs + `_error`)

The time is the action's wall clock only (not the session's start, which is reported apart, as
`session_start_s`). --warmup rounds (1) run every leg once untimed first: the first action of a
fresh session also pays for the JVM's JIT and the Python workers' start (8 s against 0.8 s on
200,000 rows here). Both legs use the same spark.sql.execution.arrow.maxRecordsPerBatch
(--max-records, 65536). The Python workers run this interpreter (PYSPARK_PYTHON is set to
sys.executable), so run it from .venv-batch. With spark.python.worker.reuse (the default) the
workers live across the rounds: from the second round on, the score leg's model is already
loaded in them, as it is for every task after the first in a long job.

Prints one JSON object per run on stdout: {"leg": "spark-noop" | "spark-score", "run", "rows",
"seconds", "rows_per_s", ...}; the row count comes from the Parquet footers, not from Spark.

Usage: .venv-batch/bin/python bench/batch/spark.py --input target/bench-data/batch/rows-N.parquet
           [--legs noop,score] [--runs 3] [--model target/bench-models/batch-repo/xgboost]
           [--max-records 65536] [--driver-memory 2g]
"""

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
FEATURES = [f"f{i}" for i in range(20)]

# Before pyspark starts its JVM: the workers must run this venv's python, and everything stays
# on loopback.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def noop_batches(batches):
    """mapInArrow body of the no-op leg: id through, a float32 zero as the score."""
    import numpy as np
    import pyarrow as pa

    for batch in batches:
        yield pa.RecordBatch.from_arrays(
            [batch.column("id"), pa.array(np.zeros(batch.num_rows, dtype=np.float32))],
            names=["id", "score"])


def parquet_rows(path):
    files = [path] if path.is_file() else sorted(path.glob("*.parquet"))
    if not files:
        sys.exit(f"spark: no Parquet file at {path}")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def start_session(args):
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    spark = (SparkSession.builder.master(f"local[{args.cores}]").appName("ferroserve-bench-batch")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", args.driver_memory)
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.max_records))
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    return spark, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=pathlib.Path, required=True,
                    help="a Parquet file, or a folder of them")
    ap.add_argument("--legs", default="noop", help="comma-separated: noop, score (noop)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed rounds of every leg first (1): JIT, Python workers, model load")
    ap.add_argument("--model", type=pathlib.Path,
                    default=ROOT / "target" / "bench-models" / "batch-repo" / "xgboost",
                    help="model directory for the score leg (batch-repo/xgboost)")
    ap.add_argument("--max-records", type=int, default=65536,
                    help="spark.sql.execution.arrow.maxRecordsPerBatch (65536)")
    ap.add_argument("--batch-rows", type=int, default=None,
                    help="batch_rows passed to ferroserve.spark.score (default: its own)")
    ap.add_argument("--outputs", type=lambda s: [c for c in s.split(",") if c],
                    default=["probabilities_1"],
                    help="output columns of the score leg, comma-separated ('' for all)")
    ap.add_argument("--cores", type=int, default=2, help="local[CORES] (2)")
    ap.add_argument("--driver-memory", default="2g")
    args = ap.parse_args()
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    for leg in legs:
        if leg not in ("noop", "score"):
            ap.error(f"unknown leg {leg!r} (noop, score)")
    if not args.input.exists():
        sys.exit(f"spark: {args.input} does not exist (bench/batch/gen_data.py writes it)")
    rows = parquet_rows(args.input)

    if "score" in legs:
        try:
            import ferroserve.spark  # noqa: F401
        except ImportError as e:
            sys.exit(f"spark: the score leg needs the ferroserve package in this venv ({e}); "
                     "bench/batch/run.sh builds and installs it unless SKIP_WHEEL=1")
        if not args.model.exists():
            sys.exit(f"spark: the model {args.model} does not exist (bench/batch/models.sh)")

    spark, session_start = start_session(args)
    print(f"spark: session started in {session_start:.1f} s (Spark {spark.version})",
          file=sys.stderr)
    try:
        df = spark.read.parquet(str(args.input.resolve()))
        partitions = df.rdd.getNumPartitions()
        for run in range(1 - args.warmup, args.runs + 1):
            for leg in legs:
                if leg == "noop":
                    out = df.mapInArrow(noop_batches, "id long, score float")
                else:
                    import ferroserve.spark
                    out = ferroserve.spark.score(df, str(args.model.resolve()), columns=FEATURES,
                                                 keep=["id"], batch_rows=args.batch_rows,
                                                 outputs=args.outputs or None)
                t0 = time.perf_counter()
                out.write.format("noop").mode("overwrite").save()
                seconds = time.perf_counter() - t0
                if run <= 0:
                    print(f"spark: warm-up {leg}: {seconds:.2f} s", file=sys.stderr)
                    continue
                print(json.dumps({
                    "leg": f"spark-{leg}", "run": run, "rows": rows,
                    "seconds": round(seconds, 4), "rows_per_s": round(rows / seconds),
                    "session_start_s": round(session_start, 2), "partitions": partitions,
                    "max_records_per_batch": args.max_records, "cores": args.cores,
                    "spark": spark.version, "pyarrow": pa.__version__,
                }), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
