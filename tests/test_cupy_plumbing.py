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
import types

import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.engine import simulate
from bonesim.params import RemodelingParams
from tests.test_ca_parity import _harness

NVCC = shutil.which("nvcc")


class FakeArray(np.ndarray):
    def get(self):
        return np.asarray(self).copy()


def _fake_cupy(tmpdir: str, compiled: list[str]) -> types.ModuleType:
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
    cp.cuda = types.SimpleNamespace(Device=Device, runtime=runtime)

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
            self.fn = _harness(neigh, tmpdir)

        def get_function(self, name):
            fn = self.fn

            def launch(grid, block, args):
                src, dst, rmap, fmap, counters = args[:5]
                nz, ny, nx, halo = (int(v) for v in args[5:9])
                o = [int(v) for v in args[9:15]]
                map_day = int(args[15])
                prm = np.array([int(v) for v in args[16:]], np.uint32)
                pad = np.empty((nz - 2 * halo + 2, ny - 2 * halo + 2, nx - 2 * halo + 2), np.uint32)
                cnt = np.zeros(6, np.uint64)
                P, i64 = ctypes.c_void_p, ctypes.c_longlong
                fn(
                    P(src.ctypes.data),
                    P(pad.ctypes.data),
                    P(dst.ctypes.data),
                    P(rmap.ctypes.data),
                    P(fmap.ctypes.data),
                    P(cnt.ctypes.data),
                    ctypes.c_int(nz),
                    ctypes.c_int(ny),
                    ctypes.c_int(nx),
                    ctypes.c_int(halo),
                    *(i64(v) for v in o),
                    ctypes.c_int(map_day),
                    P(prm.ctypes.data),
                )
                counters[3 % counters.shape[0], :6] += cnt  # any slot: the backend sums them

            assert name.startswith("bonesim_remodel_step_n")
            return launch

    cp.RawModule = RawModule
    return cp


@pytest.fixture
def fake_cupy(monkeypatch, tmp_path):
    import bonesim.backends.cupy_backend as cb

    compiled: list[str] = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(str(tmp_path), compiled))
    cb._module.cache_clear()
    yield compiled
    cb._module.cache_clear()


FAST = RemodelingParams(
    acf_per_year=10,
    footprint_radius_um=60,
    resorption_days=12,
    reversal_days=4,
    mar_um_per_day=3.0,
    formation_efficiency=0.9,
)


def test_engine_on_fake_cupy_equals_numpy(fake_cupy, tmp_path):
    from bonesim.backends import resolve_backend

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
    from bonesim.backends.cupy_backend import CupyBackend
    from bonesim.errors import BonesimError

    shape = (1024, 1024, 512)  # 8 GiB of state at 16 B/voxel; the fake device has 4 GiB free
    u8, u16, i32 = (np.broadcast_to(np.zeros((1, 1, 1), t), shape) for t in (np.uint8, np.uint16, np.int32))
    with pytest.raises(BonesimError, match=r"needs 8\.0 GiB on the GPU .* only 4\.0 GiB are free"):
        CupyBackend().upload(u8, u8, u16, i32, i32, neighbourhood=26)
