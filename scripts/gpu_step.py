#!/usr/bin/env python
"""A few CA steps of one kernel variant on the GPU (the program compute-sanitizer runs in gpu-check.sh).

Runs ``--steps`` steps of a ``--shape`` sheet gyroid through ``CupyBackend`` and compares the state with
the NumPy backend; exits 1 on a difference. ``BONESIM_KERNEL_MUTATION`` applies.

Usage: PYTHONPATH=. python scripts/gpu_step.py --variant tile --shape 64 --steps 3 [--neighbourhood 26]
       PYTHONPATH=. python scripts/gpu_step.py --variant zm --shape 61,67,69
"""

from __future__ import annotations

import argparse
import sys


def _run(be, bone, params, steps):
    import numpy as np

    from bonesim.ca.schedule import Schedule

    sched = Schedule([params], 20.0)
    z = np.zeros(bone.shape, np.uint8)
    m = np.full(bone.shape, -1, np.int32)
    st = be.upload(bone, z, z.astype(np.uint16), m, m.copy(), neighbourhood=params.neighbourhood)
    rows = []

    def drain():
        r = be.read_counters(st)
        rows.append(r)
        sched.add_counters(r)

    for k in range(steps):
        be.step(st, sched.inputs_for_step(k, seed=1, drain=drain), step=k, map_day=k)
    drain()
    return be.download(st), np.concatenate(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=["tile", "zm"], default="tile")
    ap.add_argument("--shape", default="64", help="N (a cube) or Z,Y,X")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--neighbourhood", type=int, choices=[6, 26], default=26)
    ap.add_argument("--no-compare", action="store_true", help="skip the NumPy reference")
    a = ap.parse_args(argv)

    import numpy as np

    from bonesim import phantom
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.ca.backends.numpy_backend import NumpyBackend
    from tests.fast_params import FAST

    params = FAST.replace(neighbourhood=a.neighbourhood)
    dims = [int(v) for v in a.shape.split(",")]
    shape = tuple(dims * 3 if len(dims) == 1 else dims)
    bone = phantom.gyroid(shape, 20, phantom.gyroid_sheet_level_for(0.35), sheet=True)
    states = {}
    for be in [CupyBackend(variant=a.variant)] + ([] if a.no_compare else [NumpyBackend()]):
        states[be.name] = _run(be, bone, params, a.steps)
    print(f"{a.variant} n{a.neighbourhood} {bone.shape} x {a.steps} steps on {CupyBackend().device}")
    if a.no_compare:
        return 0
    (g, gc), (c, cc) = states["cupy"], states["numpy"]
    bad = [k for k in c if not np.array_equal(g[k], c[k])]
    if not np.array_equal(gc, cc):
        bad.append("counters")
    print("parity:", "EQUAL" if not bad else f"DIFFERENT in {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
