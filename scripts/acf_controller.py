"""Realised activation frequency with and without the deficit catch-up of the schedule (issue 13, item 6).

Runs healthy remodeling on a trabecular phantom and on a crop of the real
sample, with the schedule's catch-up on (the default) and off
(``Schedule.catch_up = False``), for a few seeds, and prints one JSON object:
per case and setting the realised Ac.f over the run after the spin-up
(recruited surface voxels / mean quiescent surface / years) against the
request, and its ratio. NumPy backend, mechanics off.

Usage::

    PYTHONPATH=. python scripts/acf_controller.py [--years 3] [--seeds 0,1] [--crop 96] [--phantom 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bonesim import Volume, phantom  # noqa: E402
from bonesim.ca import schedule  # noqa: E402
from bonesim.ca.engine import simulate  # noqa: E402
from bonesim.defaults import DAYS_PER_YEAR  # noqa: E402

REQUEST = 0.30  # healthy Ac.f per year (bonesim.defaults)


def realised_acf(metrics: dict[str, np.ndarray]) -> float:
    """Σ recruited / (step-weighted mean surface) / years over the rows after day 0."""
    day = np.asarray(metrics["day"], float)
    keep = day > 0
    spans = np.diff(np.concatenate([[0.0], day]))[keep]
    surface = float(np.sum(np.asarray(metrics["surface_vox"], float)[keep] * spans) / spans.sum())
    return (
        float(np.sum(np.asarray(metrics["recruited"], float)[keep])) / surface / (spans.sum() / DAYS_PER_YEAR)
    )


def run(volume: Volume, years: float, seed: int, catch_up: bool) -> dict:
    orig = schedule.Schedule.__init__

    def init(self, *a, **k):
        orig(self, *a, **k)
        self.catch_up = catch_up

    schedule.Schedule.__init__ = init
    try:
        t0 = time.perf_counter()
        r = simulate(volume, years=years, seed=seed, backend="numpy", save_every=30, spinup_years=1.0)
    finally:
        schedule.Schedule.__init__ = orig
    acf = realised_acf(r.metrics)
    return {"seed": seed, "acf_realised": acf, "ratio": acf / REQUEST, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--years", type=float, default=3.0)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--crop", type=int, default=96, help="central crop of the real sample (0: skip)")
    ap.add_argument("--phantom", type=int, default=64, help="phantom edge at 20 µm (0: skip)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = {}
    if args.phantom:
        n = args.phantom
        cases[f"phantom {n}^3 20 um"] = Volume(phantom.trabecular((n, n, n), 20.0, bvtv=0.25, seed=1), 20.0)
    if args.crop:
        from bonesim.io.sample import VOXEL_UM, real_sample

        bone = real_sample()
        lo = [(s - args.crop) // 2 for s in bone.shape]
        c = args.crop
        crop = np.ascontiguousarray(bone[lo[0] : lo[0] + c, lo[1] : lo[1] + c, lo[2] : lo[2] + c])
        cases[f"real sample {c}^3 {VOXEL_UM} um"] = Volume(crop, VOXEL_UM)
    out = {"request_per_year": REQUEST, "years": args.years, "cases": {}}
    for name, vol in cases.items():
        out["cases"][name] = {
            ("catch_up_on" if on else "catch_up_off"): [run(vol, args.years, s, on) for s in seeds]
            for on in (True, False)
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
