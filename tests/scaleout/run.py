"""Three ferroserve replicas behind nginx on loopback agree with each other.

Each replica serves the same model repository (polled every second), shares the bandits'
learning through redis-server (`--state redis://`), and signs feedback ids with the same key
file. nginx balances round-robin and retries a request a replica could not take on the next
one (`proxy_next_upstream ... non_idempotent`). Checked, in order:

1. stickiness: a split's user is sent to the same variant by every replica;
2. the bandit: ROUNDS rounds through nginx, each answer's feedback posted to a random
   replica, rewards drawn with probability 0.9 / 0.5 / 0.3 by variant; over the last fifth
   of the rounds more than 90 % go to the best variant, and the three replicas learn about as
   fast as one (the same rounds against one replica alone);
3. under closed-loop load through nginx: a new version published (copied beside, renamed into
   place) is served by every replica within two poll intervals, and a rolling restart (SIGTERM
   one replica at a time, start it again, wait until ready) fails no request.

Usage: python3 tests/scaleout/run.py --bin target/debug/ferroserve [--rounds 5000]
"""

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
REQUEST = json.loads((ROOT / "examples/oracles/iris_logreg/request.json").read_text())
PAYS = {"iris_logreg@1": 0.3, "iris_logreg@2": 0.5, "iris_logreg@3": 0.9}
BEST = "iris_logreg@3"
POLL_SECS = 1.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, headers=None, timeout=10):
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def wait_until(what, check, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise SystemExit(f"scaleout: FAIL: {what} within {seconds} s")


class Cluster:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.repo = work / "models"
        self.processes = {}
        self.ports = [free_port() for _ in range(3)]
        self.redis_port = free_port()
        self.nginx_port = free_port()
        self.key = work / "feedback.key"
        self.key.write_text(os.urandom(32).hex() + "\n")
        self.make_repository()

    def make_repository(self):
        iris = self.repo / "iris_logreg"
        for version in ("1", "2", "3"):
            (iris / version).mkdir(parents=True)
            shutil.copy(ROOT / "examples/models/iris_logreg/1/model.onnx", iris / version / "model.onnx")
        (iris / "model.toml").write_text('version_policy = "all"\n')
        live = self.repo / "live" / "1"
        live.mkdir(parents=True)
        shutil.copy(ROOT / "examples/models/iris_logreg/1/model.onnx", live / "model.onnx")
        for name, toml in {
            "ab": 'kind = "split"\nvariants = { "iris_logreg@1" = 50, "iris_logreg@2" = 50 }\nsticky_by = "user"\n',
            "pick": 'kind = "bandit"\nvariants = ["iris_logreg@1", "iris_logreg@2", "iris_logreg@3"]\n',
            "pick_alone": 'kind = "bandit"\nvariants = ["iris_logreg@1", "iris_logreg@2", "iris_logreg@3"]\n',
        }.items():
            (self.repo / name).mkdir()
            (self.repo / name / "model.toml").write_text(toml)

    def start_redis(self):
        self.processes["redis"] = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def start_replica(self, i):
        log = open(self.work / f"replica-{i}.log", "ab")
        self.processes[i] = subprocess.Popen(
            [self.binary, "serve", "--model-repository", str(self.repo), "--host", "127.0.0.1",
             "--http-port", str(self.ports[i]), "--no-grpc", "--model-control", "poll",
             "--repository-poll-secs", str(POLL_SECS), "--state", f"redis://127.0.0.1:{self.redis_port}",
             "--feedback-key-file", str(self.key), "--state-dir", str(self.work / f"state-{i}"),
             "--exit-timeout-secs", "10"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        wait_until(f"replica {i} ready", lambda: get(f"{self.url(i)}/v2/health/ready")[0] == 200)

    def start_nginx(self):
        prefix = self.work / "nginx"
        prefix.mkdir()
        upstreams = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in self.ports)
        (prefix / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    upstream ferroserve {{
{upstreams}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.nginx_port};
        location / {{
            proxy_pass http://ferroserve;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.processes["nginx"] = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "ab"),
        )
        wait_until("nginx answering", lambda: get(f"{self.front}/v2/health/ready")[0] == 200)

    @property
    def front(self):
        return f"http://127.0.0.1:{self.nginx_port}"

    def url(self, i):
        return f"http://127.0.0.1:{self.ports[i]}"

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def check_stickiness(cluster):
    by_user = {}
    for user in range(30):
        seen = set()
        for i in range(3):
            body = dict(REQUEST, parameters={"user": f"u{user}"})
            status, answer = post(f"{cluster.url(i)}/v2/models/ab/infer", body)
            assert status == 200, answer
            seen.add(answer["parameters"]["variant"])
        assert len(seen) == 1, f"user u{user} got {seen} from the three replicas"
        by_user[user] = seen.pop()
    shares = {v: list(by_user.values()).count(v) for v in set(by_user.values())}
    assert len(shares) == 2, shares
    print(f"scaleout: stickiness: 30 users, each on one variant on all 3 replicas; split {shares}")


def bandit_rounds(model, front, feedback_urls, rounds, rng):
    chosen = []
    for _ in range(rounds):
        status, answer = post(f"{front}/v2/models/{model}/infer", REQUEST)
        assert status == 200, answer
        variant = answer["parameters"]["variant"]
        reward = 1.0 if rng.random() < PAYS[variant] else 0.0
        status, body = post(
            f"{rng.choice(feedback_urls)}/v2/models/{model}/feedback",
            {"id": answer["parameters"]["feedback_id"], "reward": reward},
        )
        assert status == 200, body
        chosen.append(variant)
    return chosen


def shares_by_fifth(chosen):
    fifth = len(chosen) // 5
    return [sum(v == BEST for v in chosen[k * fifth:(k + 1) * fifth]) / fifth for k in range(5)]


def check_bandit(cluster, rounds):
    rng = random.Random(7)
    together = bandit_rounds("pick", cluster.front, [cluster.url(i) for i in range(3)], rounds, rng)
    alone = bandit_rounds("pick_alone", cluster.url(0), [cluster.url(0)], rounds, rng)
    shared, single = shares_by_fifth(together), shares_by_fifth(alone)
    fmt = lambda shares: " ".join(f"{s:.2f}" for s in shares)
    print(f"scaleout: bandit, share of the best variant by fifth of {rounds} rounds:")
    print(f"scaleout:   3 replicas, shared state, feedback to a random replica: {fmt(shared)}")
    print(f"scaleout:   1 replica alone:                                        {fmt(single)}")
    assert shared[-1] > 0.9, f"3 replicas: {shared[-1]:.2f} of the last fifth to the best variant"
    assert shared[-1] >= single[-1] - 0.05, (shared, single)
    # Replay: an id rewarded through one replica is refused by another.
    status, answer = post(f"{cluster.front}/v2/models/pick/infer", REQUEST)
    feedback = {"id": answer["parameters"]["feedback_id"], "reward": 1.0}
    assert post(f"{cluster.url(0)}/v2/models/pick/feedback", feedback)[0] == 200
    status, body = post(f"{cluster.url(1)}/v2/models/pick/feedback", feedback)
    assert status == 409, (status, body)
    print("scaleout: a feedback id spent on one replica is refused by another (409)")


class Load:
    """Closed-loop clients through nginx until stopped; counts answers and failures."""

    def __init__(self, front, clients=4):
        self.front = front
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self):
        while not self.stop.is_set():
            try:
                status, answer = post(f"{self.front}/v2/models/live/infer", REQUEST, timeout=15)
                good = status == 200 and answer["outputs"]
            except Exception as e:  # a refused or reset connection is a failed request
                status, answer, good = None, repr(e), False
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failures.append((status, str(answer)[:200]))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def versions(cluster, i):
    status, body = get(f"{cluster.url(i)}/v2/models/live")
    return json.loads(body).get("versions", []) if status == 200 else []


def check_publish_and_rolling_restart(cluster):
    with Load(cluster.front) as load:
        time.sleep(1)
        # Publish: the version's files are written beside, then renamed into place at once.
        incoming = cluster.repo / "live" / ".incoming-2"
        incoming.mkdir()
        shutil.copy(ROOT / "examples/models/iris_logreg/1/model.onnx", incoming / "model.onnx")
        published = time.monotonic()
        incoming.rename(cluster.repo / "live" / "2")
        wait_until("every replica serving live version 2",
                   lambda: all("2" in versions(cluster, i) for i in range(3)), seconds=2 * POLL_SECS + 1)
        took = time.monotonic() - published
        print(f"scaleout: version 2 served by all 3 replicas {took:.2f} s after it was published (poll {POLL_SECS} s)")
        for i in range(3):
            process = cluster.processes[i]
            process.send_signal(signal.SIGTERM)
            status = process.wait(30)
            assert status == 0, f"replica {i} exited with {status} after SIGTERM"
            cluster.start_replica(i)
            time.sleep(0.5)
        time.sleep(1)
    assert load.ok > 100, f"only {load.ok} answers under load"
    assert not load.failures, f"{len(load.failures)} failed requests, e.g. {load.failures[:3]}"
    print(f"scaleout: rolling restart of 3 replicas under load: {load.ok} answers, 0 failed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=str(ROOT / "target/debug/ferroserve"))
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="ferroserve-scaleout-"))
    cluster = Cluster(str(pathlib.Path(args.bin).resolve()), work)
    try:
        cluster.start_redis()
        for i in range(3):
            cluster.start_replica(i)
        cluster.start_nginx()
        check_stickiness(cluster)
        check_bandit(cluster, args.rounds)
        check_publish_and_rolling_restart(cluster)
        print("scaleout: all checks passed")
    except (AssertionError, SystemExit) as e:
        for log in sorted(work.glob("replica-*.log")):
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]), file=sys.stderr)
        print(f"scaleout: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
