#!/usr/bin/env python3
"""Side-by-side serving benchmark: ferroserve against Triton, MLServer and FastAPI.

For each server in SERVERS, in turn and alone on the machine:
  1. lays out its model repository under $OUT/repos/<server>/ from target/bench-models/serving/
     (bench/serving/gen_models.py) with the same batching limits everywhere (MAX_BATCH_SIZE, one
     instance, dynamic batching with no queue delay where the server batches);
  2. starts it pinned to core SERVER_CPU (taskset; every engine on one intra-op thread), on
     127.0.0.1 with free ports, and waits for it and every model to be ready;
  3. FIRST checks every model's answers against the oracle over every protocol it will be loaded
     through (16 single-row requests and one 8-row request; rows and oracle from gen_models.py);
     a mismatch is printed loudly, that model is not loaded on that server, and run.py exits 1;
  4. loads it from core CLIENT_CPU: perf_analyzer (HTTP binary tensors, HTTP JSON, gRPC) at each
     concurrency, batch-1 requests, --input-data with the real rows; for MLServer, which
     perf_analyzer cannot drive, wrk (HTTP JSON, a Lua script posting one V2 body) and
     grpc_load.py (grpc.aio closed loop). wrk and grpc_load.py also run against the other servers
     on the models in ALT_MODELS (the tree models), for a same-tool comparison with MLServer;
  5. reads the model statistics before and after each run where the server has them (ferroserve,
     Triton) to report the average batch the server formed;
  6. stops it (SIGTERM to its process group, SIGKILL after 15 s; also on any exit of run.py).
Then measures the in-process onnxruntime call (bench/serving/inprocess.py) on the same core at
batch 1, 8, 32 and at the batch sizes the servers formed, and writes
$RESULTS_DIR/$RESULTS_NAME.{md,csv,json}: every cell (server x model x protocol x tool x
concurrency: infer/s, p50/p90/p99, average batch), the in-process reference, and the issue's goals
computed from the cells.

Servers: ferroserve (all models, dynamic batching), ferroserve-nobatch (MLP, batching = "off"),
triton (Triton 2.51 from nvidia-pytriton, python backend running onnxruntime on the ONNX files),
mlserver (MLServer 1.7.1 on the tree models in their native formats), fastapi (FastAPI +
onnxruntime, bench/serving/fastapi_server.py).

Environment (defaults in brackets):
  FERROSERVE_BIN     [target/release/ferroserve]
  SERVERS            [ferroserve ferroserve-nobatch triton mlserver fastapi]
  MODELS             [mlp cnn xgboost lightgbm random_forest]
  PROTOCOLS          [http-binary http-json grpc]
  CONCURRENCY        [1 8 32]
  WINDOW_MS          perf_analyzer --measurement-interval; wrk and grpc_load.py measure
                     3 windows after a 1 s warm-up [2000]
  STABILITY          perf_analyzer -s, percent [10]; an unstable cell is retried once with -s 50
                     and marked "unstable"
  ALT_TOOLS          [wrk grpc-aio]: extra tools run on every server for ALT_MODELS; "" for none
                     (MLServer always gets them, for the protocols in PROTOCOLS)
  ALT_MODELS         [xgboost lightgbm random_forest]
  PERF_ANALYZER      [1] 0: only the ALT_TOOLS cells (e.g. wrk on the MLP, whose C event loop
                     is not the bottleneck that perf_analyzer's thread per request becomes at c32)
  MAX_BATCH_SIZE     [64]    max_batch_size of every batching server's models
  FERROSERVE_ONNX_RUNTIME  if set, `runtime = "<it>"` in the MLP/CNN model.toml ("onnxruntime",
                     "tract"); default: none, ferroserve's own choice (the platform each model
                     got is reported)
  MLSERVER_PARALLEL_WORKERS  [1] MLServer's parallel_workers (its default)
  SERVER_CPU / CLIENT_CPU   [0 / 1]
  INPROCESS          [1] measure the in-process reference; 0 to skip
  BENCH_DATA         the generated models and data [target/bench-models/serving]
  OUT                work folder: repositories, logs [target/bench-serving/<timestamp>]
  RESULTS_DIR        [bench/results]     RESULTS_NAME [serving-<YYYY-MM-DD>]
  PA_TIMEOUT_S       limit per perf_analyzer run [max(120, 40 windows)]
  PA_EXTRA_ARGS      more perf_analyzer flags, e.g. "--async" (default: its synchronous mode, one
                     client thread per concurrent request) [""]

Usage: bench/serving/run.sh (runs setup.sh and gen_models.py first), or, with those done,
  .venv/bin/python bench/serving/run.py
Quick smoke run: SERVERS=ferroserve MODELS=mlp CONCURRENCY=8 WINDOW_MS=500 bench/serving/run.sh
"""

import csv
import io
import json
import math
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "serving"
TOOLS = ROOT / ".tools" / "bench"
DATA = pathlib.Path(os.environ.get("BENCH_DATA", ROOT / "target" / "bench-models" / "serving"))
PA = ROOT / ".tools" / "bin" / "perf_analyzer"
NETS = ("mlp", "cnn")
TREES = ("xgboost", "lightgbm", "random_forest")
ALL_MODELS = NETS + TREES
ALL_SERVERS = ("ferroserve", "ferroserve-nobatch", "triton", "mlserver", "fastapi")
PA_PROTOCOLS = ("http-binary", "http-json", "grpc")


def env_list(name, default):
    return os.environ.get(name, default).split()


def log(msg):
    print(f"serving: {msg}", file=sys.stderr, flush=True)


def loud(msg):
    bar = "!" * 78
    print(f"\n{bar}\nserving: {msg}\n{bar}\n", file=sys.stderr, flush=True)


class Config:
    def __init__(self):
        bin_ = os.environ.get("FERROSERVE_BIN", "target/release/ferroserve")
        self.ferroserve_bin = (ROOT / bin_) if not os.path.isabs(bin_) else pathlib.Path(bin_)
        self.servers = env_list("SERVERS", " ".join(ALL_SERVERS))
        self.models = env_list("MODELS", " ".join(ALL_MODELS))
        self.protocols = env_list("PROTOCOLS", " ".join(PA_PROTOCOLS))
        self.concurrency = [int(c) for c in env_list("CONCURRENCY", "1 8 32")]
        self.window_ms = int(os.environ.get("WINDOW_MS", "2000"))
        self.stability = int(os.environ.get("STABILITY", "10"))
        self.alt_tools = env_list("ALT_TOOLS", "wrk grpc-aio")
        self.alt_models = env_list("ALT_MODELS", " ".join(TREES))
        self.perf_analyzer = os.environ.get("PERF_ANALYZER", "1") != "0"
        self.max_batch = int(os.environ.get("MAX_BATCH_SIZE", "64"))
        self.ferro_runtime = os.environ.get("FERROSERVE_ONNX_RUNTIME", "")
        self.mlserver_workers = int(os.environ.get("MLSERVER_PARALLEL_WORKERS", "1"))
        self.server_cpu = os.environ.get("SERVER_CPU", "0")
        self.client_cpu = os.environ.get("CLIENT_CPU", "1")
        self.inprocess = os.environ.get("INPROCESS", "1") != "0"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = pathlib.Path(os.environ.get("OUT", ROOT / "target" / "bench-serving" / stamp))
        self.results_dir = pathlib.Path(os.environ.get("RESULTS_DIR", ROOT / "bench" / "results"))
        self.results_name = os.environ.get("RESULTS_NAME", "serving-" + time.strftime("%Y-%m-%d"))
        self.pa_extra = os.environ.get("PA_EXTRA_ARGS", "").split()
        self.pa_timeout = int(os.environ.get("PA_TIMEOUT_S", str(max(120, 40 * self.window_ms // 1000))))
        for s in self.servers:
            if s not in ALL_SERVERS:
                raise SystemExit(f"serving: unknown server {s!r} (one of {' '.join(ALL_SERVERS)})")
        for m in self.models:
            if m not in ALL_MODELS:
                raise SystemExit(f"serving: unknown model {m!r} (one of {' '.join(ALL_MODELS)})")
        for p in self.protocols:
            if p not in PA_PROTOCOLS:
                raise SystemExit(f"serving: unknown protocol {p!r} (one of {' '.join(PA_PROTOCOLS)})")
        for t in self.alt_tools:
            if t not in ("wrk", "grpc-aio"):
                raise SystemExit(f"serving: unknown ALT_TOOLS entry {t!r} (wrk, grpc-aio)")
        self.pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
        if not self.pin:
            log("warning: no taskset or fewer than 2 CPUs: server and load generator are NOT pinned")

    def server_pin(self):
        return ["taskset", "-c", self.server_cpu] if self.pin else []

    def client_pin(self):
        return ["taskset", "-c", self.client_cpu] if self.pin else []


# ------------------------------------------------------------------------------------ helpers

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10.0):
    """(status, body bytes); status 0 when the connection failed."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, b""


def ort_signature(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    types = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64",
             "tensor(int32)": "INT32"}

    def spec(t):
        return t.name, types[t.type], [d if isinstance(d, int) else -1 for d in t.shape]

    return [spec(t) for t in s.get_inputs()], [spec(t) for t in s.get_outputs()]


def copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


# ------------------------------------------------------------------------------------ servers

class Server:
    """One server under test: its repository, process, protocols and output conventions."""

    name = ""
    models = ALL_MODELS
    pa_protocols = PA_PROTOCOLS        # what perf_analyzer can drive here
    has_grpc = True
    has_stats = False

    def __init__(self, cfg, manifest):
        self.cfg = cfg
        self.manifest = manifest
        self.repo = cfg.out / "repos" / self.name
        self.proc = None
        self.http_port = self.grpc_port = None
        self.log_path = cfg.out / "logs" / f"{self.name}.server.log"

    # what to ask for and how to read the answer, per model: (output name, extract fn)
    def oracle_output(self, model):
        if model in NETS:
            return "output", lambda a: a
        return "probabilities", lambda a: a[:, 1]

    def load_outputs(self, model):
        """Outputs named in load requests ([] = all the model has)."""
        return []

    def build_repo(self, models):
        raise NotImplementedError

    def command(self, models):
        raise NotImplementedError

    def environment(self):
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1")
        return env

    def start(self, models):
        self.http_port, self.grpc_port = free_port(), free_port()
        if self.repo.exists():
            shutil.rmtree(self.repo)
        self.repo.mkdir(parents=True)
        self.build_repo(models)
        cmd = self.cfg.server_pin() + self.command(models)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "wb")
        log(f"starting {self.name}: {' '.join(str(c) for c in cmd)}")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.environment(), cwd=str(ROOT), start_new_session=True)
        logf.close()
        RUNNING.append(self)
        deadline = time.monotonic() + 300
        base = f"http://127.0.0.1:{self.http_port}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready; "
                                   f"last lines of {self.log_path}:\n{self.tail()}")
            if http("GET", base + "/v2/health/ready", timeout=2)[0] == 200 and all(
                    http("GET", f"{base}/v2/models/{m}/ready", timeout=2)[0] == 200 for m in models):
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name}: not ready within 300 s; last lines of {self.log_path}:\n{self.tail()}")

    def tail(self, n=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        # the group may still hold children (Triton's stubs, MLServer's workers)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self in RUNNING:
            RUNNING.remove(self)
        self.proc = None

    def stats(self, model):
        """(inference_count, execution_count) from the V2 statistics extension, or None."""
        if not self.has_stats:
            return None
        status, body = http("GET", f"http://127.0.0.1:{self.http_port}/v2/models/{model}/stats", timeout=5)
        if status != 200:
            return None
        try:
            s = json.loads(body)["model_stats"]
            return (sum(int(v["inference_count"]) for v in s), sum(int(v["execution_count"]) for v in s))
        except (KeyError, ValueError, TypeError):
            return None

    def version(self):
        return ""


RUNNING = []


class Ferroserve(Server):
    name = "ferroserve"
    has_stats = True
    batching = "dynamic"

    def build_repo(self, models):
        files = {"mlp": "model.onnx", "cnn": "model.onnx", "xgboost": "model.json",
                 "lightgbm": "model.txt", "random_forest": "model.onnx"}
        for m in models:
            copy(DATA / "models" / m / files[m], self.repo / m / "1" / files[m])
            lines = [f"# written by bench/serving/run.py for the {self.name} leg",
                     f"max_batch_size = {self.cfg.max_batch}", "instances = 1",
                     f'batching = "{self.batching}"']
            if self.batching != "off":
                lines.append("max_queue_delay_us = 0")
            if m in NETS and self.cfg.ferro_runtime:
                lines.append(f'runtime = "{self.cfg.ferro_runtime}"')
            (self.repo / m / "model.toml").write_text("\n".join(lines) + "\n")

    def command(self, models):
        return [str(self.cfg.ferroserve_bin), "serve", "--model-repository", str(self.repo),
                "--host", "127.0.0.1", "--http-port", str(self.http_port),
                "--grpc-port", str(self.grpc_port),
                # warnings, plus the line saying which runtime loaded each model
                "--log", "warn,ferroserve_server::repository=info"]

    def version(self):
        try:
            return subprocess.run([str(self.cfg.ferroserve_bin), "--version"], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"


class FerroserveNoBatch(Ferroserve):
    name = "ferroserve-nobatch"
    models = ("mlp",)
    batching = "off"


class Triton(Server):
    name = "triton"
    has_stats = True

    def build_repo(self, models):
        for m in models:
            copy(DATA / "models" / m / "model.onnx", self.repo / m / "1" / "model.onnx")
            copy(HERE / "triton" / "model.py", self.repo / m / "1" / "model.py")
            inputs, outputs = ort_signature(DATA / "models" / m / "model.onnx")

            def tensor(name, dt, shape, output=False):
                dims = shape[1:]
                extra = ""
                if not dims:  # a [N] tensor: Triton needs a non-empty dims, reshaped away
                    dims, extra = [1], " reshape: { shape: [ ] }"
                return (f'  {{ name: "{name}" data_type: TYPE_{dt} '
                        f'dims: [ {", ".join(str(d) for d in dims)} ]{extra} }}')

            text = "\n".join([
                "# written by bench/serving/run.py: the ONNX model run by bench/serving/triton/model.py",
                f'name: "{m}"', 'backend: "python"', f"max_batch_size: {self.cfg.max_batch}",
                "input [", ",\n".join(tensor(*t) for t in inputs), "]",
                "output [", ",\n".join(tensor(*t, output=True) for t in outputs), "]",
                "instance_group [ { count: 1 kind: KIND_CPU } ]",
                "dynamic_batching { max_queue_delay_microseconds: 0 }", ""])
            (self.repo / m / "config.pbtxt").write_text(text)

    def command(self, models):
        return [str(TOOLS / "bin" / "tritonserver"), "--model-repository", str(self.repo),
                "--backend-directory", str(TOOLS / "triton-backends"),
                "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1",
                "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                "--allow-metrics", "false", "--allow-gpu-metrics", "false",
                "--strict-readiness", "true", "--exit-on-error", "true", "--log-verbose", "0"]

    def environment(self):
        env = super().environment()
        # the python backend stub: numpy<2 and onnxruntime from the triton venv, found through
        # PATH (its embedded interpreter looks for python3 there); its libpython from LIBDIR
        env["PATH"] = f"{TOOLS / 'triton' / 'bin'}:{env.get('PATH', '')}"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
        return env

    def version(self):
        status, body = http("GET", f"http://127.0.0.1:{self.http_port}/v2", timeout=5)
        try:
            return "Triton " + json.loads(body)["version"] if status == 200 else "Triton ?"
        except (ValueError, KeyError):
            return "Triton ?"


class MLServer(Server):
    name = "mlserver"
    models = TREES
    pa_protocols = ()
    runtimes = {"xgboost": ("mlserver_xgboost.XGBoostModel", "model.json"),
                "lightgbm": ("mlserver_lightgbm.LightGBMModel", "model.txt"),
                "random_forest": ("mlserver_sklearn.SKLearnModel", "model.joblib")}

    def oracle_output(self, model):
        if model == "random_forest":
            return "predict_proba", lambda a: a[:, 1]
        return "predict", lambda a: a.reshape(-1)  # MLServer returns 1-D outputs as [N, 1]

    def load_outputs(self, model):
        return [self.oracle_output(model)[0]]

    def build_repo(self, models):
        settings = {"debug": False, "host": "127.0.0.1", "http_port": self.http_port,
                    "grpc_port": self.grpc_port, "metrics_port": free_port(),
                    "parallel_workers": self.cfg.mlserver_workers}
        (self.repo / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
        for m in models:
            impl, file = self.runtimes[m]
            copy(DATA / "models" / m / file, self.repo / m / file)
            ms = {"name": m, "implementation": impl, "parameters": {"uri": f"./{file}", "version": "1"}}
            (self.repo / m / "model-settings.json").write_text(json.dumps(ms, indent=1) + "\n")

    def command(self, models):
        return [str(TOOLS / "mlserver" / "bin" / "mlserver"), "start", str(self.repo)]

    def environment(self):
        env = super().environment()
        env["PATH"] = f"{TOOLS / 'mlserver' / 'bin'}:{env.get('PATH', '')}"
        return env

    def version(self):
        status, body = http("GET", f"http://127.0.0.1:{self.http_port}/v2", timeout=5)
        try:
            return "MLServer " + json.loads(body)["version"] if status == 200 else "MLServer ?"
        except (ValueError, KeyError):
            return "MLServer ?"


class FastAPIServer(Server):
    name = "fastapi"
    pa_protocols = ("http-binary", "http-json")
    has_grpc = False

    def build_repo(self, models):
        for m in models:
            copy(DATA / "models" / m / "model.onnx", self.repo / m / "model.onnx")

    def command(self, models):
        cmd = [str(TOOLS / "fastapi" / "bin" / "python"), str(HERE / "fastapi_server.py"),
               "--host", "127.0.0.1", "--port", str(self.http_port),
               "--max-batch-size", str(self.cfg.max_batch)]
        for m in models:
            cmd += ["--model", f"{m}={self.repo / m / 'model.onnx'}"]
        return cmd

    def version(self):
        py = str(TOOLS / "fastapi" / "bin" / "python")
        code = ("import importlib.metadata as m; print(' '.join(f'{p} {m.version(p)}' for p in "
                "('fastapi', 'uvicorn', 'onnxruntime')))")
        try:
            return subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"


SERVER_CLASSES = {c.name: c for c in (Ferroserve, FerroserveNoBatch, Triton, MLServer, FastAPIServer)}


# ------------------------------------------------------------------------------------ oracle

def oracle_check(server, model, protocol, spec):
    """Checks the server's answers on `model` over `protocol` against the oracle; returns a list
    of mismatch descriptions (empty: all good)."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    rows = np.load(DATA / "data" / model / "rows.npy")
    oracle = np.load(DATA / "data" / model / "oracle.npy")
    out_name, extract = server.oracle_output(model)
    batches = [(i, i + 1) for i in range(16)] + [(16, 24)]
    problems = []
    if protocol == "grpc":
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        mod = grpcclient
    else:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}", network_timeout=60)
        mod = httpclient
    binary = protocol != "http-json"
    try:
        for lo, hi in batches:
            x = rows[lo:hi]
            inp = mod.InferInput(spec["input"], list(x.shape), "FP32")
            out = mod.InferRequestedOutput(out_name) if protocol == "grpc" else \
                mod.InferRequestedOutput(out_name, binary_data=binary)
            if protocol == "grpc":
                inp.set_data_from_numpy(x)
            else:
                inp.set_data_from_numpy(x, binary_data=binary)
            try:
                res = client.infer(model, [inp], outputs=[out])
                got = res.as_numpy(out_name)
            except Exception as e:  # tritonclient raises InferenceServerException and others
                problems.append(f"rows {lo}:{hi}: request failed: {type(e).__name__}: {e}")
                continue
            if got is None:
                problems.append(f"rows {lo}:{hi}: no output {out_name!r} in the answer")
                continue
            try:
                got = extract(np.asarray(got, dtype=np.float64))
            except (IndexError, ValueError) as e:
                problems.append(f"rows {lo}:{hi}: output {out_name!r} has shape {np.shape(got)}: {e}")
                continue
            want = oracle[lo:hi].astype(np.float64)
            if got.shape != want.shape:
                problems.append(f"rows {lo}:{hi}: {out_name!r} shape {got.shape}, oracle {want.shape}")
            elif not np.allclose(got, want, rtol=spec["rtol"], atol=spec["atol"]):
                d = np.abs(got - want).max()
                problems.append(f"rows {lo}:{hi}: {out_name!r} differs from the oracle by up to {d:.3g} "
                                f"(rtol {spec['rtol']}, atol {spec['atol']})")
            if len(problems) >= 3:
                break
    finally:
        client.close()
    return problems


def wrk_body(server, model):
    body = json.loads((DATA / "data" / model / "v2_request.json").read_text())
    outs = server.load_outputs(model)
    if outs:
        body["outputs"] = [{"name": n} for n in outs]
    return json.dumps(body, separators=(",", ":")).encode()


def check_wrk_body(server, model, spec, body):
    status, reply = http("POST", f"http://127.0.0.1:{server.http_port}/v2/models/{model}/infer", body,
                         {"Content-Type": "application/json"}, timeout=60)
    if status != 200:
        return [f"wrk's body: HTTP {status}: {reply[:300]!r}"]
    out_name, extract = server.oracle_output(model)
    try:
        outs = {o["name"]: o for o in json.loads(reply)["outputs"]}
        o = outs[out_name]
        got = extract(np.asarray(o["data"], dtype=np.float64).reshape(o["shape"]))
    except (KeyError, ValueError, TypeError) as e:
        return [f"wrk's body: cannot read {out_name!r} from the answer: {e}: {reply[:300]!r}"]
    want = np.load(DATA / "data" / model / "oracle.npy")[:1].astype(np.float64)
    if got.shape != want.shape or not np.allclose(got, want, rtol=spec["rtol"], atol=spec["atol"]):
        return [f"wrk's body: {out_name!r} = {got.ravel()[:4]} but the oracle says {want.ravel()[:4]}"]
    return []


# ------------------------------------------------------------------------------------ load tools

def cell(server, model, protocol, tool, c, **kw):
    row = {"server": server, "model": model, "protocol": protocol, "tool": tool, "concurrency": c,
           "infer_per_s": None, "p50_us": None, "p90_us": None, "p99_us": None, "avg_batch": None,
           "server_queue_us": None, "server_compute_us": None, "status": "ok", "note": ""}
    row.update(kw)
    return row


def run_perf_analyzer(cfg, server, model, protocol, c, logdir):
    spec_args = ["-m", model, "-b", "1", "--concurrency-range", f"{c}:{c}",
                 "--input-data", str(DATA / "data" / model / "perf_input.json"),
                 "--measurement-interval", str(cfg.window_ms)] + cfg.pa_extra
    if protocol == "grpc":
        spec_args += ["-u", f"127.0.0.1:{server.grpc_port}", "-i", "grpc"]
    else:
        spec_args += ["-u", f"127.0.0.1:{server.http_port}", "-i", "http"]
        if protocol == "http-json":
            spec_args += ["--input-tensor-format", "json", "--output-tensor-format", "json"]
        else:
            spec_args += ["--input-tensor-format", "binary", "--output-tensor-format", "binary"]
    tag = f"{server.name}-{model}-{protocol}-c{c}"
    note = ""
    for attempt, stability in enumerate((cfg.stability, 50)):
        csv_path = logdir / f"{tag}.csv"
        log_path = logdir / f"{tag}.log"
        if csv_path.exists():
            csv_path.unlink()
        cmd = cfg.client_pin() + [str(PA)] + spec_args + ["-s", str(stability), "-f", str(csv_path)]
        before = server.stats(model)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.pa_timeout)
            output, rc = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            output += f"\n[timed out after {cfg.pa_timeout} s]"
            rc = 124
        after = server.stats(model)
        log_path.write_text(" ".join(cmd) + "\n\n" + output)
        if rc == 0 and csv_path.is_file() and csv_path.stat().st_size > 0:
            with open(csv_path) as f:
                rec = next(csv.DictReader(f))
            num = lambda k: float(rec[k]) if rec.get(k) not in (None, "") else None  # noqa: E731
            avg = None
            if before and after and after[1] > before[1]:
                avg = (after[0] - before[0]) / (after[1] - before[1])
            queue, compute = num("Server Queue"), num("Server Compute Infer")
            return cell(server.name, model, protocol, "perf_analyzer", c,
                        infer_per_s=num("Inferences/Second"), p50_us=num("p50 latency"),
                        p90_us=num("p90 latency"), p99_us=num("p99 latency"), avg_batch=avg,
                        server_queue_us=queue if queue else None,
                        server_compute_us=compute if compute else None, note=note)
        if "stable" in output and attempt == 0:
            note = f"unstable at -s {cfg.stability}, measured at -s 50"
            continue
        last = [ln for ln in output.strip().splitlines() if ln.strip()][-3:]
        reason = " | ".join(last)[-400:] or f"exit {rc}"
        log(f"perf_analyzer FAILED on {tag} (exit {rc}): {reason}  (log: {log_path})")
        return cell(server.name, model, protocol, "perf_analyzer", c, status="failed", note=reason)
    raise AssertionError("unreachable")


WRK_LUA = r"""
-- written by bench/serving/run.py: POSTs one V2 JSON body (the file named after --), closed loop
local req
function init(args)
  local f = assert(io.open(args[1], "rb"))
  local body = f:read("*a")
  f:close()
  req = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
function request() return req end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50":%d,"p90":%d,"p99":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def measure_seconds(cfg):
    """Seconds wrk and grpc_load.py measure: about three perf_analyzer windows (whole seconds:
    wrk takes no fractions)."""
    return max(1, math.ceil(3 * cfg.window_ms / 1000))


def run_wrk(cfg, server, model, c, logdir, body_path):
    tag = f"{server.name}-{model}-wrk-c{c}"
    lua = logdir / "v2_post.lua"
    lua.write_text(WRK_LUA)
    url = f"http://127.0.0.1:{server.http_port}/v2/models/{model}/infer"
    wrk = str(TOOLS / "bin" / "wrk")
    base = cfg.client_pin() + [wrk, "-t", "1", "-c", str(c), "--timeout", "30s", "-s", str(lua)]
    # warm-up, then the measured run
    subprocess.run(base + ["-d", "1s", url, "--", str(body_path)], capture_output=True, timeout=60)
    secs = measure_seconds(cfg)
    cmd = base + ["-d", f"{secs}s", url, "--", str(body_path)]
    before = server.stats(model)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
        output = p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        output = "[timed out]"
    after = server.stats(model)
    (logdir / f"{tag}.log").write_text(" ".join(cmd) + "\n\n" + output)
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        return cell(server.name, model, "http-json", "wrk", c, status="failed", note=output.strip()[-300:])
    r = json.loads(line[len("WRKJSON "):])
    errors = r["socket_errors"] + r["non2xx"]
    ok = r["requests"] - r["non2xx"]
    avg = (after[0] - before[0]) / (after[1] - before[1]) if before and after and after[1] > before[1] else None
    row = cell(server.name, model, "http-json", "wrk", c, infer_per_s=ok / (r["duration_us"] / 1e6),
               p50_us=float(r["p50"]), p90_us=float(r["p90"]), p99_us=float(r["p99"]), avg_batch=avg)
    if errors:
        row.update(status="errors" if ok else "failed",
                   note=f"{r['non2xx']} non-2xx answers, {r['socket_errors']} socket errors of {r['requests']}")
    return row


def run_grpc_aio(cfg, server, model, c, logdir):
    tag = f"{server.name}-{model}-grpc-aio-c{c}"
    spec = server.manifest["models"][model]
    cmd = cfg.client_pin() + [sys.executable, str(HERE / "grpc_load.py"), "--url",
                              f"127.0.0.1:{server.grpc_port}", "--model", model,
                              "--rows", str(DATA / "data" / model / "rows.npy"), "--input", spec["input"],
                              "--concurrency", str(c), "--seconds", f"{measure_seconds(cfg):g}", "--warmup", "1"]
    for o in server.load_outputs(model):
        cmd += ["--output", o]
    before = server.stats(model)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=measure_seconds(cfg) + 90)
        output = p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        output = "[timed out]"
    after = server.stats(model)
    (logdir / f"{tag}.log").write_text(" ".join(cmd) + "\n\n" + output)
    try:
        r = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return cell(server.name, model, "grpc", "grpc-aio", c, status="failed", note=output.strip()[-300:])
    avg = (after[0] - before[0]) / (after[1] - before[1]) if before and after and after[1] > before[1] else None
    row = cell(server.name, model, "grpc", "grpc-aio", c, infer_per_s=r["infer_per_s"], p50_us=r["p50_us"],
               p90_us=r["p90_us"], p99_us=r["p99_us"], avg_batch=avg)
    if r["errors"]:
        row.update(status="errors" if r["requests"] else "failed",
                   note=f"{r['errors']} errors, first: {r['first_error']}")
    return row


# ------------------------------------------------------------------------------------ one server

def plan(cfg, server, model):
    """(protocol, tool) pairs to load `model` on `server` with: perf_analyzer for each protocol it
    can drive there; wrk (HTTP JSON) and grpc_load.py (gRPC) for MLServer, which it cannot, and for
    everyone on ALT_MODELS when ALT_TOOLS names them. PROTOCOLS filters all of them."""
    pairs = [(p, "perf_analyzer") for p in cfg.protocols if p in server.pa_protocols
             and cfg.perf_analyzer]
    own = server.name == "mlserver"
    if own or model in cfg.alt_models:
        if "http-json" in cfg.protocols and (own or "wrk" in cfg.alt_tools):
            pairs.append(("http-json", "wrk"))
        if "grpc" in cfg.protocols and server.has_grpc and (own or "grpc-aio" in cfg.alt_tools):
            pairs.append(("grpc", "grpc-aio"))
    return pairs


def bench_server(cfg, server, rows, failures):
    models = [m for m in cfg.models if m in server.models]
    if not models:
        return
    logdir = cfg.out / "logs" / server.name
    logdir.mkdir(parents=True, exist_ok=True)
    try:
        server.start(models)
    except (RuntimeError, OSError) as e:
        loud(f"{server.name} did not start: {e}")
        failures.append(f"{server.name}: did not start")
        for m in models:
            for proto, tool in plan(cfg, server, m):
                for c in cfg.concurrency:
                    rows.append(cell(server.name, m, proto, tool, c, status="failed",
                                     note="server did not start"))
        server.stop()
        return
    try:
        server.version_string = server.version()
        if server.name.startswith("ferroserve"):
            # which runtime loaded each model (its "model version ready" log line) and the
            # platform its model config reports
            import re
            ready = dict(re.findall(r'model version ready model=(\S+) version=\d+ runtime="?([^"\s]+)',
                                    server.log_path.read_text(errors="replace")))
            engines = []
            for m in models:
                status, body = http("GET", f"http://127.0.0.1:{server.http_port}/v2/models/{m}/config")
                try:
                    c = json.loads(body) if status == 200 else {}
                except ValueError:
                    c = {}
                engines.append(f"{m}: runtime {ready.get(m, '?')}, platform {c.get('platform') or '?'}")
            server.version_string += f" ({'; '.join(engines)})"
        log(f"{server.name} ready ({server.version_string}) on http {server.http_port}, grpc {server.grpc_port}")
        for m in models:
            spec = server.manifest["models"][m]
            pairs = plan(cfg, server, m)
            problems = []
            body_path = logdir / f"{m}.v2_request.json"
            body_path.write_bytes(wrk_body(server, m))
            for proto in sorted({p for p, _ in pairs}):
                for pr in oracle_check(server, m, proto, spec):
                    problems.append(f"{proto}: {pr}")
            if any(t == "wrk" for _, t in pairs):
                problems += check_wrk_body(server, m, spec, body_path.read_bytes())
            if problems:
                loud(f"ORACLE MISMATCH: {server.name} answers {m} wrongly; not loading it:\n  "
                     + "\n  ".join(problems))
                failures.append(f"{server.name}/{m}: oracle mismatch: {problems[0]}")
                for proto, tool in pairs:
                    for c in cfg.concurrency:
                        rows.append(cell(server.name, m, proto, tool, c, status="wrong answers",
                                         note=problems[0][:300]))
                continue
            log(f"{server.name}/{m}: answers match the oracle over {', '.join(sorted({p for p, _ in pairs}))}")
            for proto, tool in pairs:
                for c in cfg.concurrency:
                    if not server.alive():
                        rows.append(cell(server.name, m, proto, tool, c, status="failed",
                                         note="server died"))
                        continue
                    if tool == "perf_analyzer":
                        r = run_perf_analyzer(cfg, server, m, proto, c, logdir)
                    elif tool == "wrk":
                        r = run_wrk(cfg, server, m, c, logdir, body_path)
                    else:
                        r = run_grpc_aio(cfg, server, m, c, logdir)
                    rows.append(r)
                    if r["status"] != "ok":
                        failures.append(f"{server.name}/{m}/{proto}/{tool}/c{c}: {r['status']}: {r['note'][:200]}")
                    log(f"  {m:13} {proto:11} {tool:13} c{c:<3} " + (
                        f"{r['infer_per_s']:10.1f} infer/s  p50 {r['p50_us'] / 1000:7.3f} ms  "
                        f"p99 {r['p99_us'] / 1000:7.3f} ms"
                        + (f"  batch {r['avg_batch']:.1f}" if r["avg_batch"] else "")
                        if r["infer_per_s"] is not None else f"{r['status']}: {r['note'][:160]}"))
        if not server.alive():
            loud(f"{server.name} died during the run; last lines of its log:\n{server.tail()}")
            failures.append(f"{server.name}: died during the run")
    finally:
        server.stop()


# ------------------------------------------------------------------------------------ report

def fmt_ms(us):
    return "" if us is None else f"{us / 1000:.3f}"


def fmt_batch(x):
    return "" if x is None else f"{x:.1f}"


def fmt_rate(x):
    return "" if x is None else f"{x:,.0f}"


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()) and r["status"] == "ok":
            return r
    return None


def goals(cfg, rows, ref, floor=None):
    """Lines of the goals section, computed from the cells that exist."""
    out = []
    cmax = max(cfg.concurrency)
    # 1. MLP, c32: >= 2x Triton over gRPC and HTTP binary at no worse p99
    for proto in ("grpc", "http-binary"):
        f = find(rows, server="ferroserve", model="mlp", protocol=proto, tool="perf_analyzer", concurrency=cmax)
        t = find(rows, server="triton", model="mlp", protocol=proto, tool="perf_analyzer", concurrency=cmax)
        if f and t:
            ratio = f["infer_per_s"] / t["infer_per_s"]
            ok = ratio >= 2 and f["p99_us"] <= t["p99_us"]
            out.append(f"| MLP c{cmax} {proto}: ≥2× Triton infer/s at no worse p99 | {ratio:.2f}× "
                       f"({fmt_rate(f['infer_per_s'])} vs {fmt_rate(t['infer_per_s'])}), p99 "
                       f"{fmt_ms(f['p99_us'])} vs {fmt_ms(t['p99_us'])} ms | {'met' if ok else 'NOT met'} |")
    # 2. trees: >= 10x MLServer, same tool
    for m in TREES:
        for proto, tool in (("http-json", "wrk"), ("grpc", "grpc-aio")):
            f = find(rows, server="ferroserve", model=m, protocol=proto, tool=tool, concurrency=cmax)
            s = find(rows, server="mlserver", model=m, protocol=proto, tool=tool, concurrency=cmax)
            if f and s:
                ratio = f["infer_per_s"] / s["infer_per_s"]
                out.append(f"| {m} c{cmax} {proto} ({tool}): ≥10× MLServer | {ratio:.1f}× "
                           f"({fmt_rate(f['infer_per_s'])} vs {fmt_rate(s['infer_per_s'])}) | "
                           f"{'met' if ratio >= 10 else 'NOT met'} |")
    # 3. CNN c32: >= 85% of the in-process call at the same batch size
    inproc = (ref or {}).get("models", {})
    for proto in PA_PROTOCOLS:
        f = find(rows, server="ferroserve", model="cnn", protocol=proto, tool="perf_analyzer", concurrency=cmax)
        if f and "cnn" in inproc and f["avg_batch"]:
            b = str(max(1, round(f["avg_batch"])))
            if b in inproc["cnn"]:
                lim = inproc["cnn"][b]["rows_per_s"]
                share = f["infer_per_s"] / lim
                out.append(f"| CNN c{cmax} {proto}: ≥85% of in-process onnxruntime at the batch formed "
                           f"(b{b}) | {share:.0%} ({fmt_rate(f['infer_per_s'])} vs {fmt_rate(lim)} rows/s) | "
                           f"{'met' if share >= 0.85 else 'NOT met'} |")
    # 4. c1 p50 within in-process b1 + 60 us
    if 1 in cfg.concurrency:
        for m in NETS:
            if m not in inproc or "1" not in inproc[m]:
                continue
            t1 = inproc[m]["1"]["median_us"]
            idle = inproc[m].get("b1_after_idle")
            cold = (f"; the same call after {idle['gap_us']:.0f} µs idle takes {idle['median_us']:.0f} µs"
                    if idle else "")
            for proto in PA_PROTOCOLS:
                f = find(rows, server="ferroserve", model=m, protocol=proto, tool="perf_analyzer", concurrency=1)
                if f:
                    over = f["p50_us"] - t1
                    beyond = (f"; +{over - floor['cross_core_us']:.0f} µs beyond the "
                              f"{floor['cross_core_us']:.0f} µs transport floor") if floor else ""
                    out.append(f"| {m.upper()} c1 {proto}: p50 ≤ in-process b1 + 60 µs | p50 "
                               f"{f['p50_us']:.0f} µs, in-process {t1:.0f} µs: +{over:.0f} µs{beyond}{cold} | "
                               f"{'met' if over <= 60 else 'NOT met'} |")
    # 5. dynamic batching >= 3x batching off, MLP c32
    for proto in PA_PROTOCOLS:
        on = find(rows, server="ferroserve", model="mlp", protocol=proto, tool="perf_analyzer", concurrency=cmax)
        off = find(rows, server="ferroserve-nobatch", model="mlp", protocol=proto, tool="perf_analyzer",
                   concurrency=cmax)
        if on and off:
            ratio = on["infer_per_s"] / off["infer_per_s"]
            out.append(f"| MLP c{cmax} {proto}: dynamic batching ≥3× batching off | {ratio:.2f}× "
                       f"({fmt_rate(on['infer_per_s'])} vs {fmt_rate(off['infer_per_s'])}) | "
                       f"{'met' if ratio >= 3 else 'NOT met'} |")
    return out


def machine_info():
    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpus"] = os.cpu_count()
    info["kernel"] = os.uname().release
    try:
        info["commit"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def write_results(cfg, rows, ref, floor, versions, failures, started, minutes):
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    base = cfg.results_dir / cfg.results_name
    fields = ["server", "model", "protocol", "tool", "concurrency", "infer_per_s", "p50_us", "p90_us",
              "p99_us", "avg_batch", "server_queue_us", "server_compute_us", "status", "note"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.3f}" if isinstance(r[k], float) else r[k]))
                    for k in fields})
    base.with_suffix(".csv").write_text(buf.getvalue())
    info = machine_info()
    settings = {k: getattr(cfg, k) for k in ("servers", "models", "protocols", "concurrency", "window_ms",
                                             "stability", "alt_tools", "alt_models", "max_batch",
                                             "ferro_runtime", "mlserver_workers", "server_cpu",
                                             "client_cpu", "pin", "pa_extra")}
    settings["ferroserve_bin"] = str(cfg.ferroserve_bin)
    base.with_suffix(".json").write_text(json.dumps(
        {"started": started, "machine": info, "settings": settings, "versions": versions,
         "cells": rows, "inprocess": ref, "transport_floor": floor, "failures": failures},
        indent=1) + "\n")

    md = [f"# Serving benchmark, {started} ({minutes:.0f} min)", "",
          "Written by `bench/serving/run.py` (the side-by-side benchmark); raw cells in "
          f"`{base.name}.csv` / `.json`.", "",
          f"Machine: {info.get('cpu', '?')}, {info.get('cpus')} CPUs, Linux {info.get('kernel')}; "
          f"commit {info.get('commit', '?')}. "
          + (f"Server on CPU {cfg.server_cpu}, load generator on CPU {cfg.client_cpu} (taskset); "
             if cfg.pin else "NOT pinned; ")
          + "one intra-op thread in every engine; batch-1 requests with the benchmark's real rows; "
          f"perf_analyzer windows of {cfg.window_ms} ms (-s {cfg.stability}); wrk and grpc_load.py "
          f"measure {measure_seconds(cfg):g} s after 1 s of warm-up. Batching servers: max_batch_size "
          f"{cfg.max_batch}, one instance, dynamic batching with no queue delay "
          "(ferroserve-nobatch: `batching = \"off\"`).", "",
          "Servers: " + "; ".join(f"{k}: {v}" for k, v in versions.items() if v) + ". "
          "Triton runs every model through its python backend calling onnxruntime on the ONNX file "
          "(the only backend the nvidia-pytriton wheel ships); MLServer serves the tree models in "
          "their native formats and, having no model-config endpoint or RPC, is loaded with wrk "
          "(HTTP JSON) and grpc_load.py (gRPC) instead of perf_analyzer, as are the other servers "
          "on the tree models for a same-tool comparison; FastAPI has no gRPC."
          + (f" perf_analyzer flags added: `{' '.join(cfg.pa_extra)}`." if cfg.pa_extra else ""), ""]
    if floor:
        md += [f"Transport floor (`floor.py`, measured before the servers): a bare TCP round trip "
               f"between the two pinned cores takes {floor['cross_core_us']:.0f} µs (median; "
               f"{floor['same_core_us']:.0f} µs on one core). No server's batch-1 latency can be "
               "lower; on this virtual machine most of it is waking an idle virtual CPU.", ""]
    if failures:
        md += ["## Failures", ""] + [f"- {f}" for f in failures] + [""]
    g = goals(cfg, rows, ref, floor)
    if g:
        md += ["## Goals, from this run", "", "| goal | measured | |", "|---|---|---|"] + g + [""]
    md += ["## Results", "", "Latencies in ms; avg batch = requests per model execution, from the "
           "server's statistics (ferroserve, Triton).", ""]
    for m in ALL_MODELS:
        mrows = [r for r in rows if r["model"] == m]
        if not mrows:
            continue
        md += [f"### {m}", "", "| server | protocol | tool | conc. | infer/s | p50 | p90 | p99 | avg batch | note |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for r in mrows:
            note = r["note"] if r["status"] == "ok" else f"**{r['status']}**: {r['note']}"
            note = note.replace("|", "/").replace("\n", " ")[:200]
            md.append(f"| {r['server']} | {r['protocol']} | {r['tool']} | {r['concurrency']} | "
                      f"{fmt_rate(r['infer_per_s'])} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p90_us'])} | "
                      f"{fmt_ms(r['p99_us'])} | {fmt_batch(r['avg_batch'])} | {note} |")
        md.append("")
    if ref:
        md += ["## In-process onnxruntime, one thread (the physical limit)", "",
               f"onnxruntime {ref.get('onnxruntime')}, `InferenceSession.run` median per call, on the "
               "server's core.", "", "| model | batch | median per call | rows/s |", "|---|---|---|---|"]
        for m, by in ref["models"].items():
            for b in sorted((k for k in by if k.isdigit()), key=int):
                md.append(f"| {m} | {b} | {by[b]['median_us'] / 1000:.3f} ms | {by[b]['rows_per_s']:,.0f} |")
            if "b1_after_idle" in by:
                idle = by["b1_after_idle"]
                md.append(f"| {m} | 1, after {idle['gap_us']:.0f} µs idle | {idle['median_us'] / 1000:.3f} ms | "
                          f"{1e6 / idle['median_us']:,.0f} |")
        md.append("")
    base.with_suffix(".md").write_text("\n".join(md))
    return base


def transport_floor(cfg):
    """The bare TCP round trip between the two pinned cores (bench/serving/floor.py), measured
    while the machine is quiet, as every c1 request is."""
    if not cfg.pin:
        return None
    cmd = [sys.executable, str(HERE / "floor.py"), "--server-cpu", cfg.server_cpu,
           "--load-cpu", cfg.client_cpu]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        log(f"transport floor failed: {p.stderr[-500:]}")
        return None
    floor = json.loads(p.stdout.strip().splitlines()[-1])
    log(f"transport floor: TCP round trip {floor['cross_core_us']:.0f} µs across the two cores, "
        f"{floor['same_core_us']:.0f} µs on one")
    return floor


def inprocess_reference(cfg, rows):
    models = [m for m in NETS if m in cfg.models]
    models += [m for m in TREES if m in cfg.models]
    if not models:
        return None
    batches = {1, 8, 32}
    for r in rows:
        if r["avg_batch"] and r["model"] in NETS:
            batches.add(max(1, round(r["avg_batch"])))
    cmd = cfg.server_pin() + [sys.executable, str(HERE / "inprocess.py"), "--data", str(DATA),
                              "--models", ",".join(models),
                              "--batches", ",".join(str(b) for b in sorted(batches)),
                              "--budget", f"{min(1.5, max(0.3, cfg.window_ms / 1000)):g}"]
    log(f"in-process reference: {' '.join(cmd)}")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        log(f"in-process reference failed: {p.stderr[-500:]}")
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    cfg = Config()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.monotonic()
    manifest_path = DATA / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"serving: no {manifest_path.relative_to(ROOT)}: run bench/serving/gen_models.py")
    manifest = json.loads(manifest_path.read_text())
    if "ferroserve" in cfg.servers or "ferroserve-nobatch" in cfg.servers:
        if not os.access(cfg.ferroserve_bin, os.X_OK):
            raise SystemExit(f"serving: no ferroserve binary at {cfg.ferroserve_bin} "
                             "(cargo build --release -p ferroserve, or set FERROSERVE_BIN)")
    if not PA.is_file():
        raise SystemExit("serving: no .tools/bin/perf_analyzer: run bench/serving/setup.sh")
    for s in cfg.servers:
        need = {"triton": TOOLS / "bin" / "tritonserver", "mlserver": TOOLS / "mlserver" / "bin" / "mlserver",
                "fastapi": TOOLS / "fastapi" / "bin" / "python"}.get(s)
        if need and not need.exists():
            raise SystemExit(f"serving: {need} missing: run bench/serving/setup.sh")
    if "http-json" in cfg.protocols and ("mlserver" in cfg.servers or "wrk" in cfg.alt_tools):
        if not (TOOLS / "bin" / "wrk").exists():
            raise SystemExit("serving: .tools/bench/bin/wrk missing: run bench/serving/setup.sh")
    cfg.out.mkdir(parents=True, exist_ok=True)
    log(f"work folder {cfg.out}; servers {' '.join(cfg.servers)}; models {' '.join(cfg.models)}; "
        f"protocols {' '.join(cfg.protocols)}; concurrency {cfg.concurrency}; window {cfg.window_ms} ms")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    rows, failures, versions = [], [], {}
    floor = transport_floor(cfg)
    try:
        for name in cfg.servers:
            server = SERVER_CLASSES[name](cfg, manifest)
            bench_server(cfg, server, rows, failures)
            versions[name] = getattr(server, "version_string", "")
        ref = inprocess_reference(cfg, rows) if cfg.inprocess else None
    finally:
        for s in list(RUNNING):
            s.stop()
    base = write_results(cfg, rows, ref, floor, versions, failures, started,
                         (time.monotonic() - t0) / 60)
    log(f"results: {base.with_suffix('.md')} (+ .csv, .json); logs in {cfg.out}/logs")
    if failures:
        loud(f"{len(failures)} failure(s):\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        for s in list(RUNNING):
            s.stop()
        print(f"serving: interrupted ({e or 'Ctrl-C'}); servers stopped, no results written",
              file=sys.stderr)
        sys.exit(130)
