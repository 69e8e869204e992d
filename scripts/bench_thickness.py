"""Time Tb.Sp (local thickness of the marrow) and ``morphometry`` on the real sample; prints JSON.

Written for issue 15, item 6: it uses only functions that exist before and after that
change, so the same script times either checkout (``PYTHONPATH`` picks the package):

    PYTHONPATH=. python scripts/bench_thickness.py --volume real200 --repeat 3

Volumes: ``real200`` (LHDL 3155_D_4_bc, 200³, 19.5 µm, BV/TV 0.234), ``real128`` (its
``[:128, :128, :128]`` crop), ``eroded200`` (its bone eroded by two voxels, BV/TV 0.138: larger
marrow spaces). Timed, each ``--repeat`` times (wall seconds and CPU seconds of all threads):
``tb_sp`` = ``local_thickness`` of the marrow plus ``thickness_stats`` (what ``morphometry``
does for Tb.Sp), ``tb_th_tb_sp`` = ``morphometry(indices=["tb_th", "tb_sp"])``, ``analyze`` =
``morphometry`` of all indices with its per-index timings. Numba kernels are loaded (or
compiled) before the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

VOXEL_UM = 19.5


def volume(name: str) -> np.ndarray:
    from scipy import ndimage

    from bonesim.io.sample import real_sample_mask

    m = real_sample_mask()
    if name == "real128":
        m = m[:128, :128, :128]
    elif name == "eroded200":
        m = ndimage.binary_erosion(m, iterations=2)
    elif name != "real200":
        raise SystemExit(f"unknown volume {name!r}")
    return np.ascontiguousarray(m)


def timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volume", default="real200", choices=["real200", "real128", "eroded200"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import bonesim
    from bonesim.morphometry import morphometry
    from bonesim.morphometry import thickness as th

    mask = volume(args.volume)
    marrow = ~mask
    vol = np.where(mask, 255, 0).astype(np.uint8)
    morphometry(vol[:24, :24, :24], voxel_size_um=VOXEL_UM)  # load / compile the Numba kernels

    def tb_sp() -> None:
        lt = th.local_thickness(marrow, voxel_size_um=VOXEL_UM)
        th.thickness_stats(lt[marrow], VOXEL_UM)

    runs: dict[str, list] = {"tb_sp": [], "tb_th_tb_sp": [], "analyze": []}
    for _ in range(args.repeat):
        runs["tb_sp"].append(timed(tb_sp))
        runs["tb_th_tb_sp"].append(
            timed(lambda: morphometry(vol, voxel_size_um=VOXEL_UM, indices=["tb_th", "tb_sp"]))
        )
        per: dict[str, float] = {}
        wall, cpu = timed(lambda: morphometry(vol, voxel_size_um=VOXEL_UM, timings=per))  # noqa: B023
        runs["analyze"].append((wall, cpu, {k: round(v, 3) for k, v in per.items()}))

    out = {
        "volume": args.volume,
        "shape": list(mask.shape),
        "bv_tv": round(float(mask.mean()), 4),
        "package": os.path.dirname(bonesim.__file__),
        "cpus": os.cpu_count(),
        "load_before": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    for key, rows in runs.items():
        out[key] = {
            "wall_s": [round(r[0], 3) for r in rows],
            "cpu_s": [round(r[1], 3) for r in rows],
            "best_wall_s": round(min(r[0] for r in rows), 3),
        }
        if key == "analyze":
            out[key]["per_index_s"] = [r[2] for r in rows]
    out["load_after"] = list(os.getloadavg())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
