#!/usr/bin/env python3
"""Compare regenerated example models and oracles with the committed ones, numbers within
floating-point noise.

The generators train with fixed seeds, pinned library versions and one BLAS kernel set
(OPENBLAS_CORETYPE), so models reproduce byte for byte. onnxruntime's MLAS still picks its
kernels by CPU (AVX2, AVX-512, ...), so an oracle computed on another machine can differ in the
last bits of its float32 values. This check accepts those differences and nothing else:

- oracle outputs (`expected.json`, `library.json`): same structure, same keys, same strings,
  integers and booleans; floats equal within RTOL/ATOL;
- every other file (models, inputs, profiles): byte for byte.

Usage: compare_regenerated.py FILE...   (paths relative to the repository root, each compared
with its committed version, `git show HEAD:FILE`). Prints each file's largest relative float
difference; exits 1 naming the first difference beyond noise.
"""

import json
import math
import subprocess
import sys

RTOL = 1e-4
ATOL = 1e-6
# The files holding a library's or onnxruntime's outputs; every other file is a model or an
# input, and training is pinned to one kernel set, so those reproduce byte for byte.
ORACLES = ("expected.json", "library.json")


class Mismatch(Exception):
    """A difference that is not floating-point noise."""


def committed(path: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout


def compare(old, new, where: str, worst: list) -> None:
    """Raises Mismatch unless `old` and `new` are equal up to float noise; records the largest
    relative float difference in worst[0]."""
    if isinstance(old, bool) or isinstance(new, bool):
        if old is not new:
            raise Mismatch(f"{where}: {old!r} != {new!r}")
    elif isinstance(old, float) or isinstance(new, float):
        if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
            raise Mismatch(f"{where}: {old!r} != {new!r}")
        if math.isnan(old) and math.isnan(new):
            return
        diff = abs(old - new)
        if diff > ATOL + RTOL * max(abs(old), abs(new)):
            raise Mismatch(f"{where}: {old!r} != {new!r} (beyond rtol {RTOL}, atol {ATOL})")
        if diff:
            worst[0] = max(worst[0], diff / max(abs(old), abs(new)))
    elif isinstance(old, dict) and isinstance(new, dict):
        if old.keys() != new.keys():
            raise Mismatch(f"{where}: keys {sorted(old)} != {sorted(new)}")
        for key in old:
            compare(old[key], new[key], f"{where}.{key}", worst)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            raise Mismatch(f"{where}: {len(old)} items != {len(new)}")
        for i, (a, b) in enumerate(zip(old, new)):
            compare(a, b, f"{where}[{i}]", worst)
    elif old != new:
        raise Mismatch(f"{where}: {old!r} != {new!r}")


def main() -> int:
    for path in sys.argv[1:]:
        old, new = committed(path), open(path, "rb").read()
        worst = [0.0]
        try:
            if path.rsplit("/", 1)[-1] in ORACLES:
                compare(json.loads(old), json.loads(new), path, worst)
            elif old != new:
                raise Mismatch(f"{path}: differs (compared byte for byte)")
        except Mismatch as e:
            print(f"compare-regenerated: {e}", file=sys.stderr)
            return 1
        print(f"compare-regenerated: {path}: floats within noise "
              f"(largest relative difference {worst[0]:.1e})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
