"""Benchmark: render one frame of a 256³ result off-screen (software GL on CPU).

Builds a two-frame result (a sheet gyroid at 20 µm and the same with ~200
spherical cavities carved out and new bone on one corner), then times ``bonesim.viz.render_frame`` on the
last frame. Prints JSON. The target (issue 6) is < 15 s on 2 CPU cores.

Usage::

    PYTHONPATH=. python scripts/bench_render.py [--shape 256] [--repeat 2] [--size 800x600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def make_result(path: Path, n: int, seed: int = 0) -> None:
    from bonesim.io.hdf5 import create_array, write_root_attrs
    from bonesim.phantom import gyroid, gyroid_sheet_level_for

    b0 = gyroid((n, n, n), period=n / 3, level=gyroid_sheet_level_for(0.25), sheet=True)
    b1 = b0.copy()
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:n, :n, :n]
    surface = np.argwhere((b0[1:-1, 1:-1, 1:-1] > 0) & (b0[2:, 1:-1, 1:-1] == 0)) + 1
    for cz, cy, cx in surface[rng.choice(len(surface), 200, replace=False)]:
        r = rng.uniform(2, 5)
        sl = tuple(slice(max(0, c - 6), c + 7) for c in (cz, cy, cx))
        ball = (z[sl[0]] - cz) ** 2 + (y[:, sl[1]] - cy) ** 2 + (x[..., sl[2]] - cx) ** 2 <= r * r
        b1[sl][ball] = 0
    # formation: a two-voxel layer of new bone on the surfaces of one corner block
    from scipy import ndimage

    m = n // 4
    corner = b1[:m, :m, :m] > 0
    b1[:m, :m, :m][ndimage.binary_dilation(corner, iterations=2) & ~corner] = 255
    with h5py.File(path, "w") as f:
        write_root_attrs(f, 20.0)
        create_array(f.create_group("volume"), "bone", b0)
        g = f.create_group("series")
        create_array(g, "bone", np.stack([b0, b1]))
        g.create_dataset("day", data=np.array([0.0, 365.0]))
        f.create_group("scenario").attrs["name"] = f"bench {n}³"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--size", default="800x600")
    ap.add_argument("--out", default=None, help="Also save the last image here (PNG).")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    from bonesim.viz import render_frame
    from bonesim.viz.gl import probe, require_rendering

    t = time.perf_counter()
    info = probe()
    probe_s = time.perf_counter() - t
    require_rendering()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        t = time.perf_counter()
        make_result(path, args.shape)
        build_s = time.perf_counter() - t
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            img = render_frame(path, -1, size=(w, h), out=args.out)
            times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "benchmark": "render_frame",
                "shape": [args.shape] * 3,
                "image": [w, h],
                "render_s": [round(v, 2) for v in times],
                "best_s": round(min(times), 2),
                "gl_probe_s": round(probe_s, 2),
                "gl_window": info.window_class,
                "build_result_s": round(build_s, 2),
                "cpus": os.cpu_count(),
                "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "machine": platform.processor() or platform.machine(),
                "non_blank": bool(img.std() > 5),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
