"""Starts ferroserve (ports picked by the OS) and a Prometheus server scraping its metrics
port every second, sends a known number of requests, then asks Prometheus's query API for
the counts it scraped. Standard library only; every wait is bounded."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

from served import Served, get, wait_for

REQUESTS = 7


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ferroserve-prometheus-")
    server = None
    procs = []
    try:
        server = Served(binary, work, "examples/models", "--metrics-port", "0",
                        "--metrics-triton-names")
        http = server.http
        metrics = server.address(r"metrics on http://([0-9.:]+)/metrics")

        port = free_port()
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                "global:\n  scrape_interval: 1s\n"
                "scrape_configs:\n"
                "  - job_name: ferroserve\n"
                f"    static_configs:\n      - targets: ['{metrics}']\n")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(work, 'data')}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        procs.append(prometheus)

        with open("examples/oracles/iris_logreg/request.json", "rb") as f:
            body = f.read()
        for _ in range(REQUESTS):
            request = urllib.request.Request(
                f"http://{http}/v2/models/iris_logreg/infer", data=body,
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                assert r.status == 200

        def query(expr):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            answer = json.loads(get(url))
            assert answer["status"] == "success", answer
            return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]

        def scraped(expr, expected):
            def check():
                result = query(expr)
                return result if result and result[0][1] == expected else None
            return wait_for(f"Prometheus to return {expr} = {expected}", check)

        scraped('up{job="ferroserve"}', 1.0)
        successes = scraped(
            'ferroserve_request_successes_total{model="iris_logreg",version="1"}', REQUESTS)
        scraped('sum(ferroserve_request_duration_seconds_count{model="iris_logreg"})', REQUESTS)
        scraped('nv_inference_request_success{model="iris_logreg",version="1"}', REQUESTS)
        scraped('ferroserve_model_versions_loaded{model="digits_mlp"}', 1.0)
        memory = wait_for("process_resident_memory_bytes",
                          lambda: query('process_resident_memory_bytes{job="ferroserve"}'))
        # Drift: shifted iris rows against the committed reference profile raise an alert in
        # the log (reported when asked, and by the periodic check) and in the metrics.
        flat = json.loads(body)["inputs"][0]["data"]
        shifted = [[v + 1.5 for v in flat[i:i + 4]] for i in range(0, len(flat), 4)]
        rows = [shifted[i % len(shifted)] for i in range(200)]
        drift = json.dumps({"inputs": [{"name": "input", "datatype": "FP32",
                                        "shape": [len(rows), 4], "data": rows}]}).encode()
        request = urllib.request.Request(
            f"http://{http}/v2/models/iris_logreg/infer", data=drift,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
        report = json.loads(get(f"http://{http}/v2/models/iris_logreg/monitoring"))
        assert "petal_length" in report["alerts"], report["alerts"]

        def logged():
            return "data drift: petal_length crossed its alert threshold" in server.log_text()

        wait_for("the drift alert in ferroserve's log", logged, timeout=15)
        scraped('ferroserve_drift_alert{model="iris_logreg",feature="petal_length",side="input"}',
                1.0)
        # The Grafana board in deploy/: every query is valid PromQL to this Prometheus and
        # every ferroserve_* family it names is one the server exports.
        exposition = get(f"http://{metrics}/metrics").decode()
        with open("deploy/grafana-dashboard.json") as f:
            board = json.load(f)
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = (target["expr"].replace("$__rate_interval", "1m")
                        .replace("$model", ".*").replace("$job", ".*"))
                query(expr)
                for name in re.findall(r"\b(ferroserve_[a-z_]+|process_[a-z_]+)", expr):
                    family = re.sub(r"_(bucket|sum|count)$", "", name)
                    assert f"# TYPE {family} " in exposition or f"# TYPE {name} " in exposition, \
                        f"{panel['title']}: {name} is not exported"
        print(f"Prometheus scraped {successes[0][0]['__name__']}{{model=iris_logreg}} = "
              f"{successes[0][1]:.0f}, resident memory {memory[0][1] / 2**20:.1f} MiB")
        print("prometheus scrape check: passed")
    except BaseException:
        for name in ("ferroserve.log", "prometheus.log"):
            path = os.path.join(work, name)
            if os.path.exists(path):
                sys.stderr.write(f"--- {name}\n" + open(path).read()[-4000:])
        raise
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
