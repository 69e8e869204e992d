#!/usr/bin/env python
"""Benchmark the remodeling CA and print JSON (see bonesim/bench.py for what is measured).

Usage: PYTHONPATH=. python scripts/bench.py [--shape 512 --shape 1024] [--steps 50] [--numpy-shape 64]
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", type=int, action="append", help="cube edge (repeatable; default 512 and 1024)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--backend", choices=["auto", "cupy", "numpy"], default="auto")
    ap.add_argument("--baseline-shape", type=int, default=256, help="0 skips the naive GPU baseline")
    ap.add_argument("--baseline-steps", type=int, default=3)
    ap.add_argument("--numpy-shape", type=int, default=64, help="0 skips the NumPy measurement")
    ap.add_argument("--numpy-steps", type=int, default=20)
    ap.add_argument(
        "--tune-min-blocks",
        type=int,
        nargs="*",
        default=[],
        help="also time these __launch_bounds__ minimum blocks per SM",
    )
    a = ap.parse_args(argv)
    from bonesim.ca.bench import run_bench

    res = run_bench(
        a.shape,
        a.steps,
        backend=a.backend,
        baseline_shape=a.baseline_shape,
        baseline_steps=a.baseline_steps,
        numpy_shape=a.numpy_shape,
        numpy_steps=a.numpy_steps,
        tune_min_blocks=tuple(a.tune_min_blocks),
    )
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
