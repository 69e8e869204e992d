"""Benchmark bonesim micro-FE: the real 200³ sample on the CPU; 200³/512³/1024³ phantoms on a GPU.

Prints one JSON object: per case the seconds of the whole solve, PCG
iterations, relative residual, E_app and the peak memory in bytes per voxel
(host: tracemalloc peak of the solve, which NumPy reports its buffers to;
device: the CuPy memory-pool peak), the CPU seconds of this process (less
sensitive to a shared host than wall-clock seconds) and the load average.
``--warm K`` also re-solves after removing K surface voxels, cold and
warm-started from the first solve (``x0=``). On a GPU it also times the RawKernel
matvec and reports its achieved bandwidth (minimum traffic: read x, free mask
and s, write y) against the device-to-device copy bandwidth measured in the
same run.

Usage::

    PYTHONPATH=. python scripts/bench_mechanics.py [--crop N] [--axes z] [--preconditioner gmg] [--no-gpu] [--warm K]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bonesim.mechanics import solve  # noqa: E402

VOXEL_UM = 19.5


def real_sample(crop: int | None) -> np.ndarray:
    from bonesim.io.sample import real_sample as segmented

    bone = segmented()
    if crop:
        lo = [(s - crop) // 2 for s in bone.shape]
        bone = np.ascontiguousarray(bone[lo[0] : lo[0] + crop, lo[1] : lo[1] + crop, lo[2] : lo[2] + crop])
    return bone


def remove_surface_voxels(bone: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` random bone voxels that touch marrow turned into marrow (a small resorption step)."""
    from scipy import ndimage

    mask = bone > 0
    surface = np.flatnonzero(mask & ~ndimage.binary_erosion(mask, border_value=1))
    out = bone.copy().ravel()
    out[np.random.default_rng(seed).choice(surface, size=k, replace=False)] = 0
    return out.reshape(bone.shape)


def cpu_case(
    bone: np.ndarray, axis: str, preconditioner: str, tol: float, x0=None, keep_fields: bool = False
) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = solve(
        bone,
        axis,
        voxel_size_um=VOXEL_UM,
        backend="numpy",
        preconditioner=preconditioner,
        tol=tol,
        keep_fields=keep_fields,
        x0=x0,
    )
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "result": r,
        "cpu_seconds": cpu,
        "shape": list(bone.shape),
        "bv_tv": float((bone > 0).mean()),
        "axis": axis,
        "preconditioner": preconditioner,
        "seconds": secs,
        "load_average": os.getloadavg()[0],
        "iterations": r.iterations,
        "relative_residual": r.relative_residual,
        "apparent_modulus_mpa": r.apparent_modulus_mpa,
        "elements": r.n_elements,
        "nodes": r.n_nodes,
        "peak_bytes": peak,
        "peak_bytes_per_voxel": peak / bone.size,
        "peak_bytes_per_element": peak / r.n_elements,
    }


def gpu_cases(sizes: list[int], tol: float) -> list[dict]:
    import cupy as cp

    from bonesim import phantom
    from bonesim.mechanics.cupy_backend import DeviceOperator, dense_scale
    from bonesim.mechanics.operator import VoxelMesh

    out = []
    src = cp.ones(1 << 27, cp.float64)  # 1 GiB
    dst = cp.empty_like(src)
    cp.copyto(dst, src)
    cp.cuda.Stream.null.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        cp.copyto(dst, src)
    cp.cuda.Stream.null.synchronize()
    copy_bw = 10 * 2 * src.nbytes / (time.perf_counter() - t0)
    del src, dst
    for n in sizes:
        case: dict = {"shape": [n, n, n]}
        try:
            bone = phantom.gyroid((n, n, n), n / 4, 0.25)
            pool = cp.get_default_memory_pool()
            pool.free_all_blocks()
            t0 = time.perf_counter()
            r = solve(bone, "z", voxel_size_um=VOXEL_UM, backend="cupy", tol=tol, keep_fields=False)
            case.update(
                seconds=time.perf_counter() - t0,
                iterations=r.iterations,
                relative_residual=r.relative_residual,
                apparent_modulus_mpa=r.apparent_modulus_mpa,
                device_peak_bytes_per_voxel=pool.total_bytes() / bone.size,
            )
            mesh = VoxelMesh.from_modulus((bone > 0) * 10000.0, VOXEL_UM / 1000)
            op = DeviceOperator(dense_scale(mesh), cp.ones((3, *mesh.node_shape)), 0.3)
            x = cp.random.random((3, *mesh.node_shape))
            y = op(x)
            cp.cuda.Stream.null.synchronize()
            t0 = time.perf_counter()
            reps = 20
            for _ in range(reps):
                op(x, out=y)
            cp.cuda.Stream.null.synchronize()
            dt = (time.perf_counter() - t0) / reps
            nn = int(np.prod(mesh.node_shape))
            traffic = 3 * 3 * 8 * nn + 8 * dense_scale(mesh).size
            case.update(
                matvec_seconds=dt, matvec_bandwidth_gbs=traffic / dt / 1e9, copy_bandwidth_gbs=copy_bw / 1e9
            )
        except Exception as exc:  # e.g. the memory pre-flight refuses 1024³
            case["error"] = str(exc)
        out.append(case)
    return out


def _numba() -> str | None:
    from bonesim.mechanics import fast

    if fast.kernel() is None:
        return None
    import numba

    return numba.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=None, help="central crop of the real sample (default: 200³)")
    ap.add_argument("--axes", default="z")
    ap.add_argument("--preconditioner", default="gmg", choices=["gmg", "jacobi"])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--gpu-sizes", default="200,512,1024")
    ap.add_argument("--no-gpu", action="store_true")
    ap.add_argument(
        "--warm",
        type=int,
        default=0,
        metavar="K",
        help="also remove K surface voxels and re-solve cold and warm-started (x0=previous result)",
    )
    ap.add_argument(
        "--warm-only", action="store_true", help="with --warm: skip the cold re-solve of the changed volume"
    )
    args = ap.parse_args()
    bone = real_sample(args.crop)
    report: dict = {
        "host": platform.node(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "numba": _numba(),
        "cpu": [],
    }
    for ax in args.axes:
        first = cpu_case(bone, ax, args.preconditioner, args.tol, keep_fields=bool(args.warm))
        print(json.dumps({"cold": {k: v for k, v in first.items() if k != "result"}}), file=sys.stderr)
        report["cpu"].append(first)
        if args.warm:
            changed = remove_surface_voxels(bone, args.warm)
            warm = cpu_case(changed, ax, args.preconditioner, args.tol, x0=first["result"])
            print(json.dumps({"warm": {k: v for k, v in warm.items() if k != "result"}}), file=sys.stderr)
            if args.warm_only:  # compare with the first (cold) solve of the almost identical bone
                cold = dict(first, note="cold solve of the volume before the change")
            else:
                cold = cpu_case(changed, ax, args.preconditioner, args.tol)
            e_c, e_w = cold["apparent_modulus_mpa"], warm["apparent_modulus_mpa"]
            report.setdefault("warm_start", []).append(
                {
                    "removed_voxels": args.warm,
                    "cold": cold,
                    "warm": warm,
                    "e_app_rel_diff": abs(e_w - e_c) / e_c,
                }
            )
    for case in report["cpu"] + [c for w in report.get("warm_start", []) for c in (w["cold"], w["warm"])]:
        case.pop("result", None)
    for w in report.get("warm_start", []):
        w["cold"] = {k: v for k, v in w["cold"].items() if k != "result"}
    from bonesim.mechanics.cupy_backend import available

    if not args.no_gpu and available():
        report["gpu"] = gpu_cases([int(s) for s in args.gpu_sizes.split(",")], args.tol)
    else:
        report["gpu"] = "no CUDA device / CuPy: GPU figures wait for a device"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
