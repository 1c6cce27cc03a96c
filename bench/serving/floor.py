#!/usr/bin/env python3
"""The transport floor of bench/serving/: a TCP round trip between the server's core and the
load generator's, with nothing behind it.

An echo process pinned to SERVER_CPU answers 1-byte messages from a client pinned to LOAD_CPU
over loopback (TCP_NODELAY); the median round trip is the least any server can add to a batch-1
request on this machine before doing any work. On virtual machines it is dominated by waking an
idle virtual CPU, and can be several times the cost of the same exchange on one core, which is
measured too.

Prints one JSON object: {"cross_core_us": median, "same_core_us": median, "calls": n}.

Usage: python3 bench/serving/floor.py [--server-cpu 0] [--load-cpu 1] [--calls 5000]
"""

import argparse
import json
import os
import socket
import statistics
import time


def round_trip_us(server_cpu, load_cpu, calls):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {server_cpu})
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(64)
            if not data:
                os._exit(0)
            conn.sendall(data)
    os.sched_setaffinity(0, {load_cpu})
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        client.sendall(b"x")
        client.recv(64)
        times.append(time.perf_counter() - t0)
    client.close()
    os.waitpid(pid, 0)
    listener.close()
    return statistics.median(times[calls // 10:]) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()
    cross = round_trip_us(args.server_cpu, args.load_cpu, args.calls)
    same = round_trip_us(args.server_cpu, args.server_cpu, args.calls)
    print(json.dumps({"cross_core_us": cross, "same_core_us": same, "calls": args.calls}))


if __name__ == "__main__":
    main()
