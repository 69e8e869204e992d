#!/usr/bin/env python
"""The ``make demo`` driver: phantom -> simulation -> pictures and a plot.

Usage::

    python scripts/demo.py --out demo-out [--years 2] [--backend auto|numpy|cupy]

Steps (each prints what it did; about 1-2 minutes on 2 CPU cores):

1. a trabecular-like phantom (``bonesim.phantom.trabecular`` when present,
   else a plate-like sheet gyroid 1.6 mm across with ~200 µm trabeculae,
   BV/TV 0.40) at 25 µm -> ``OUT/phantom.h5``;
2. a remodeling simulation (1-year spin-up, then ``--years`` with a formation
   deficit, f = 0.95 by default) on the GPU when CuPy finds one, else NumPy
   -> ``OUT/run.h5``;
3. BV/TV of the input, at day 0 (after the spin-up) and at the end;
4. ``OUT/first.png`` and ``OUT/last.png`` (bone surface coloured by
   remodeling state: red resorbed, green formed, magenta perforated, grey
   ghost of the day-0 surface), ``OUT/diff.png`` (the difference view of the
   last frame: bone lost since day 0 red, formed green, perforations magenta,
   as volumes) and ``OUT/bvtv.png`` (BV/TV over time).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

import numpy as np


def make_phantom(shape: int, voxel_size_um: float, seed: int):
    """A trabecular phantom if the phantom module has one, else a sheet gyroid."""
    import bonesim.phantom as ph
    from bonesim.volume import Volume

    n = (shape,) * 3
    if hasattr(ph, "trabecular"):
        sig = inspect.signature(ph.trabecular)
        wanted = {"bvtv": 0.25, "seed": seed, "voxel_size_um": voxel_size_um}
        data = ph.trabecular(n, **{k: v for k, v in wanted.items() if k in sig.parameters})
        data = getattr(data, "data", data)
        meta = {"phantom": "trabecular", "seed": seed}
    else:
        # plate-like sheet gyroid, one period across, trabeculae ~200 µm thick at BV/TV 0.40
        data = ph.gyroid(n, shape, ph.gyroid_sheet_level_for(0.4), sheet=True)
        meta = {"phantom": "sheet gyroid", "period_vox": shape}
    return Volume(np.asarray(data, np.uint8), voxel_size_um, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out"), help="Output folder (created).")
    ap.add_argument("--shape", type=int, default=64, help="Edge of the cubic phantom in voxels.")
    ap.add_argument("--voxel-size", type=float, default=25.0, help="Voxel size in µm.")
    ap.add_argument("--years", type=float, default=2.0)
    ap.add_argument("--backend", default="auto", choices=["auto", "cupy", "numpy"])
    ap.add_argument("--formation-efficiency", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)

    from bonesim.errors import BonesimError
    from bonesim.io.hdf5 import write_volume

    vol = make_phantom(a.shape, a.voxel_size, a.seed)
    outputs = [write_volume(out / "phantom.h5", vol, overwrite=True)]
    print(
        f"phantom: {vol.metadata['phantom']}, {vol.shape} at {vol.voxel_size_um:g} µm, BV/TV {vol.bv_tv:.4f}"
    )

    try:
        from bonesim.ca.engine import simulate
        from bonesim.ca.params import RemodelingParams
    except ImportError as exc:
        print(f"cannot simulate: the CA engine is not in this install ({exc})", file=sys.stderr)
        return 1

    params = RemodelingParams(formation_efficiency=a.formation_efficiency)
    print(
        f"simulating {a.years:g} years (f = {params.formation_efficiency:g}) after a 1-year spin-up ...",
        flush=True,
    )
    run_h5 = out / "run.h5"
    res = simulate(
        vol,
        params,
        years=a.years,
        backend=a.backend,
        seed=a.seed,
        save_every=30,
        out=run_h5,
        overwrite=True,
        command="scripts/demo.py",
    )
    outputs.append(run_h5)
    m = res.metrics
    print(f"backend {res.backend} ({res.device}), {res.timings.get('wall_s', float('nan')):.1f} s")
    print(
        f"BV/TV input {vol.bv_tv:.4f}   day 0 (after spin-up): {m['bv_tv'][0]:.4f}   "
        f"end (day {m['day'][-1]:g}): {m['bv_tv'][-1]:.4f}   "
        f"change since day 0 {100 * (m['bv_tv'][-1] / m['bv_tv'][0] - 1):+.2f} %"
    )

    try:
        from bonesim.viz import plot_metrics, render_frame
    except ImportError as exc:  # the viz extra is not installed
        print(f"no pictures: {exc} (pip install 'bonesim[viz]')", file=sys.stderr)
        return 0
    try:
        for name, frame, style in (
            ("first", 0, "surface"),
            ("last", -1, "surface"),
            ("diff", -1, "difference"),
        ):
            render_frame(run_h5, frame, size=(800, 600), style=style, out=out / f"{name}.png")
            outputs.append(out / f"{name}.png")
    except BonesimError as exc:  # no off-screen OpenGL: say so, still plot
        print(f"no pictures: {exc}", file=sys.stderr)
    plot_metrics(run_h5, out / "bvtv.png", which="metrics", title=f"demo: {vol.metadata['phantom']}")
    outputs.append(out / "bvtv.png")

    print(f"demo finished in {time.perf_counter() - t_start:.0f} s; outputs:")
    for p in outputs:
        print(f"  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
