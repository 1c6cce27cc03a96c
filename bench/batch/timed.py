#!/usr/bin/env python3
"""Run one command of the batch benchmark and time it from outside (bench/batch/run.sh).

Owns nothing on disk. Runs COMMAND, measures its wall clock (time.perf_counter around the
whole process: start, model load, reading, scoring, writing, exit) and its peak resident memory,
and prints one JSON line on stdout:

  {"leg", "run", "rows", "wall_s", "rows_per_s" (rows / wall_s), "maxrss_mb", "rc",
   "inner": ...}

Peak memory: the kernel's own figure for the child, ru_maxrss from os.wait4 (what GNU time
reports too; exact, unlike polling VmHWM, which can miss a peak just before exit). With
--gnu-time the command runs under `/usr/bin/time -v` as well, and "gnu_time_maxrss_mb" is that
figure (absent when /usr/bin/time is not GNU time).

"inner" is what the command says of itself: the JSON object on the last line of its stdout
(bench/batch/library.py prints one), or, from `ferroserve batch`'s summary line on stderr
("scored N rows ... in S s (...); F failed -> OUT"), {"rows", "seconds", "failed"}.
The command's stderr is passed through (after it ends); its stdout is not echoed.
A command that fails makes this exit with its status, after printing the JSON line.

Usage: bench/batch/timed.py --leg NAME [--run I] [--rows N] [--gnu-time] -- COMMAND [ARGS...]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SUMMARY = re.compile(r"scored ([\d,_ ]+) rows .*? in ([\d.]+) s .*?; ([\d,_ ]+) failed")


def is_gnu_time(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "GNU" in out.stdout + out.stderr


def number(text):
    return int(re.sub(r"[^\d]", "", text))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leg", required=True)
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--rows", type=int, help="rows of the input (for rows_per_s)")
    ap.add_argument("--gnu-time", action="store_true", help="also run under /usr/bin/time -v")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given (after --)")

    gnu_file = None
    if args.gnu_time:
        gnu = shutil.which("time") or "/usr/bin/time"
        if is_gnu_time(gnu):
            gnu_file = tempfile.NamedTemporaryFile(prefix="gnu-time-", suffix=".txt", delete=False)
            gnu_file.close()
            command = [gnu, "-v", "-o", gnu_file.name] + command
        else:
            print("timed: no GNU time; peak memory from wait4 only", file=sys.stderr)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(command, stdout=out, stderr=err)
        except OSError as e:
            sys.exit(f"timed: cannot run {command[0]}: {e}")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    sys.stderr.write(stderr)

    result = {"leg": args.leg, "run": args.run, "rows": args.rows, "wall_s": round(wall, 4),
              "rows_per_s": round(args.rows / wall) if args.rows else None,
              "maxrss_mb": round(usage.ru_maxrss / 1024, 1), "rc": proc.returncode}
    if gnu_file is not None:
        with open(gnu_file.name) as f:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
        os.unlink(gnu_file.name)
        if m:
            result["gnu_time_maxrss_mb"] = round(int(m.group(1)) / 1024, 1)
    lines = stdout.strip().splitlines()
    inner = None
    if lines:
        try:
            inner = json.loads(lines[-1])
        except ValueError:
            inner = None
    if inner is None:
        m = SUMMARY.search(stderr)
        if m:
            inner = {"rows": number(m.group(1)), "seconds": float(m.group(2)),
                     "failed": number(m.group(3))}
    result["inner"] = inner
    print(json.dumps(result), flush=True)
    if proc.returncode != 0:
        print(f"timed: {args.leg} run {args.run} failed (exit {proc.returncode}): "
              f"{' '.join(command)}", file=sys.stderr)
        if stdout.strip():
            print(stdout[-4000:], file=sys.stderr)
        sys.exit(proc.returncode or 1)


if __name__ == "__main__":
    main()
