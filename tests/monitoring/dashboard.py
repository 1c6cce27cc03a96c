"""Opens ferroserve's /dashboard in headless Chromium (Debian's package) after some traffic:
the page must render with no console errors and show its plots (line charts of traffic and
drift histograms); the screenshot is kept as target/test-artifacts/dashboard.png.
Standard library only; every wait is bounded."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from served import Served

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200


def main():
    binary = os.path.abspath(sys.argv[1])
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no chromium on PATH")
    work = tempfile.mkdtemp(prefix="ferroserve-dashboard-")
    server = None
    try:
        server = Served(binary, work, os.path.join(ROOT, "examples/models"))
        http = server.http
        with open(os.path.join(ROOT, "examples/data/iris_logreg/train.csv")) as f:
            rows = [[float(v) for v in line.split(",")[:4]] for line in f.read().splitlines()[1:]]
        infer = f"http://{http}/v2/models/iris_logreg/infer"
        # Traffic readings (one every 2 s) make lines; the shifted rows an alert.
        deadline = time.monotonic() + 12
        i = 0
        while time.monotonic() < deadline:
            batch = [rows[(i + k) % len(rows)] for k in range(20)]
            if i % 3 == 2:
                batch = [[v + 1.5 for v in r] for r in batch]
            post(infer, {"inputs": [{"name": "input", "datatype": "FP32",
                                     "shape": [len(batch), 4], "data": batch}]})
            i += 1
            time.sleep(0.05)
        url = f"http://{http}/dashboard"
        artifacts = os.path.join(ROOT, "target", "test-artifacts")
        os.makedirs(artifacts, exist_ok=True)
        screenshot = os.path.join(artifacts, "dashboard.png")
        flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--enable-logging=stderr", "--v=0", f"--user-data-dir={work}/profile"]
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=120)
        shot = subprocess.run(flags + [f"--screenshot={screenshot}", "--window-size=1400,2400",
                                       url], capture_output=True, text=True, timeout=120)
        console = [line for line in (dom.stderr + shot.stderr).splitlines()
                   if "CONSOLE" in line or "Uncaught" in line]
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert not console, "console messages:\n" + "\n".join(console)
        html = dom.stdout
        charts = html.count('<svg class="chart"')
        lines = html.count("<polyline")
        histograms = html.count('<svg class="histogram"')
        assert charts >= 9, f"{charts} line charts (3 per model)"
        assert lines >= 3, f"{lines} plotted lines: iris has two traffic readings"
        assert histograms == 8, f"{histograms} histograms (iris: 4 inputs, 4 outputs)"
        assert "iris_logreg" in html and "PSI" in html
        assert os.path.getsize(screenshot) > 10_000, "the screenshot is empty"
        print(f"dashboard: {charts} charts ({lines} with lines), {histograms} histograms, "
              f"no console errors; screenshot {os.path.relpath(screenshot, ROOT)}")
    except BaseException:
        if server:
            sys.stderr.write("--- ferroserve.log\n" + server.log_text()[-4000:])
        raise
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
