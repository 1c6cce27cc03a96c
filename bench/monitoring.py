"""Monitoring overhead: the bench MLP (Gemm 256-512-512-10) served twice by one ferroserve,
`mlp_plain` without a profile and `mlp_monitored` with one (every request's 256 input features
and 10 outputs go into the drift windows), loaded alternately by perf_analyzer at concurrency
32 over HTTP binary tensors; the server pinned to CPU 0, perf_analyzer to CPU 1. Prints and
writes (bench/results/monitoring-<date>.md) the throughput of each run and the ratio of the
medians. A /metrics scrape (which scores drift for every column) runs every second throughout,
as a Prometheus would.

    .venv/bin/python bench/monitoring.py [--runs 3] [--window-ms 3000]

Needs: target/release/ferroserve, bench/serving/gen_models.py's models
(target/bench-models/serving), .tools/bin/perf_analyzer.
"""

import argparse
import csv
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "target" / "bench-models" / "serving"
WORK = ROOT / "target" / "bench-monitoring"
PA = ROOT / ".tools" / "bin" / "perf_analyzer"
BIN = ROOT / "target" / "release" / "ferroserve"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window-ms", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    repo = WORK / "repo"
    rows = np.load(DATA / "data" / "mlp" / "rows.npy")
    for name in ("mlp_plain", "mlp_monitored"):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(DATA / "models" / "mlp" / "model.onnx", repo / name / "1" / "model.onnx")
        (repo / name / "model.toml").write_text(
            "max_batch_size = 64\ninstances = 1\nbatching = \"dynamic\"\nmax_queue_delay_us = 0\n")
    flat = rows.reshape(rows.shape[0], -1)
    data = WORK / "train.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(flat.shape[1])])
        w.writerows(flat.tolist())
    subprocess.run([str(BIN), "profile", "--model", str(repo / "mlp_monitored"),
                    "--data", str(data)], check=True)

    log = open(WORK / "server.log", "w+")
    server = subprocess.Popen(
        ["taskset", "-c", "0", str(BIN), "serve", "--model-repository", str(repo),
         "--host", "127.0.0.1", "--http-port", "0", "--no-grpc", "--log", "warn,ferroserve=info"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        addr = None
        for _ in range(300):
            log.seek(0)
            m = re.search(r"listening on http://([0-9.:]+)", log.read())
            if m:
                addr = m.group(1)
                try:
                    urllib.request.urlopen(f"http://{addr}/v2/health/ready", timeout=2)
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            sys.exit("server not ready")
        stop = threading.Event()

        def scrape():
            while not stop.is_set():
                try:
                    urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read()
                except OSError:
                    pass
                stop.wait(1.0)

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        results = {"mlp_plain": [], "mlp_monitored": []}
        for run in range(args.runs):
            for model in ("mlp_plain", "mlp_monitored") if run % 2 == 0 else ("mlp_monitored", "mlp_plain"):
                out = WORK / f"{model}-{run}.csv"
                cmd = ["taskset", "-c", "1", str(PA), "-m", model, "-b", "1", "-u", addr, "-i", "http",
                       "--concurrency-range", f"{args.concurrency}:{args.concurrency}",
                       "--input-data", str(DATA / "data" / "mlp" / "perf_input.json"),
                       "--input-tensor-format", "binary", "--output-tensor-format", "binary",
                       "--measurement-interval", str(args.window_ms), "-s", "10", "-f", str(out)]
                # As bench/serving/run.py: a window that will not settle within 10% is
                # retried accepting 50% (this VM's throughput wanders run to run).
                for stability in ("10", "50"):
                    cmd[cmd.index("-s") + 1] = stability
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                    if p.returncode == 0:
                        break
                else:
                    sys.exit(p.stdout[-3000:] + p.stderr[-3000:])
                with open(out) as f:
                    rec = next(csv.DictReader(f))
                results[model].append(float(rec["Inferences/Second"]))
                print(f"run {run} {model}: {results[model][-1]:.0f} infer/s", flush=True)
        stop.set()
        report = json.loads(urllib.request.urlopen(
            f"http://{addr}/v2/models/mlp_monitored/monitoring", timeout=10).read())
    finally:
        server.terminate()
        server.wait(timeout=10)
    plain = statistics.median(results["mlp_plain"])
    monitored = statistics.median(results["mlp_monitored"])
    ratio = monitored / plain
    columns = len(report["inputs"]) + len(report["outputs"])
    window = max(c["window"] for c in report["inputs"])
    date = datetime.date.today().isoformat()
    lines = [
        f"# Monitoring overhead, {date}",
        "",
        f"MLP (Gemm 256-512-512-10), perf_analyzer HTTP binary, concurrency {args.concurrency}, "
        f"{args.window_ms} ms windows, server on CPU 0 and perf_analyzer on CPU 1, /metrics "
        f"scraped every second; `mlp_monitored` watches {columns} columns "
        f"(window {window} rows).",
        "",
        "| run | plain infer/s | monitored infer/s |",
        "|---|---|---|",
    ]
    for i, (a, b) in enumerate(zip(results["mlp_plain"], results["mlp_monitored"])):
        lines.append(f"| {i} | {a:.0f} | {b:.0f} |")
    lines += ["", f"Medians: plain {plain:.0f}, monitored {monitored:.0f} infer/s: "
                  f"monitored / plain = {ratio:.3f} (goal: at least 0.95)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "results" / f"monitoring-{date}.md"
    out.write_text(text)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
