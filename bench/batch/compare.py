#!/usr/bin/env python3
"""Check ferroserve batch's answers against the library's on the same rows (bench/batch/run.sh).

Owns nothing on disk. Reads the library's output (`id`, `score`: bench/batch/library.py) and
ferroserve's (the kept `id`, the model's output columns, `_error`), matches rows by id, and
finds the output column that is the library's score: a float column, or element 1 (else 0) of
a list column (`probabilities` [N, 2]). Rows agree within atol 1e-5 + rtol 1e-4.

A few rows may disagree legitimately: where a feature value sits exactly between a split
threshold and its float32 rounding, an engine comparing in float32 and one comparing in float64
send the row down different branches (1 row in 200,000 between lightgbm and its ONNX
conversion here). So the check passes when at most 1 row in 10,000 disagrees, none is
missing, and no row has an `_error`.

Prints one JSON object on stdout ({"ok", "column", "rows", "disagree", "max_abs_diff", ...});
exits 1 when the outputs do not agree.

Usage: .venv-batch/bin/python bench/batch/compare.py --library LIB.parquet --ferroserve FS.parquet
           [--name xgboost]
"""

import argparse
import json
import pathlib
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ATOL, RTOL, MAX_DISAGREE = 1e-5, 1e-4, 1e-4


def candidates(table, skip):
    """(name, float64 array) for every column of `table` that could be the score."""
    for name in table.column_names:
        if name in skip:
            continue
        col = table.column(name).combine_chunks()
        t = col.type
        if pa.types.is_floating(t):
            yield name, col.to_numpy(zero_copy_only=False).astype(np.float64)
        elif (pa.types.is_list(t) or pa.types.is_large_list(t)
              or pa.types.is_fixed_size_list(t)) and pa.types.is_floating(t.value_type):
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            if len(lengths) and (lengths == lengths[0]).all() and lengths[0] >= 1:
                width = int(lengths[0])
                flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)
                flat = flat.reshape(-1, width)
                yield f"{name}[{min(1, width - 1)}]", flat[:, min(1, width - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", type=pathlib.Path, required=True)
    ap.add_argument("--ferroserve", type=pathlib.Path, required=True)
    ap.add_argument("--id", default="id")
    ap.add_argument("--name", help="adds \"leg\": \"check-NAME\" to the JSON (for report.py)")
    args = ap.parse_args()

    lib = pq.read_table(args.library)
    fs = pq.read_table(args.ferroserve)
    for what, t, path in (("library", lib, args.library), ("ferroserve", fs, args.ferroserve)):
        if args.id not in t.column_names:
            sys.exit(f"compare: {path} ({what}) has no {args.id!r} column: {t.column_names}")
    result = {"leg": f"check-{args.name}"} if args.name else {}
    result |= {"library": str(args.library), "ferroserve": str(args.ferroserve),
              "rows": lib.num_rows, "ferroserve_rows": fs.num_rows,
              "ferroserve_columns": fs.column_names}
    errors = 0
    if "_error" in fs.column_names:
        errors = fs.num_rows - fs.column("_error").null_count
    result["errors"] = errors

    lib = lib.sort_by(args.id)
    fs = fs.sort_by(args.id)
    same_ids = (lib.num_rows == fs.num_rows
                and lib.column(args.id).equals(fs.column(args.id)))
    result["same_ids"] = same_ids
    best = None
    if same_ids:
        want = lib.column("score").to_numpy().astype(np.float64)
        for name, got in candidates(fs, {args.id, "_error"}):
            diff = np.abs(got - want)
            bad = ~(diff <= ATOL + RTOL * np.abs(want))  # NaN counts as a disagreement
            row = {"column": name, "disagree": int(bad.sum()),
                   "max_abs_diff": float(np.nanmax(diff)) if len(diff) else 0.0}
            if best is None or row["disagree"] < best["disagree"]:
                best = row
    if best:
        result.update(best)
    result["ok"] = bool(same_ids and best is not None and errors == 0
                        and best["disagree"] <= MAX_DISAGREE * max(1, lib.num_rows))
    print(json.dumps(result))
    if not result["ok"]:
        why = ("the ids differ (rows missing, added or duplicated)" if not same_ids else
               "no float or float-list output column" if best is None else
               f"{errors} rows have an _error" if errors else
               f"{best['disagree']} rows disagree (best column {best['column']})")
        print(f"compare: {args.ferroserve} does not agree with {args.library}: {why}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
