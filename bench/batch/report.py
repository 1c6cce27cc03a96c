#!/usr/bin/env python3
"""The markdown report of the batch benchmark, from the JSON lines bench/batch/run.sh collected.

Owns nothing on disk: prints markdown on stdout (run.sh writes it to
bench/results/batch-<date>.md). Reads RESULTS (JSON lines from timed.py, spark.py and
compare.py, each with a "leg") and META (a JSON object of the run's settings).

Rows/s, per leg, from the median over runs:
  ferroserve-*   rows / wall clock of the whole `ferroserve batch` process (from the shell)
  library-*      rows / library.py's own "seconds": model load + read + predict + write, without
                 Python's start and imports (the process's wall clock is shown beside it): the
                 baseline is given the benefit of the doubt
  spark-*        rows / the action's wall clock (spark.py), after a warm-up round
  memory         `ferroserve batch` on the ~2 GB CSV: wall clock and peak resident memory
Ratios are of medians, in the same run.

Usage: .venv-batch/bin/python bench/batch/report.py RESULTS.jsonl META.json
"""

import json
import statistics
import sys

GOAL = 3.0          # ferroserve at least 3x the library's rows/s
SPARK_GOAL = 1.2    # the score leg's time within 1.2x the no-op mapInArrow's

LABELS = {
    "ferroserve-xgboost": "ferroserve batch, XGBoost model.json (tree runtime)",
    "library-xgboost": "xgboost `inplace_predict`, pandas chunks",
    "ferroserve-lightgbm": "ferroserve batch, LightGBM model.txt (tree runtime)",
    "library-lightgbm": "lightgbm `predict`, pandas chunks",
    "ferroserve-xgboost_onnx": "ferroserve batch, XGBoost ONNX (ONNX-ML interpreter)",
    "library-onnxruntime-xgboost": "onnxruntime, XGBoost ONNX, pandas chunks",
    "ferroserve-lightgbm_onnx": "ferroserve batch, LightGBM ONNX (ONNX-ML interpreter)",
    "library-onnxruntime-lightgbm": "onnxruntime, LightGBM ONNX, pandas chunks",
    "spark-noop": "Spark local[2], no-op `mapInArrow` (the bridge alone)",
    "spark-score": "Spark local[2], `ferroserve.spark.score`",
    "memory": "ferroserve batch, XGBoost, the ~2 GB CSV",
}

COMPARISONS = [
    # (what, ferroserve leg, baseline leg)
    ("XGBoost: ferroserve vs xgboost", "ferroserve-xgboost", "library-xgboost"),
    ("LightGBM: ferroserve vs lightgbm", "ferroserve-lightgbm", "library-lightgbm"),
    ("XGBoost ONNX: ferroserve vs onnxruntime (same file)", "ferroserve-xgboost_onnx",
     "library-onnxruntime-xgboost"),
    ("XGBoost: ferroserve on model.json vs onnxruntime on its ONNX conversion",
     "ferroserve-xgboost", "library-onnxruntime-xgboost"),
    ("LightGBM ONNX: ferroserve vs onnxruntime (same file)", "ferroserve-lightgbm_onnx",
     "library-onnxruntime-lightgbm"),
    ("LightGBM: ferroserve on model.txt vs onnxruntime on its ONNX conversion",
     "ferroserve-lightgbm", "library-onnxruntime-lightgbm"),
]


def seconds(r):
    """The seconds a leg's rows/s is computed from (see the header)."""
    if r["leg"].startswith("library-"):
        return (r.get("inner") or {}).get("seconds") or r["wall_s"]
    if r["leg"].startswith("spark-"):
        return r["seconds"]
    return r["wall_s"]


def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_s(x):
    return "–" if x is None else f"{x:.2f}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("Usage: ")[1])
    results = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    meta = json.load(open(sys.argv[2]))
    legs = {}
    checks = {}
    for r in results:
        if r["leg"].startswith("check-"):
            checks[r["leg"][len("check-"):]] = r
        elif r.get("run", 1) >= 1:
            legs.setdefault(r["leg"], []).append(r)

    summary = {}
    for leg, runs in legs.items():
        secs = [seconds(r) for r in runs]
        rows = runs[0].get("rows") or (runs[0].get("inner") or {}).get("rows")
        med = statistics.median(secs)
        summary[leg] = {
            "runs": len(runs), "rows": rows, "median_s": med,
            "rows_per_s": rows / med if rows and med else None,
            "range": (rows / max(secs), rows / min(secs)) if rows else None,
            "wall_s": statistics.median(r["wall_s"] for r in runs) if "wall_s" in runs[0] else None,
            "maxrss_mb": max((r.get("gnu_time_maxrss_mb") or r.get("maxrss_mb") or 0)
                             for r in runs) or None,
        }

    out = [f"# Batch scoring benchmark, {meta.get('date', '?')}", ""]
    out += [f"`bench/batch/run.sh`: {meta.get('rows', 0):,} rows × 20 float32 features + `id` "
            f"(Parquet, snappy, {meta.get('input_mb', '?')} MB), {meta.get('runs', '?')} runs "
            f"per leg, legs alternating; {meta.get('batch_rows', '?'):,} rows per chunk / model "
            f"call / Arrow batch everywhere; every library on {meta.get('threads', '?')} threads, "
            "ferroserve on every core.", ""]
    for key, label in (("machine", "Machine"), ("ferroserve", "ferroserve"),
                       ("versions", "Python side"), ("models", "Models")):
        if meta.get(key):
            out.append(f"- {label}: {meta[key]}")
    out.append("")

    goals_at = len(out)
    for what, fs, base in COMPARISONS:
        if fs in summary and base in summary:
            a, b = summary[fs]["rows_per_s"], summary[base]["rows_per_s"]
            ratio = a / b if a and b else None
            out.append(f"| {what} | {fmt_int(a)} | {fmt_int(b)} | "
                       f"{'–' if ratio is None else f'{ratio:.2f}×'} | ≥ {GOAL:g}× | "
                       f"{'–' if ratio is None else ('yes' if ratio >= GOAL else 'NO')} |")
    if "spark-noop" in summary and "spark-score" in summary:
        a, b = summary["spark-score"], summary["spark-noop"]
        ratio = a["median_s"] / b["median_s"]
        out.append(f"| Spark: `ferroserve.spark.score` vs no-op `mapInArrow` (time ratio) | "
                   f"{fmt_int(a['rows_per_s'])} | {fmt_int(b['rows_per_s'])} | {ratio:.2f}× | "
                   f"≤ {SPARK_GOAL:g}× | {'yes' if ratio <= SPARK_GOAL else 'NO'} |")
    if "memory" in summary:
        m = summary["memory"]
        goal = meta.get("memory_goal_mb")
        rss = m["maxrss_mb"]
        met = "–" if not goal or not rss else ("yes" if rss <= goal else "NO")
        goal_cell = f"≤ {goal:g} MB" if goal else "–"
        out.append(f"| Memory: ferroserve batch on a {meta.get('memory_input_mb', '?')} MB CSV "
                   f"({fmt_int(m['rows'])} rows) | {fmt_int(m['rows_per_s'])} | | "
                   f"peak RSS {fmt_int(rss)} MB | {goal_cell} | {met} |")
    if len(out) > goals_at:
        out[goals_at:goals_at] = [
            "## Goals", "",
            "| comparison | ferroserve rows/s | baseline rows/s | ratio | goal | met |",
            "|---|---|---|---|---|---|"]
        out.append("")

    out += ["## Legs (medians)", "",
            "| leg | runs | median s | rows/s | rows/s, slowest–fastest run | process wall s "
            "| peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for leg in list(LABELS) + sorted(set(summary) - set(LABELS)):
        if leg not in summary:
            continue
        s = summary[leg]
        rng = "–" if not s["range"] else f"{s['range'][0]:,.0f}–{s['range'][1]:,.0f}"
        out.append(f"| {LABELS.get(leg, leg)} | {s['runs']} | {fmt_s(s['median_s'])} | "
                   f"{fmt_int(s['rows_per_s'])} | {rng} | {fmt_s(s['wall_s'])} | "
                   f"{fmt_int(s['maxrss_mb'])} |")
    out.append("")
    lib_phases = [(leg, runs) for leg, runs in legs.items() if leg.startswith("library-")]
    if lib_phases:
        out += ["Library legs, median seconds per phase (load = model file, read = Parquet + "
                "`to_pandas`):", "", "| leg | load | read | predict | write |",
                "|---|---|---|---|---|"]
        for leg, runs in lib_phases:
            ph = [r["inner"]["phases"] for r in runs if (r.get("inner") or {}).get("phases")]
            if ph:
                cells = " | ".join(f"{statistics.median(p[k] for p in ph):.2f}"
                                   for k in ("load", "read", "predict", "write"))
                out.append(f"| {LABELS.get(leg, leg)} | {cells} |")
        out.append("")
    spark = [r for r in results if r["leg"].startswith("spark-")]
    if spark:
        s0 = spark[0]
        out += [f"Spark {s0.get('spark')}: session start {s0.get('session_start_s')} s (not "
                f"counted), {s0.get('partitions')} input partitions, "
                f"maxRecordsPerBatch {s0.get('max_records_per_batch'):,}, sink "
                "`format(\"noop\")`.", ""]
    if checks:
        out += ["## Answers", "", "ferroserve's output against the library's, matched by id "
                "(bench/batch/compare.py: atol 1e-5 + rtol 1e-4, at most 1 row in 10,000 off):",
                "", "| model | ok | column | rows disagreeing | max abs diff | _error rows |",
                "|---|---|---|---|---|---|"]
        for name, c in checks.items():
            out.append(f"| {name} | {'yes' if c.get('ok') else 'NO'} | {c.get('column', '–')} | "
                       f"{c.get('disagree', '–')} | {c.get('max_abs_diff', '–')} | "
                       f"{c.get('errors', '–')} |")
        out.append("")
    if meta.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
