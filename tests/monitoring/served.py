"""A ferroserve binary serving the example repository on ports the OS picks, for the
monitoring checks: started, its addresses read from its log, waited on until ready, and
stopped. Standard library only; every wait is bounded."""

import os
import re
import subprocess
import time
import urllib.request


def wait_for(what, check, timeout=60.0):
    """The first truthy value of `check()`, polled every 0.25 s; exits after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.25)
    raise SystemExit(f"timed out waiting for {what} (last error: {last})")


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


class Served:
    """`binary serve` over `repository` with `flags`, logging to `work/ferroserve.log`."""

    def __init__(self, binary, work, repository, *flags):
        self.log = open(os.path.join(work, "ferroserve.log"), "w+")
        self.process = subprocess.Popen(
            [binary, "serve", "--host", "127.0.0.1", "--http-port", "0", "--no-grpc",
             "--model-repository", repository, *flags],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
        self.http = self.address(r"listening on http://([0-9.:]+)")
        # 200 has an empty body: a response at all is readiness (an error status raises).
        wait_for("ferroserve ready",
                 lambda: get(f"http://{self.http}/v2/health/ready") is not None)

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def address(self, pattern):
        """The first group of `pattern` in the log, once it is there."""
        def found():
            m = re.search(pattern, self.log_text())
            return m and m.group(1)
        return wait_for(f"{pattern!r} in ferroserve's log", found)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
