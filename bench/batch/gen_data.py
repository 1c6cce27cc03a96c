#!/usr/bin/env python3
"""Write the input files of the batch benchmark (bench/batch/run.sh).

Owns target/bench-data/batch/ (not committed; regenerated in about 30 s per 10 M rows):
  rows-<N>.parquet   N rows: `id` int64 (0..N-1) and 20 float32 features `f0`..`f19`, snappy,
                     row groups of min(1,000,000, ceil(N/4)) rows (10 groups at 10 M rows,
                     4 at small sizes), plain encoding, about 88 bytes a row (random floats do
                     not compress): 10 M rows are about 880 MB
  rows-<N>.csv       the same rows as CSV (`--format csv`): a header line `id,f0,...,f19`, no
                     quotes, floats in their shortest round-trip form, about 220 bytes a row
  The memory check's file (`--size 2GB`): a CSV of about 2 GB (about 9.1 M rows; the row count
  is worked out from a sample so that the file lands within 1 % of the size), named
  rows-<N>.csv like the others. CSV, not Parquet, because CSV is the case a streaming reader
  must bound by itself: no row groups, every value parsed from text, and a reader that loads the
  whole file holds 2 GB of text plus the parsed columns.

The rows: the features follow the tree models' own data (scripts/gen_bench_trees.py, sklearn
make_classification), so the trees walk the paths they were trained for: each row is one of the
1024 held-out rows in target/bench-models/trees/rows.f32 (bench/batch/models.sh writes it) plus
Gaussian jitter of 0.1 of each feature's standard deviation. `--distribution normal` draws
N(0, 1) features instead and needs no model file. Deterministic: the rows are generated in
chunks of 1,000,000, chunk k from numpy's default_rng([seed, k, stream]), so the first rows of
every file (any N, either format) are the same rows. Sizes are decimal: 2GB = 2e9 bytes.

Usage: .venv-batch/bin/python bench/batch/gen_data.py ROWS [--format parquet|csv] [--force]
       .venv-batch/bin/python bench/batch/gen_data.py --size 2GB [--format csv]
Prints the path of the file on stdout (the last line); an existing file with the right row
count is kept unless --force.
"""

import argparse
import math
import os
import pathlib
import re
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "target" / "bench-data" / "batch"
BASE_ROWS = ROOT / "target" / "bench-models" / "trees" / "rows.f32"
FEATURES = 20
COLUMNS = [f"f{i}" for i in range(FEATURES)]
CHUNK = 1_000_000
JITTER = 0.1


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (say 2GB, 500MB)")
    return int(float(m.group(1)) * 1000 ** " kmgt".index(m.group(2) or " "))


def schema():
    return pa.schema([("id", pa.int64())] + [(c, pa.float32()) for c in COLUMNS])


def load_base(distribution):
    if distribution == "normal":
        return None
    if not BASE_ROWS.is_file():
        sys.exit(f"gen_data: {BASE_ROWS.relative_to(ROOT)} is missing; run bench/batch/models.sh "
                 "first (it trains the models and writes it), or pass --distribution normal")
    base = np.fromfile(BASE_ROWS, dtype="<f4")
    if base.size % FEATURES:
        sys.exit(f"gen_data: {BASE_ROWS} does not hold rows of {FEATURES} float32 values")
    return base.reshape(-1, FEATURES)


def chunk(k, rows, base, seed):
    """Rows k*CHUNK .. k*CHUNK+rows as a RecordBatch."""
    # Row-major draws from two streams, so that a chunk's first rows do not depend on its length.
    noise = np.random.default_rng([seed, k, 1]).standard_normal((rows, FEATURES), dtype=np.float32)
    if base is None:
        x = noise
    else:
        pick = np.random.default_rng([seed, k, 0]).integers(0, base.shape[0], size=rows)
        x = base[pick]
        x += noise * (JITTER * base.std(axis=0)).astype(np.float32)
    x = np.ascontiguousarray(x.T)
    ids = np.arange(k * CHUNK, k * CHUNK + rows, dtype=np.int64)
    return pa.RecordBatch.from_arrays([pa.array(ids)] + [pa.array(x[i]) for i in range(FEATURES)],
                                      schema=schema())


def batches(n, base, seed):
    for k in range(math.ceil(n / CHUNK)):
        yield chunk(k, min(CHUNK, n - k * CHUNK), base, seed)


def existing_rows(path, fmt):
    if not path.is_file():
        return None
    try:
        if fmt == "parquet":
            return pq.ParquetFile(path).metadata.num_rows
        with open(path, "rb") as f:
            return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b"")) - 1
    except Exception:  # a broken file is rewritten
        return None


def write(path, n, fmt, base, seed):
    tmp = path.with_name(path.name + ".partial")
    if fmt == "parquet":
        row_group = max(1, min(CHUNK, math.ceil(n / 4)))
        # Plain encoding: jittered floats are all distinct, so a dictionary only costs bytes.
        with pq.ParquetWriter(tmp, schema(), compression="snappy", use_dictionary=False) as w:
            for b in batches(n, base, seed):
                w.write_table(pa.Table.from_batches([b]), row_group_size=row_group)
    else:
        opts = pacsv.WriteOptions(quoting_header="none", quoting_style="none")
        with pacsv.CSVWriter(tmp, schema(), write_options=opts) as w:
            for b in batches(n, base, seed):
                w.write_batch(b)
    os.replace(tmp, path)


def rows_for_size(target, base, seed):
    """Rows of CSV that make a file of about `target` bytes, from a 100,000-row sample."""
    sample = OUT / ".size-sample.csv"
    write(sample, 100_000, "csv", base, seed)
    per_row = (sample.stat().st_size - len(",".join(["id"] + COLUMNS)) - 1) / 100_000
    sample.unlink()
    return int(target / per_row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="?", type=int, help="number of rows")
    ap.add_argument("--size", type=parse_size, help="instead of ROWS: about this many bytes "
                    "of CSV (e.g. 2GB; implies --format csv)")
    ap.add_argument("--format", choices=("parquet", "csv"), default=None)
    ap.add_argument("--out", type=pathlib.Path, help="file to write (default "
                    "target/bench-data/batch/rows-<N>.<format>)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--distribution", choices=("model", "normal"), default="model")
    ap.add_argument("--force", action="store_true", help="rewrite an existing file")
    args = ap.parse_args()
    if (args.rows is None) == (args.size is None):
        ap.error("give either ROWS or --size")
    if args.size is not None and args.format == "parquet":
        ap.error("--size writes CSV (see the header of this script)")
    fmt = args.format or ("csv" if args.size is not None else "parquet")

    OUT.mkdir(parents=True, exist_ok=True)
    base = load_base(args.distribution)
    n = args.rows if args.rows is not None else rows_for_size(args.size, base, args.seed)
    if n <= 0:
        ap.error("ROWS must be positive")
    path = args.out or OUT / f"rows-{n}.{fmt}"
    if not args.force and existing_rows(path, fmt) == n:
        print(f"gen_data: {path} exists ({n:,} rows)", file=sys.stderr)
    else:
        t0 = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, n, fmt, base, args.seed)
        print(f"gen_data: wrote {path} ({n:,} rows, {path.stat().st_size / 1e6:,.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main()
