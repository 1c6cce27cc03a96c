"""Cold start to first answer, ferroserve as a process and as a Lambda function.

- serve: process start -> the first `POST /v2/models/iris_logreg/infer` answered 200 (the
  request retried every millisecond from the moment the port is known);
- lambda: process start -> the first invocation's answer posted to the runtime API, from a
  local emulation of it (`next` hands out one direct V2 event at once).

Both on a repository holding only iris_logreg (skl2onnx logistic regression). Prints one line
per run and the medians.

Usage: python3 bench/cold_start.py [--bin target/release/ferroserve] [--runs 20]
"""

import argparse
import http.server
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
EVENT = {
    "inputs": [
        {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def repository():
    folder = pathlib.Path(tempfile.mkdtemp())
    shutil.copytree(ROOT / "examples/models/iris_logreg", folder / "iris_logreg")
    return folder


class RuntimeApi(http.server.ThreadingHTTPServer):
    """One event per run; `answered` is set when its answer is posted."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.answered = threading.Event()
        self.served = False
        self.answer = None


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.server.served:
            # Later `next` calls wait, as Lambda's do, until the process is stopped.
            self.server.answered.wait()
            time.sleep(60)
            return
        self.server.served = True
        body = json.dumps(EVENT).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "cold-start")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.server.answer = (self.path, self.rfile.read(length))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.answered.set()


def lambda_run(binary, repo):
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}",
        FERROSERVE_MODEL_REPOSITORY=str(repo),
    )
    start = time.perf_counter()
    process = subprocess.Popen([binary, "lambda"], env=env, stderr=subprocess.DEVNULL)
    if not api.answered.wait(30):
        process.kill()
        raise SystemExit("lambda: no answer within 30 s")
    elapsed = time.perf_counter() - start
    process.kill()
    process.wait()
    api.shutdown()
    path, body = api.answer
    assert path.endswith("/response"), (path, body)
    assert json.loads(body)["outputs"], body
    return elapsed


def serve_run(binary, repo):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    process = subprocess.Popen(
        [binary, "serve", "--model-repository", str(repo), "--host", "127.0.0.1",
         "--http-port", str(port), "--no-grpc", "--state-dir", str(repo / ".state")],
        stderr=subprocess.DEVNULL,
    )
    request = json.dumps(EVENT).encode()
    url = f"http://127.0.0.1:{port}/v2/models/iris_logreg/infer"
    try:
        while time.perf_counter() - start < 30:
            try:
                with urllib.request.urlopen(url, request, timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.001)
        raise SystemExit("serve: no answer within 30 s")
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=str(ROOT / "target/release/ferroserve"))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    repo = repository()
    try:
        results = {"serve": [], "lambda": []}
        for run in range(args.runs):
            for mode, measure in (("serve", serve_run), ("lambda", lambda_run)):
                seconds = measure(args.bin, repo)
                results[mode].append(seconds)
                print(f"run {run + 1} {mode}: {seconds * 1000:.1f} ms", flush=True)
        for mode, times in results.items():
            times_ms = sorted(t * 1000 for t in times)
            print(
                f"{mode}: median {statistics.median(times_ms):.1f} ms, "
                f"min {times_ms[0]:.1f}, max {times_ms[-1]:.1f} ({len(times_ms)} runs)"
            )
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
