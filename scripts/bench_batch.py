"""Benchmark batch studies and chunked simulation; prints one JSON object.

1. Study throughput: the same N-run study (phantom × seeds) run one by one in
   this process, then concurrently on a local Dask pool of W workers that
   share the device. Reports wall time, runs/s and the speed-up.
2. Chunked vs unchunked: the same steps on a ``shape³`` volume, whole and in
   chunks with halos (``bonesim.ca.halo``), checks the states are
   identical and reports the overhead.

Every GPU figure comes with the device's device-to-device copy bandwidth
measured in the same run.

Usage::

    PYTHONPATH=. python scripts/bench_batch.py --runs 16 --shape 96 --years 0.5 --workers 4
    PYTHONPATH=. python scripts/bench_batch.py --skip-study --chunk-shape 1024 --chunk 512 --steps 32 \\
        --chunk-backend cupy
    PYTHONPATH=. python scripts/bench_batch.py --skip-study --skip-chunked --largest
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def device_info() -> dict:
    info: dict = {"host": platform.node(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        info["gpu_mem_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
        n = 1 << 28  # 256 MiB each way
        a = cupy.empty(n, cupy.uint8)
        b = cupy.empty_like(a)
        b[...] = a
        cupy.cuda.Device().synchronize()
        t = time.perf_counter()
        for _ in range(10):
            b[...] = a
        cupy.cuda.Device().synchronize()
        info["d2d_copy_gb_s"] = round(2 * 10 * n / (time.perf_counter() - t) / 1e9, 1)
    except Exception as exc:  # no GPU: CPU figures only
        info["gpu"] = None
        info["gpu_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return info


def constant_run(run, *, resume=False):
    """Run function for ``--constant``: the engine under default parameters (no physiology)."""
    from bonesim.ca.engine import simulate
    from bonesim.ca.params import RemodelingParams

    res = simulate(
        run.input.load(),
        RemodelingParams(),
        years=run.years,
        backend=run.backend,
        seed=run.seed,
        save_every=run.save_every,
        out=run.out,
        spinup_years=run.spinup_years,
        resume=resume,
    )
    return {"device": res.device, "backend": res.backend}


def pick_scenario(requested: str | None, constant: bool, root: Path) -> str:
    if constant:
        (root / "constant.toml").write_text("# unused: --constant runs default RemodelingParams\n")
        return str(root / "constant.toml")
    if requested:
        return requested
    from bonesim.batch.manifest import available_scenarios

    names = available_scenarios() or []
    for pref in ("healthy-adult", "healthy_adult", "healthy"):
        if pref in names:
            return pref
    if not names:
        raise SystemExit("no scenario presets found (bonesim.physiology missing?); pass --scenario")
    return names[0]


def bench_study(args, root: Path) -> dict:
    from bonesim.batch import load_manifest
    from bonesim.batch.runner import run_study

    scenario = pick_scenario(args.scenario, args.constant, root)
    text = f"""
name = "bench"
output = "OUT"
years = {args.years}
save_every = {args.save_every}
spinup_years = {args.spinup_years}
backend = "{args.backend}"
seeds = {args.runs}
scenarios = ["{scenario}"]
[[inputs]]
name = "gyroid"
phantom = "gyroid"
shape = {args.shape}
voxel_size_um = 20
period = {max(8, args.shape // 3)}
level = 0.6
"""
    out: dict = {
        "runs": args.runs,
        "shape": args.shape,
        "years": args.years,
        "scenario": scenario,
        "spinup_years": args.spinup_years,
        "backend": args.backend,
    }
    for label, workers in (("one_by_one", 1), (f"pool_{args.workers}", args.workers)):
        d = root / label
        d.mkdir()
        (d / "study.toml").write_text(text.replace("OUT", "out"))
        study = load_manifest(d / "study.toml")
        t = time.perf_counter()
        res = run_study(
            study,
            scheduler="local",
            workers=workers,
            summarize=False,
            run_fn=constant_run if args.constant else None,
        )
        wall = time.perf_counter() - t
        failed = [r.get("error") for r in res.records if r.get("status") == "failed"]
        walls = [r["wall_s"] for r in res.records if isinstance(r.get("wall_s"), (int, float))]
        out[label] = {
            "workers": workers,
            "wall_s": round(wall, 2),
            "runs_per_s": round(args.runs / wall, 4),
            "mean_run_wall_s": round(float(np.mean(walls)), 2) if walls else None,
            "done": res.count("done"),
            "failed": len(failed),
            "errors": failed[:3],
            "device": sorted({str(r.get("device")) for r in res.records}),
        }
    out["speedup"] = round(out["one_by_one"]["wall_s"] / out[f"pool_{args.workers}"]["wall_s"], 3)
    return out


def bench_chunked(args, root: Path) -> dict:
    """The engine on a ``chunk_shape``³ gyroid, whole and in chunks with halos (same seed, same steps)."""
    from bonesim import Volume, engine, phantom
    from bonesim.ca.backends.chunked import simulate_in_chunks
    from bonesim.ca.halo import halo_overhead

    DAYS_PER_YEAR, simulate = engine.DAYS_PER_YEAR, engine.simulate

    n = args.chunk_shape
    t = time.perf_counter()
    vol = (
        tiled_gyroid(n) if n % 64 == 0 else Volume(phantom.gyroid((n, n, n), 64, level=0.6), voxel_size_um=20)
    )
    t_phantom = time.perf_counter() - t
    kw = {
        "years": args.steps / DAYS_PER_YEAR,
        "spinup_years": 0.0,
        "save_every": 1e6,
        "backend": args.chunk_backend,
        "seed": 0,
    }
    small = Volume(phantom.gyroid((32, 32, 32), 8, level=0.6), voxel_size_um=20)
    simulate(small, **{**kw, "years": 2 / DAYS_PER_YEAR})  # compile kernels outside the timings
    t = time.perf_counter()
    whole = simulate(vol, **kw)
    t_whole = time.perf_counter() - t
    t = time.perf_counter()
    chunked = simulate_in_chunks(
        vol, chunks=args.chunk, steps_per_exchange=args.k, num_workers=args.chunk_workers, **kw
    )
    t_chunk = time.perf_counter() - t
    return {
        "shape": n,
        "voxels": n**3,
        "steps": args.steps,
        "chunk": args.chunk,
        "k": args.k,
        "backend": whole.backend,
        "device": whole.device,
        "phantom_s": round(t_phantom, 2),
        "whole_s": round(t_whole, 3),
        "whole_engine_gvox_per_s": round(whole.timings["gvox_per_s"], 4),
        "chunked_s": round(t_chunk, 3),
        "chunked_engine_gvox_per_s": round(chunked.timings["gvox_per_s"], 4),
        "overhead": round(t_chunk / t_whole - 1, 3),
        "halo_work_fraction": round(halo_overhead(args.chunk, args.k, 1), 4),
        "identical": all(np.array_equal(whole.state[k], chunked.state[k]) for k in whole.state),
    }


def tiled_gyroid(n: int, period: int = 64):
    """An n³ gyroid built by tiling one period (n a multiple of ``period``): cheap for huge volumes."""
    from bonesim import Volume, phantom

    cell = phantom.gyroid((period, period, period), period, level=0.6)
    reps = n // period
    return Volume(np.tile(cell, (reps, reps, reps)), voxel_size_um=20)


def bench_largest(args) -> dict:
    """The largest cube (multiple of 64) whose state fits the free GPU memory, simulated for a few steps."""
    import cupy

    from bonesim.ca import engine

    free, total = cupy.cuda.runtime.memGetInfo()
    per_voxel = 16  # bytes on the device: 2 state words + 2 int32 maps (see bonesim.ca.backends.cupy_backend)
    n = int((free * args.largest_fill / per_voxel) ** (1 / 3)) // 64 * 64
    t = time.perf_counter()
    vol = tiled_gyroid(n)
    t_build = time.perf_counter() - t
    kw = {
        "years": args.largest_steps / engine.DAYS_PER_YEAR,
        "spinup_years": 0.0,
        "save_every": 1e6,
        "backend": "cupy",
        "seed": 0,
    }
    t = time.perf_counter()
    res = engine.simulate(vol, **kw)
    wall = time.perf_counter() - t
    return {
        "shape": n,
        "voxels": n**3,
        "gpu_free_gib": round(free / 2**30, 1),
        "gpu_total_gib": round(total / 2**30, 1),
        "steps": args.largest_steps,
        "build_s": round(t_build, 1),
        "wall_s": round(wall, 2),
        "engine_timings": res.timings,
        "device": res.device,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--shape", type=int, default=96)
    p.add_argument("--years", type=float, default=0.5)
    p.add_argument("--save-every", type=int, default=30)
    p.add_argument("--spinup-years", type=float, default=0.1)
    p.add_argument("--backend", default="auto")
    p.add_argument("--scenario", default=None)
    p.add_argument(
        "--constant",
        action="store_true",
        help="simulate under default RemodelingParams instead of a physiology scenario",
    )
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--skip-study", action="store_true")
    p.add_argument("--skip-chunked", action="store_true")
    p.add_argument("--chunk-shape", type=int, default=256)
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--chunk-backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--chunk-workers", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the temporary study folders")
    p.add_argument("--largest", action="store_true", help="also simulate the largest cube that fits the GPU")
    p.add_argument("--largest-fill", type=float, default=0.85, help="fraction of free GPU memory to fill")
    p.add_argument("--largest-steps", type=int, default=16)
    args = p.parse_args()

    result: dict = {"device": device_info()}
    root = Path(tempfile.mkdtemp(prefix="bonesim-bench-"))
    try:
        if not args.skip_study:
            result["study"] = bench_study(args, root)
        if not args.skip_chunked:
            result["chunked"] = bench_chunked(args, root)
        if args.largest:
            result["largest"] = bench_largest(args)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
