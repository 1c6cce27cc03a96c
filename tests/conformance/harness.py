"""Shared by the client-conformance suites (test_tritonclient.py, test_kserve_client.py): the
example models' oracles, a ferroserve process started on port 0, a throwaway PKI, and API keys
from the real `ferroserve keys add` (the fixtures built on them are in conftest.py).

tritonclient's and KServe's gRPC modules both register the `inference.*` protobuf messages, so
the two suites run in separate processes; this module imports neither client.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "examples" / "models"
ORACLES_DIR = ROOT / "examples" / "oracles"
MODELS = ["digits_mlp", "iris_logreg", "cnn"]
RTOL, ATOL = 1e-5, 1e-6
START_TIMEOUT_S = 60.0

LISTEN_RE = re.compile(r"listening on https?://(?:127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0):(\d+)")
GRPC_LISTEN_RE = re.compile(r"listening on grpcs?://(?:127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0):(\d+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

NP_DTYPE = {"FP32": np.float32, "INT64": np.int64}


# ----------------------------------------------------------------------------- oracles
class Oracle:
    """examples/oracles/<model>: the request rows and the expected outputs."""

    def __init__(self, model: str):
        d = ORACLES_DIR / model
        req = json.loads((d / "request.json").read_text())
        (inp,) = req["inputs"]
        self.model = model
        self.request_body = req
        self.input_name = inp["name"]
        self.input_datatype = inp["datatype"]
        self.x = np.asarray(inp["data"], dtype=NP_DTYPE[inp["datatype"]]).reshape(inp["shape"])
        exp = json.loads((d / "expected.json").read_text())
        self.outputs = {
            o["name"]: (o["datatype"], np.asarray(o["data"], dtype=NP_DTYPE[o["datatype"]]).reshape(o["shape"]))
            for o in exp["outputs"]
        }

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)


ORACLE = {m: Oracle(m) for m in MODELS}


def assert_output(model: str, name: str, got: np.ndarray | None, rows: slice = slice(None)) -> None:
    datatype, want = ORACLE[model].outputs[name]
    want = want[rows]
    assert got is not None, f"{model}: output {name!r} missing from the response"
    assert tuple(got.shape) == tuple(want.shape), f"{model}/{name}: shape {got.shape} != {want.shape}"
    if datatype == "FP32":
        assert got.dtype == np.float32, f"{model}/{name}: dtype {got.dtype}"
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{model}/{name}")
    else:
        assert got.dtype == np.int64, f"{model}/{name}: dtype {got.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=f"{model}/{name}")


# ----------------------------------------------------------------------------- server process
def ferroserve_bin() -> Path:
    p = Path(os.environ.get("FERROSERVE_BIN", "target/debug/ferroserve"))
    return p if p.is_absolute() else ROOT / p


class Server:
    """One ferroserve process; its output is drained by a thread (last lines kept for errors)."""

    def __init__(self, repo: Path, explicit: bool = False, extra_args: list[str] | None = None,
                 tls: "TestPki | None" = None):
        exe = ferroserve_bin()
        if not exe.is_file():
            pytest.fail(f"ferroserve binary not found at {exe} (build it with `cargo build`, "
                        f"or set FERROSERVE_BIN)", pytrace=False)
        cmd = [str(exe), "serve", "--model-repository", str(repo), "--http-port", "0", "--grpc-port", "0",
               "--host", "127.0.0.1"]
        if explicit:
            cmd += ["--model-control", "explicit"]
        cmd += extra_args or []
        self.tls = tls
        if tls is not None:
            cmd += ["--tls-cert", str(tls.server_crt), "--tls-key", str(tls.server_key),
                    "--tls-client-ca", str(tls.ca_crt)]
        self.cmd = cmd
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        self._port_found = threading.Event()
        self._eof = threading.Event()
        self.port: int | None = None
        self.grpc_port: int | None = None
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        try:
            self._wait_started()
        except BaseException:
            self.stop()
            raise

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = ANSI_RE.sub("", raw.decode("utf-8", "replace")).rstrip("\n")
            self.log.append(line)
            if self.grpc_port is None:
                m = GRPC_LISTEN_RE.search(line)
                if m:
                    self.grpc_port = int(m.group(1))
            if self.port is None:
                m = LISTEN_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._port_found.set()
        self._eof.set()

    def logs(self) -> str:
        return "\n".join(self.log)

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._port_found.wait(0.05):
            if self._eof.is_set() or self.proc.poll() is not None:
                self.proc.wait(timeout=5)
                pytest.fail(f"{' '.join(self.cmd)} exited with {self.proc.returncode} before "
                            f"logging 'listening on ...':\n{self.logs()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no 'listening on http://127.0.0.1:PORT' line within {START_TIMEOUT_S:.0f} s "
                            f"from {' '.join(self.cmd)}:\n{self.logs()}", pytrace=False)
        last = None
        context = self.tls.ssl_context() if self.tls is not None else None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/v2/health/ready", timeout=2,
                                            context=context) as r:
                    if r.status == 200:
                        return
                    last = r.status
            except urllib.error.HTTPError as e:
                last = e.code
            except OSError as e:
                last = e
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"/v2/health/ready never answered 200 (last: {last}):\n{self.logs()}", pytrace=False)

    @property
    def url(self) -> str:  # tritonclient wants host:port without a scheme
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def client(self, **kw):
        """A tritonclient.http client for this server."""
        import tritonclient.http as httpclient

        return httpclient.InferenceServerClient(url=self.url, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)


# ----------------------------------------------------------------------------- API keys
def add_key(keys_file: Path, name: str, *scope_args: str) -> str:
    """A new key from the real `ferroserve keys add`, which prints it once on stdout."""
    out = subprocess.run([str(ferroserve_bin()), "keys", "add", "--file", str(keys_file), "--name", name,
                          *scope_args], check=True, capture_output=True, text=True, timeout=30)
    key = out.stdout.strip()
    assert key.startswith("fsk_") and key not in keys_file.read_text()
    return key


def bearer(key: str) -> dict[str, str]:
    # gRPC metadata keys are lower case (grpc refuses "Authorization"); HTTP takes either.
    return {"authorization": f"Bearer {key}"}


# ----------------------------------------------------------------------------- TLS
class TestPki:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate with
    CN=tritonclient, made by the openssl command line."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, root: Path):
        self.root = root
        self.ca_crt, self.ca_key = root / "ca.crt", root / "ca.key"
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", self.ca_key, "-out", self.ca_crt, "-days", "2",
                      "-subj", "/CN=ferroserve test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.server_crt, self.server_key = self._issue(
            "server", "/CN=server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
        self.client_crt, self.client_key = self._issue(
            "client", "/CN=tritonclient", "extendedKeyUsage=clientAuth")

    def _openssl(self, *args) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)

    def _issue(self, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        crt, key, csr = (self.root / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
        ext = self.root / f"{name}.ext"
        ext.write_text(extensions + "\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", subject)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca_crt, "-CAkey", self.ca_key,
                      "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
        return crt, key

    def ssl_context(self):
        import ssl
        context = ssl.create_default_context(cafile=str(self.ca_crt))
        context.load_cert_chain(str(self.client_crt), str(self.client_key))
        return context
