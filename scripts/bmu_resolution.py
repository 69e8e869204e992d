"""One BMU on a flat plate at several voxel sizes and time steps: does its cycle follow the request?

Prints JSON rows: the day resorption ends (the last step that removes bone), the day the
cycle ends (last non-quiescent voxel), the largest cavity volume and its ratio
to the intended disc (π L² E), for each voxel size and dt. Requested (healthy
defaults): resorption 35 d, reversal 20 d, formation E / MAR = 83 d, cycle 138 d.

    python scripts/bmu_resolution.py --voxels 10,20,40 --dts 0.5,1,2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonesim.ca.backends.base import PH_R, pack
from bonesim.ca.backends.numpy_backend import step_block
from bonesim.ca.params import RemodelingParams
from bonesim.ca.schedule import Schedule


def one_bmu(h: float, dt: float, p: RemodelingParams) -> dict:
    """Seed one BMU at the centre of the top face of a thick plate and follow it to the end of its cycle."""
    p = p.replace(acf_per_year=0.0, dt_days=dt)
    span = 2 * p.footprint_radius_um / h + 8
    ny = nx = math.ceil(span)
    nz = math.ceil(3 * p.erosion_depth_um / h) + 4
    bone = np.zeros((nz, ny, nx), np.uint8)
    top = nz - 3
    bone[1:top] = 255  # marrow above z = top - 1 (and one inert-side layer below)
    sched = Schedule([p], h)
    phase = np.zeros_like(bone)
    timer = np.zeros(bone.shape, np.uint16)
    cz, cy, cx = top - 1, ny // 2, nx // 2
    d = 4  # inward normal -z: code (dz+1)*9 + (dy+1)*3 + (dx+1) with (-1, 0, 0)
    phase[cz, cy, cx] = PH_R | 4 | (d << 3)  # a top front, as activation leaves it
    timer[cz, cy, cx] = sched.lat0 << 8
    w = pack(bone, phase, timer)
    full = int(bone.astype(np.int64).sum())
    last_r = last_active = 0.0
    max_removed = 0
    n = 0
    limit = int(3 * 365 / dt)
    while n < limit:
        inp = sched.inputs_for_step(n, seed=0)
        w, c = step_block(w, inp, neighbourhood=p.neighbourhood)
        n += 1
        ph = (w >> np.uint32(8)) & np.uint32(3)
        if c[0] > 0:  # bone removed this step
            last_r = n * dt
        if ph.any():
            last_active = n * dt
        elif n * dt > last_r + 1:
            break
        max_removed = max(max_removed, full - int((w & np.uint32(0xFF)).astype(np.int64).sum()))
    cavity_um3 = max_removed / 255 * h**3
    intended = math.pi * p.footprint_radius_um**2 * p.erosion_depth_um
    return {
        "voxel_um": h,
        "dt_days": dt,
        "resorption_end_day": last_r,
        "cycle_end_day": last_active,
        "cavity_um3": cavity_um3,
        "cavity_ratio": cavity_um3 / intended,
        "requested": {
            "resorption_days": p.resorption_days,
            "cycle_days": p.resorption_days + p.reversal_days + p.erosion_depth_um / p.mar_um_per_day,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxels", default="10,20,40")
    ap.add_argument("--dts", default="1")
    args = ap.parse_args()
    p = RemodelingParams()
    rows = [one_bmu(float(h), float(dt), p) for h in args.voxels.split(",") for dt in args.dts.split(",")]
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
