"""The CuPy backend's host-side plumbing, on the CPU, with a stand-in for CuPy.

No GPU here: a fake ``cupy`` module provides NumPy-backed arrays, and its
``RawModule`` compiles the real kernel source (with the backend's preamble and
include options) with nvcc for sm_90 to check that it builds, then runs each
"launch" through the host-compiled rule (the same ``remodel_rules.cuh``).
This checks buffer swapping, the counter ring, downloads, the memory check
and the engine on ``backend="cupy"`` against NumPy, bit for bit.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.ca.engine import simulate
from bonesim.ca.kernel_abi import KERNEL_ARGS
from tests.ca.test_ca_parity import _harness_lib, host_launch
from tests.fast_params import fast

NVCC = shutil.which("nvcc")


class FakeArray(np.ndarray):
    def get(self):
        return np.asarray(self).copy()

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _fake_cupy(tmpdir: str, compiled: list[str], launches: list | None = None) -> types.ModuleType:
    launches = [] if launches is None else launches
    cp = types.ModuleType("cupy")
    cp.__version__ = "fake"
    for nm in ("uint8", "uint16", "uint32", "uint64", "int32", "int64"):
        setattr(cp, nm, getattr(np, nm))

    def wrap(a):
        return np.ascontiguousarray(a).view(FakeArray)

    cp.asarray = lambda a, dtype=None: wrap(np.array(a, dtype=dtype, copy=True))
    cp.empty_like = lambda a: wrap(np.empty_like(a))
    cp.zeros = lambda shape, dtype=float: wrap(np.zeros(shape, dtype))
    cp.full = lambda shape, v, dtype=None: wrap(np.full(shape, v, dtype))

    class Device:
        def __init__(self, i=0):
            self.id = i

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def synchronize(self):
            pass

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        memGetInfo=lambda: (4 * 2**30, 8 * 2**30),
        getDeviceProperties=lambda i: {"name": b"FakeGPU", "totalGlobalMem": 8 * 2**30},
    )

    class Event:
        def record(self):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

    def memcpy_async(dst, src, nbytes, kind, stream):
        ctypes.memmove(dst, src, nbytes)

    runtime.memcpyAsync = memcpy_async
    runtime.memcpyDeviceToDevice = 3
    cp.cuda = types.SimpleNamespace(
        Device=Device,
        runtime=runtime,
        Event=Event,
        get_elapsed_time=lambda a, b: 1e3 * max(b.t - a.t, 1e-9),
        get_current_stream=lambda: types.SimpleNamespace(ptr=0),
    )
    cp.get_default_memory_pool = lambda: types.SimpleNamespace(free_all_blocks=lambda: None)

    class RawModule:
        def __init__(self, code, options=()):
            neigh = int(code.split("#define BONESIM_NEIGH ")[1].split()[0])
            if NVCC:
                src = f"{tmpdir}/k{len(compiled)}.cu"
                with open(src, "w") as fh:
                    fh.write(code)
                r = subprocess.run(
                    [NVCC, "-arch=sm_90", "-ptx", *options, src, "-o", src + ".ptx"],
                    capture_output=True,
                    text=True,
                )
                assert r.returncode == 0, r.stderr
                compiled.append(open(src + ".ptx").read())

            def define(a):
                return int(code.split(f"#define BONESIM_{a} ")[1].split()[0])

            self.neigh, self.tmpdir = neigh, tmpdir
            self.defines = ("BONESIM_NO_BARRIERS=1",) if "#define BONESIM_NO_BARRIERS 1" in code else ()
            self.tile = tuple(define(a) for a in ("BX", "BY", "BZ"))
            self.zm = tuple(define(a) for a in ("ZBX", "ZBY", "ZCHUNK"))

        def get_function(self, name):
            zm = name.startswith("bonesim_remodel_step_zm_n")
            dims = self.zm if zm else self.tile
            tag = ("zm:" if zm else "") + ",".join(map(str, dims))
            # the kernel's block body, emulated on the host (with the module's mutation, if any)
            lib = _harness_lib(self.neigh, self.tmpdir, tag, self.defines)
            variant = "zm" if zm else "tile"

            def launch(grid, block, args):
                assert len(args) == len(KERNEL_ARGS), "argument count differs from kernel_abi.KERNEL_ARGS"
                for a, v in zip(KERNEL_ARGS, args, strict=True):
                    if a.kind == "array":
                        assert isinstance(v, FakeArray) and v.dtype == a.dtype and v.flags.c_contiguous, (
                            a.name
                        )
                    elif a.kind == "struct":  # CuPy passes a one-element NumPy array by value
                        assert type(v) is np.ndarray and v.dtype == a.dtype and v.size == 1, a.name
                    else:
                        assert type(v) is a.dtype.type, a.name
                launches.append((name, tuple(grid), tuple(block)))
                host_launch(lib, variant, tuple(grid), tuple(block), args)

            assert name.startswith(("bonesim_remodel_step_n", "bonesim_remodel_step_zm_n"))
            return launch

    cp.RawModule = RawModule

    def fallback(name):  # any other cupy function: the NumPy one, returning fake device arrays
        fn = getattr(np, name)
        if not callable(fn) or isinstance(fn, type):
            return fn

        def call(*a, **k):
            r = fn(*a, **k)
            return wrap(r) if isinstance(r, np.ndarray) else r

        return call

    cp.__getattr__ = fallback
    return cp


def _fake_cupyx() -> dict[str, types.ModuleType]:
    import scipy.ndimage as sndi

    nd = types.ModuleType("cupyx.scipy.ndimage")
    nd.binary_dilation = lambda a, structure=None: np.asarray(
        sndi.binary_dilation(a, structure=structure)
    ).view(FakeArray)
    nd.generate_binary_structure = sndi.generate_binary_structure
    x, sc = types.ModuleType("cupyx"), types.ModuleType("cupyx.scipy")
    x.scipy, sc.ndimage = sc, nd
    return {"cupyx": x, "cupyx.scipy": sc, "cupyx.scipy.ndimage": nd}


@pytest.fixture
def fake_cupy(monkeypatch, tmp_path):
    import bonesim.ca.backends.cupy_backend as cb

    compiled: list[str] = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(str(tmp_path), compiled))
    for name, mod in _fake_cupyx().items():
        monkeypatch.setitem(sys.modules, name, mod)
    cb._module.cache_clear()
    yield compiled
    cb._module.cache_clear()


FAST = fast(acf_per_year=10, erosion_depth_um=50, footprint_radius_um=60)


def test_engine_on_fake_cupy_equals_numpy(fake_cupy, tmp_path):
    from bonesim.ca.backends import resolve_backend

    be = resolve_backend("auto")
    assert be.name == "cupy" and "FakeGPU" in be.device
    bone = phantom.gyroid((18, 20, 22), 16, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    vol = Volume(bone, 20.0)
    kw = dict(years=0.4, spinup_years=0.05, save_every=9, seed=4)  # > RING steps between counter reads
    a = simulate(vol, FAST, backend="numpy", **kw)
    b = simulate(vol, FAST, backend="cupy", out=tmp_path / "c.h5", **kw)
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k], err_msg=k)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    assert b.backend == "cupy"
    if NVCC:
        assert fake_cupy and "bonesim_remodel_step_n26" in fake_cupy[0]


def test_volume_too_large_for_device(fake_cupy):
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.errors import BonesimError

    shape = (1024, 1024, 512)  # 8 GiB of state at 16 B/voxel; the fake device has 4 GiB free
    u8, u16, i32 = (np.broadcast_to(np.zeros((1, 1, 1), t), shape) for t in (np.uint8, np.uint16, np.int32))
    with pytest.raises(BonesimError, match=r"needs 8\.0 GiB on the GPU .* only 4\.0 GiB are free"):
        CupyBackend().upload(u8, u8, u16, i32, i32, neighbourhood=26)


@pytest.mark.parametrize(
    "name", ["test_cupy_matches_numpy_6_neighbourhood", "test_cupy_halves_with_halo_equal_whole"]
)
def test_gpu_test_bodies_run_on_the_stand_in(fake_cupy, name):
    """The GPU tests themselves are sound: they pass with the host-compiled rule standing in for the kernel."""
    from tests.ca import test_ca_gpu

    getattr(test_ca_gpu, name)()


def test_bench_runs_and_naive_baseline_gives_the_same_bits(fake_cupy):
    from bonesim.ca.bench import KERNEL_VARIANTS, run_bench

    res = run_bench(
        [24],
        3,
        baseline_shape=20,
        baseline_steps=2,
        numpy_shape=16,
        numpy_steps=2,
        copy_bytes=2**20,
        tune_min_blocks=(2, 3),
    )
    assert "FakeGPU" in res["device"] and res["copy_GBps"] > 0
    r = res["cupy_results"][0]
    assert r["shape"] == [24, 24, 24] and r["bytes_per_voxel_step"] == 8 and r["ratio_to_copy"] > 0
    assert res["naive_baseline"]["same_bits_as_fused"] is True
    assert res["numpy"]["mvox_per_s"] > 0
    assert [t["min_blocks"] for t in res["tune_min_blocks"]] == [2, 3]
    got = [(r["kernel"], r["skip_uniform"], r["active_tiles"]) for r in res["cupy_results"]]
    assert got == list(KERNEL_VARIANTS) and ("tile", True, True) in got and ("zm", False, False) in got
    for r in res["cupy_results"]:  # 24^3 has no interior tile to skip
        assert r["tiles_stepped_fraction"] == 1.0


@pytest.mark.parametrize("variant", ["tile", "zm"])
def test_backend_reports_the_fraction_of_tiles_stepped(fake_cupy, variant):
    """The GPU test of the tiles-stepped fraction passes on the stand-in (host-emulated block body)."""
    from tests.ca import test_ca_gpu

    test_ca_gpu.test_cupy_reports_the_fraction_of_tiles_stepped(variant)


def test_zm_kernel_variant_equals_numpy(fake_cupy):
    from bonesim.ca.backends.cupy_backend import CupyBackend

    bone = phantom.gyroid((37, 20, 30), 16, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    vol = Volume(bone, 20.0)
    kw = dict(years=0.15, spinup_years=0.05, save_every=9, seed=6)
    a = simulate(vol, FAST, backend="numpy", **kw)
    b = simulate(vol, FAST, backend=CupyBackend(variant="zm"), **kw)
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k], err_msg=k)
    np.testing.assert_array_equal(a.metrics["recruited"], b.metrics["recruited"])


@pytest.mark.parametrize("variant", ["tile", "zm"])
def test_gpu_parity_test_body_on_the_stand_in(fake_cupy, variant):
    from tests.ca import test_ca_gpu

    test_ca_gpu.test_cupy_matches_numpy_bit_for_bit((37, 29, 45), 1, variant)


@pytest.mark.parametrize("variant", ["tile", "zm"])
def test_gpu_modeling_test_body_on_the_stand_in(fake_cupy, variant):
    """The CuPy backend hands the 512-entry table and mod_on to the kernel (host-compiled stand-in)."""
    from tests.ca import test_ca_gpu

    test_ca_gpu.test_cupy_matches_numpy_with_modeling_formation(variant)


def test_active_tiles_equal_stepping_every_tile(fake_cupy):
    """The GPU test of active tiles passes on the stand-in: the host emulation of the block body with
    real ping-pong buffers and tile flags equals NumPy and the backend without active tiles."""
    from tests.ca import test_ca_gpu

    test_ca_gpu.test_cupy_active_tiles_equal_stepping_every_tile()
