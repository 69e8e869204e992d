"""Throughput benchmark of the remodeling CA (``bonesim bench``, ``scripts/bench.py``).

Reports, as one JSON-able dict: the device; for each shape the fused CUDA
step's Gvox/s, the bytes it moves per voxel and step (4 read + 4 written:
one packed state word each way; the remodeling maps are touched only where
bone changes), the effective GB/s, the device-to-device copy bandwidth
measured in the same run (read + write bytes per second, the same
accounting) and their ratio; a naive GPU baseline of the same rule built from
CuPy array operations and ``cupyx.scipy.ndimage`` (and whether it gives the
same bits); and the NumPy backend at a small shape.
"""

from __future__ import annotations

import logging
import platform
import time
from typing import Any

import numpy as np

from bonesim.ca.backends.base import COUNTERS, INERT, OFFSETS
from bonesim.ca.kernel_abi import tile_units
from bonesim.ca.params import RemodelingParams
from bonesim.ca.rng import voxel_random
from bonesim.ca.schedule import Schedule
from bonesim.phantom import gyroid, gyroid_sheet_level_for

log = logging.getLogger(__name__)

BYTES_PER_VOXEL_STEP = 8
#: (kernel, uniform-tile skip, active tiles) timed at each shape: the default first, then each step of
#: the kernel diet (issue 15 items 3-4) taken away, so the device run times every one.
KERNEL_VARIANTS = (
    ("tile", True, True),
    ("zm", True, False),
    ("tile", True, False),
    ("tile", False, False),
    ("zm", False, False),
)
BENCH_PARAMS = RemodelingParams(acf_per_year=2.0)  # busier than healthy bone, so many BMUs are open
VOXEL_UM = 20.0
PERIOD = 40.0
BVTV = 0.3


def _schedule() -> Schedule:
    return Schedule([BENCH_PARAMS], VOXEL_UM)


def _gpu_gyroid(shape: tuple[int, int, int]) -> Any:
    """Sheet gyroid bone (uint8) made on the device slab by slab (no host volume)."""
    import cupy

    level = gyroid_sheet_level_for(BVTV)
    k = 2 * np.pi / PERIOD
    out = cupy.empty(shape, cupy.uint8)
    y = cupy.arange(shape[1], dtype=cupy.float32)[:, None] * k
    x = cupy.arange(shape[2], dtype=cupy.float32)[None, :] * k
    for z in range(shape[0]):
        zz = np.float32(z * k)
        g = cupy.sin(x) * cupy.cos(y) + cupy.sin(y) * np.cos(zz) + np.sin(zz) * cupy.cos(x)
        out[z] = cupy.where(cupy.abs(g) < level, 255, 0).astype(cupy.uint8)
    return out


def copy_bandwidth(nbytes: int = 2**30, repeats: int = 10) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written."""
    import cupy

    a = cupy.ones(nbytes // 4, cupy.uint32)
    b = cupy.empty_like(a)
    b[...] = a  # warm up
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeats):
        cupy.cuda.runtime.memcpyAsync(
            b.data.ptr,
            a.data.ptr,
            a.nbytes,
            cupy.cuda.runtime.memcpyDeviceToDevice,
            cupy.cuda.get_current_stream().ptr,
        )
    stop.record()
    stop.synchronize()
    secs = cupy.cuda.get_elapsed_time(start, stop) / 1e3
    del a, b
    return 2 * nbytes * repeats / secs / 1e9


def bench_cupy(
    shape: tuple[int, int, int],
    steps: int,
    warmup: int = 32,
    min_blocks: int | None = None,
    variant: str = "tile",
    skip_uniform: bool = True,
    active_tiles: bool = False,
) -> dict[str, Any]:
    """Time ``steps`` fused steps at ``shape`` after ``warmup`` steps (``skip_uniform=False``: the kernel
    built without the uniform-tile skip; ``active_tiles``: the tile kernel skipping quiet blocks)."""
    import cupy

    from bonesim.ca.backends.cupy_backend import MIN_BLOCKS, NCOUNT, NSLOT, launch_step

    mb = MIN_BLOCKS if min_blocks is None else min_blocks
    sched = _schedule()
    cur = _gpu_gyroid(shape).astype(cupy.uint32)  # phase 0, timer 0
    nxt = cupy.empty_like(cur)
    rmap = cupy.full(shape, -1, cupy.int32)
    fmap = cupy.full(shape, -1, cupy.int32)
    cnt = cupy.zeros((NSLOT, NCOUNT), cupy.uint64)
    inputs = [sched.inputs(n, seed=0) for n in range(warmup + steps)]
    kw: dict[str, Any] = dict(min_blocks=mb, variant=variant, skip_uniform=skip_uniform)
    flags = cupy.zeros(2 * tile_units(variant, shape), cupy.uint8) if active_tiles else None

    def mode(n: int) -> dict[str, Any]:
        return dict(tile_flags=flags, tile_mode=n % 2) if active_tiles else {}

    for n in range(warmup):
        launch_step(cur, nxt, rmap, fmap, cnt, inputs[n], map_day=n, **kw, **mode(n))
        cur, nxt = nxt, cur
    cnt[...] = 0
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for n in range(warmup, warmup + steps):
        launch_step(cur, nxt, rmap, fmap, cnt, inputs[n], map_day=n, **kw, **mode(n))
        cur, nxt = nxt, cur
    stop.record()
    stop.synchronize()
    secs = cupy.cuda.get_elapsed_time(start, stop) / 1e3
    nvox = int(np.prod(shape))
    active = int(cupy.count_nonzero((cur >> 8) & 3))
    stepped = int(cnt[:, len(COUNTERS)].sum()) / (steps * tile_units(variant, shape))
    del cur, nxt, rmap, fmap
    cupy.get_default_memory_pool().free_all_blocks()
    gv = nvox * steps / secs / 1e9
    return {
        "shape": list(shape),
        "steps": steps,
        "seconds": secs,
        "gvox_per_s": gv,
        "bytes_per_voxel_step": BYTES_PER_VOXEL_STEP,
        "effective_GBps": gv * BYTES_PER_VOXEL_STEP,
        "active_bmu_voxels": active,
        "min_blocks_per_sm": mb,
        "kernel": variant,
        "skip_uniform": skip_uniform,
        "active_tiles": active_tiles,
        "tiles_stepped_fraction": stepped,
    }


def naive_step(words: Any, inputs: Any, neighbourhood: int = 26) -> tuple[Any, np.ndarray]:
    """The same rule from CuPy array operations and cupyx.scipy.ndimage (dense, unfused): the baseline."""
    import cupy
    from cupyx.scipy import ndimage as ndi

    from bonesim.ca.backends.numpy_backend import rule

    shape = words.shape
    pad = cupy.pad(words, 1, constant_values=int(INERT))
    marrow = (pad & 0xFFFF) == 0
    struct = np.ones((3, 3, 3), bool) if neighbourhood == 26 else ndi.generate_binary_structure(3, 1)
    near = ndi.binary_dilation(marrow, structure=cupy.asarray(struct))[1:-1, 1:-1, 1:-1]
    qbone = (((words >> 8) & 0xFF) == 0) & ((words & 0xFF) != 0)
    n_surface = int(cupy.count_nonzero(qbone & near))
    Z, Y, X = shape
    W = cupy.stack(
        [
            pad[1 + dz : 1 + dz + Z, 1 + dy : 1 + dy + Y, 1 + dx : 1 + dx + X].ravel()
            for dz, dy, dx in OFFSETS.tolist()
        ]
    )
    lin = cupy.arange(words.size, dtype=cupy.uint64)
    hashes = voxel_random(inputs.seed_lo, inputs.seed_hi, inputs.step, lin, xp=cupy)
    new, ev = rule(W, inputs, hashes, neighbourhood, xp=cupy)
    ob = (W[13] & 0xFF).astype(cupy.int64)
    diff = (new & 0xFF).astype(cupy.int64) - ob
    counters = np.array(
        [
            int(cupy.maximum(-diff, 0).sum()),
            int(cupy.maximum(diff, 0).sum()),
            int(cupy.count_nonzero(ev & 1)),
            int(cupy.count_nonzero(ev & 2)),
            n_surface,
            int(cupy.count_nonzero(ev & 8)),
        ],
        np.uint64,
    )
    return new.reshape(shape), counters


def bench_naive(shape: tuple[int, int, int], steps: int, warmup: int = 32) -> dict[str, Any]:
    """Time the naive baseline and check it against the fused kernel, step by step."""
    import cupy

    from bonesim.ca.backends.cupy_backend import NCOUNT, NSLOT, launch_step

    sched = _schedule()
    cur = _gpu_gyroid(shape).astype(cupy.uint32)
    nxt = cupy.empty_like(cur)
    rmap = cupy.full(shape, -1, cupy.int32)
    fmap = cupy.full(shape, -1, cupy.int32)
    cnt = cupy.zeros((NSLOT, NCOUNT), cupy.uint64)
    for n in range(warmup):
        launch_step(cur, nxt, rmap, fmap, cnt, sched.inputs(n, seed=0), map_day=n)
        cur, nxt = nxt, cur
    same = True
    secs = 0.0
    for n in range(warmup, warmup + steps):
        inp = sched.inputs(n, seed=0)
        cupy.cuda.Device().synchronize()
        t = time.perf_counter()
        naive, _ = naive_step(cur, inp)
        cupy.cuda.Device().synchronize()
        secs += time.perf_counter() - t
        launch_step(cur, nxt, rmap, fmap, cnt, inp, map_day=n)
        cur, nxt = nxt, cur
        same = same and bool((naive == cur).all())
    del cur, nxt, rmap, fmap
    cupy.get_default_memory_pool().free_all_blocks()
    return {
        "shape": list(shape),
        "steps": steps,
        "seconds": secs,
        "gvox_per_s": float(np.prod(shape)) * steps / secs / 1e9,
        "same_bits_as_fused": same,
    }


def bench_numpy(shape: tuple[int, int, int], steps: int, warmup: int = 32) -> dict[str, Any]:
    """Time the NumPy backend (``NumpyBackend.step``, the active-set path) after ``warmup`` steps."""
    from bonesim.ca.backends.numpy_backend import NumpyBackend

    sched = _schedule()
    bone = gyroid(shape, PERIOD, gyroid_sheet_level_for(BVTV), sheet=True)
    z = np.zeros(shape, np.uint8)
    maps = np.full(shape, -1, np.int32)
    be = NumpyBackend()
    st = be.upload(bone, z, z.astype(np.uint16), maps, maps, neighbourhood=26)
    for n in range(warmup):
        be.step(st, sched.inputs(n, seed=0), step=n, map_day=n)
    be.read_counters(st)
    t = time.perf_counter()
    for n in range(warmup, warmup + steps):
        be.step(st, sched.inputs(n, seed=0), step=n, map_day=n)
    be.read_counters(st)
    secs = time.perf_counter() - t
    return {
        "shape": list(shape),
        "steps": steps,
        "seconds": secs,
        "mvox_per_s": float(np.prod(shape)) * steps / secs / 1e6,
        "active_bmu_voxels": int(st.bmu.size),
        "surface_voxels": int(np.count_nonzero(st.surface)),
        "cpu": platform.processor() or platform.machine(),
    }


def run_bench(
    shapes: list[int] | None = None,
    steps: int = 50,
    *,
    backend: str = "auto",
    baseline_shape: int = 256,
    baseline_steps: int = 3,
    numpy_shape: int = 64,
    numpy_steps: int = 20,
    copy_bytes: int = 2**30,
    tune_min_blocks: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Run the benchmark; GPU parts only when CuPy and a device work (or ``backend='cupy'``)."""
    from bonesim.ca.backends import _cupy_problem

    out: dict[str, Any] = {
        "neighbourhood": 26,
        "params": BENCH_PARAMS.to_dict(),
        "phantom": {"kind": "sheet gyroid", "period_vox": PERIOD, "bvtv": BVTV},
    }
    problem = _cupy_problem() if backend in ("auto", "cupy") else "numpy asked for"
    if backend == "cupy" and problem:
        from bonesim.errors import BonesimError

        raise BonesimError(f"backend 'cupy' is not available: {problem}")
    if problem is None:
        import cupy

        from bonesim.ca.backends.cupy_backend import CupyBackend

        out["device"] = CupyBackend().device
        out["cupy"] = cupy.__version__
        copy = copy_bandwidth(copy_bytes)
        out["copy_GBps"] = copy
        out["cupy_results"] = []
        for n in shapes or [512, 1024]:
            for variant, skip, active in KERNEL_VARIANTS:
                r = bench_cupy((n, n, n), steps, variant=variant, skip_uniform=skip, active_tiles=active)
                r["copy_GBps"] = copy
                r["ratio_to_copy"] = r["effective_GBps"] / copy
                out["cupy_results"].append(r)
        if tune_min_blocks:  # occupancy vs register spills, at the first shape
            n = (shapes or [512])[0]
            out["tune_min_blocks"] = [
                {"min_blocks": mb, "gvox_per_s": bench_cupy((n, n, n), steps, min_blocks=mb)["gvox_per_s"]}
                for mb in tune_min_blocks
            ]
        if baseline_shape:
            b = bench_naive((baseline_shape,) * 3, baseline_steps)
            fused = bench_cupy((baseline_shape,) * 3, steps)
            b["fused_gvox_per_s_same_shape"] = fused["gvox_per_s"]
            b["speedup_fused_over_naive"] = fused["gvox_per_s"] / b["gvox_per_s"]
            out["naive_baseline"] = b
    else:
        out["device"] = f"none ({problem})"
    if numpy_shape:
        out["numpy"] = bench_numpy((numpy_shape,) * 3, numpy_steps)
    out["counters"] = list(COUNTERS)
    return out
