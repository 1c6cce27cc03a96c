"""Fixtures shared by the client-conformance suites: servers with API keys and with mutual
TLS (see harness.py)."""

from __future__ import annotations

import subprocess

import pytest

from harness import MODELS_DIR, Server, TestPki, add_key, ferroserve_bin


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A server started with --api-keys: an inference key for iris_logreg only, a read key, and
    one with both for perf_analyzer."""
    keys_file = tmp_path_factory.mktemp("keys") / "keys.toml"
    iris_key = add_key(keys_file, "iris-client", "--scope", "infer", "--model", "iris_logreg")
    read_key = add_key(keys_file, "dashboards", "--scope", "read")
    # perf_analyzer reads the model's statistics around each measurement: infer and read.
    bench_key = add_key(keys_file, "bench", "--scope", "infer,read")
    s = Server(MODELS_DIR, extra_args=["--api-keys", str(keys_file)])
    yield s, {"iris": iris_key, "read": read_key, "bench": bench_key}
    s.stop()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A server with TLS on both listeners and mutual TLS: the client certificate CN=tritonclient
    maps to an `infer` entry of the key file; a key with infer and read for perf_analyzer."""
    root = tmp_path_factory.mktemp("pki")
    pki = TestPki(root)
    keys_file = root / "keys.toml"
    subprocess.run([str(ferroserve_bin()), "keys", "add", "--file", str(keys_file), "--name", "triton-app",
                    "--scope", "infer", "--subject", "tritonclient"], check=True, capture_output=True,
                   timeout=30)
    bench_key = add_key(keys_file, "bench", "--scope", "infer,read")
    s = Server(MODELS_DIR, extra_args=["--api-keys", str(keys_file)], tls=pki)
    yield s, pki, bench_key
    s.stop()


