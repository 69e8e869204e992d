"""GPU checks of the CuPy backend (marked ``gpu``; skipped without a CUDA device).

Run on a GPU machine with ``PYTHONPATH=. python -m pytest -m gpu tests/test_ca_gpu.py``.
Bit-exact parity with the NumPy reference: 3 seeds x 2 shapes (one not a
multiple of the 32x4x4 block) x 2 kernel variants, 60 steps, every array and
every counter.
"""

from __future__ import annotations

import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.ca.backends.base import COUNTERS, pack
from bonesim.ca.schedule import Schedule
from tests.fast_params import FAST, fast

pytestmark = pytest.mark.gpu
#: busy turnover for the kernel-diet tests (uniform tiles, active tiles)
DIET = fast(acf_per_year=10, erosion_depth_um=50, footprint_radius_um=60)


def _bone(shape):
    return phantom.gyroid(shape, 20, phantom.gyroid_sheet_level_for(0.35), sheet=True)


def _run(backend, bone, params, steps, seed, mechanics=None):
    sched = Schedule([params], 20.0)
    z = np.zeros(bone.shape, np.uint8)
    st = backend.upload(
        bone,
        z,
        z.astype(np.uint16),
        np.full(bone.shape, -1, np.int32),
        np.full(bone.shape, -1, np.int32),
        neighbourhood=params.neighbourhood,
    )
    if mechanics is not None:  # (mech, lut): a lut of 512 entries switches modeling formation on
        backend.set_mechanics(st, *mechanics)
        sched.mech_on, sched.mod_on = 1, int(len(mechanics[1]) > 256)
    snaps, rows = [], []

    def drain():
        r = backend.read_counters(st)
        rows.append(r)
        sched.add_counters(r)

    for n in range(steps):
        backend.step(st, sched.inputs_for_step(n, seed=seed, drain=drain), step=n, map_day=n)
        if n % 10 == 9:
            snaps.append(backend.download(st))
    rows.append(backend.read_counters(st))
    return snaps, np.concatenate(rows)


@pytest.mark.parametrize("variant", ["tile", "zm"])
@pytest.mark.parametrize("shape", [(32, 32, 64), (37, 29, 45)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cupy_matches_numpy_bit_for_bit(shape, seed, variant):
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.ca.backends.numpy_backend import NumpyBackend

    bone = _bone(shape)
    a_snaps, a_rows = _run(NumpyBackend(), bone, FAST, 60, seed)
    b_snaps, b_rows = _run(CupyBackend(variant=variant), bone, FAST, 60, seed)
    for i, (a, b) in enumerate(zip(a_snaps, b_snaps, strict=False)):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k} after step {10 * i + 9}")
    np.testing.assert_array_equal(a_rows, b_rows)
    phases = set().union(*(np.unique(a["phase"] & 3).tolist() for a in a_snaps))
    assert phases == {0, 1, 2, 3}, "the run must exercise every phase"


@pytest.mark.parametrize("variant", ["tile", "zm"])
def test_cupy_matches_numpy_with_modeling_formation(variant):
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.ca.backends.numpy_backend import NumpyBackend

    shape = (37, 29, 45)
    rng = np.random.default_rng(4)
    mech = rng.integers(0, 256, shape).astype(np.uint8)
    act = rng.integers(0, 4 * 256, 256)
    model = np.where(np.arange(256) >= 128, rng.integers(0, int(0.1 * 2**32), 256), 0)
    lut = np.concatenate([act, model]).astype(np.uint32)
    bone = _bone(shape)
    a_snaps, a_rows = _run(NumpyBackend(), bone, FAST, 60, 3, (mech, lut))
    b_snaps, b_rows = _run(CupyBackend(variant=variant), bone, FAST, 60, 3, (mech, lut))
    for a, b in zip(a_snaps, b_snaps, strict=False):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(a_rows, b_rows)
    assert a_rows[:, -1].sum() > 0, "modeling formation must start"


def test_cupy_matches_numpy_6_neighbourhood():
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.ca.backends.numpy_backend import NumpyBackend

    p = FAST.replace(neighbourhood=6)
    bone = _bone((33, 20, 40))
    a, ra = _run(NumpyBackend(), bone, p, 50, 5)
    b, rb = _run(CupyBackend(), bone, p, 50, 5)
    for x, y in zip(a, b, strict=False):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    np.testing.assert_array_equal(ra, rb)


def test_cupy_halves_with_halo_equal_whole():
    import cupy

    from bonesim.ca.backends.cupy_backend import NCOUNT, NSLOT, launch_step

    bone = _bone((30, 26, 40))
    sched = Schedule([FAST], 20.0)
    z = np.zeros(bone.shape, np.uint8)
    whole = cupy.asarray(pack(bone, z, z.astype(np.uint16)))
    split = whole.copy()
    g = bone.shape
    maps = [cupy.full(g, -1, cupy.int32) for _ in range(4)]
    cnt = cupy.zeros((NSLOT, NCOUNT), cupy.uint64)
    for n in range(40):
        inp = sched.inputs(n, seed=1)
        out = cupy.empty_like(whole)
        launch_step(whole, out, maps[0], maps[1], cnt, inp, map_day=n)
        whole = out
        cut = 13
        padded = cupy.pad(split, 1)  # outside values are masked as inert by the kernel
        parts = []
        for lo, hi in ((0, cut), (cut, g[0])):
            blk = cupy.ascontiguousarray(padded[lo : hi + 2])
            o = cupy.empty((hi - lo, g[1], g[2]), cupy.uint32)
            r = cupy.ascontiguousarray(maps[2][lo:hi])
            f = cupy.ascontiguousarray(maps[3][lo:hi])
            launch_step(blk, o, r, f, cnt, inp, halo=1, origin=(lo - 1, -1, -1), global_shape=g, map_day=n)
            maps[2][lo:hi], maps[3][lo:hi] = r, f
            parts.append(o)
        split = cupy.concatenate(parts)
        assert bool((split == whole).all()), f"step {n}"
    assert bool((maps[0] == maps[2]).all()) and bool((maps[1] == maps[3]).all())


def test_engine_on_cupy_equals_numpy(tmp_path):
    from bonesim.ca.engine import simulate

    vol = Volume(_bone((40, 40, 40)), 20.0)
    a = simulate(vol, FAST, years=0.3, spinup_years=0.1, backend="numpy", seed=3)
    b = simulate(vol, FAST, years=0.3, spinup_years=0.1, backend="cupy", seed=3, out=tmp_path / "g.h5")
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k])
    np.testing.assert_array_equal(a.metrics["bv_tv"], b.metrics["bv_tv"])
    assert b.backend == "cupy" and "cuda" in b.device


@pytest.mark.parametrize("variant", ["tile", "zm"])
def test_cupy_reports_the_fraction_of_tiles_stepped(variant):
    """A marrow/bone slab has uniform tiles: the backend's fraction of tiles stepped is below 1, from the
    kernels' tiles counter, and the words equal NumPy's."""
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.ca.backends.numpy_backend import NumpyBackend
    from bonesim.ca.schedule import Schedule

    bone = np.zeros((40, 20, 70), np.uint8)
    bone[8:19] = 255
    z8, z16, i32 = (
        np.zeros(bone.shape, np.uint8),
        np.zeros(bone.shape, np.uint16),
        np.full(bone.shape, -1, np.int32),
    )
    sched = Schedule([DIET], 20.0)
    states = []
    for be in (NumpyBackend(), CupyBackend(variant=variant)):
        st = be.upload(bone, z8, z16, i32, i32, neighbourhood=26)
        for n in range(6):
            be.step(st, sched.inputs_for_step(n, seed=2), step=n, map_day=n)
        states.append((be, st))
    (nb, ns), (cb, cs) = states
    np.testing.assert_array_equal(nb.download(ns)["bone"], cb.download(cs)["bone"])
    np.testing.assert_array_equal(nb.read_counters(ns), cb.read_counters(cs))
    frac = cb.tiles_stepped(cs)
    assert 0.0 < frac < 1.0, frac


def test_cupy_active_tiles_equal_stepping_every_tile():
    """Active tiles (tile kernel): blocks that were quiet with their 26 neighbours in the previous step are
    neither loaded nor stored. A thick slab of quiescent bone of two mineral levels (not uniform, so the
    uniform-tile skip cannot take it) between marrow: the backend with active tiles gives NumPy's words,
    maps and counters at every step, and steps fewer tiles than without them."""
    from bonesim.ca.backends.cupy_backend import CupyBackend
    from bonesim.ca.backends.numpy_backend import NumpyBackend
    from bonesim.ca.schedule import Schedule

    shape = (44, 20, 100)
    bone = np.zeros(shape, np.uint8)
    # surfaces two voxels from a block boundary (blocks are 4 planes deep): erosion reaches the next block
    bone[6:38] = np.where(np.indices(shape[1:]).sum(axis=0) % 2 == 0, 255, 200)[None]
    z8, z16 = np.zeros(shape, np.uint8), np.zeros(shape, np.uint16)
    i32 = np.full(shape, -1, np.int32)
    sched = Schedule([DIET], 20.0)
    backends = (NumpyBackend(), CupyBackend(active_tiles=True), CupyBackend(active_tiles=False))
    states = [be.upload(bone, z8, z16, i32, i32, neighbourhood=26) for be in backends]
    for n in range(24):
        inp = sched.inputs_for_step(n, seed=3)
        for be, st in zip(backends, states, strict=True):
            be.step(st, inp, step=n, map_day=n)
        ref = backends[0].download(states[0])
        for be, st in zip(backends[1:], states[1:], strict=True):
            got = be.download(st)
            for k in ref:
                np.testing.assert_array_equal(
                    ref[k], got[k], err_msg=f"{k} at step {n}, active={be.active_tiles}"
                )
    rows = [be.read_counters(st) for be, st in zip(backends, states, strict=True)]
    np.testing.assert_array_equal(rows[0], rows[1])
    np.testing.assert_array_equal(rows[0], rows[2])
    assert rows[0][:, COUNTERS.index("removed")].sum() > 0, "the slab must be remodeled"
    on, off = (be.tiles_stepped(st) for be, st in zip(backends[1:], states[1:], strict=True))
    assert off == 1.0 and on < 0.8, (on, off)


def test_engine_on_cupy_equals_numpy_with_a_drugs_modeling_formation():
    """The physiology's modeling-based formation (a changing rate, then none): same bits on both."""
    from bonesim.ca.engine import simulate
    from bonesim.ca.params import constant_table

    vol = Volume(_bone((40, 40, 40)), 20.0)
    table = constant_table(FAST, 80)
    table["modeling_um_per_day"] = np.r_[np.zeros(5), np.linspace(0.6, 0.05, 50), np.zeros(25)]
    kw = dict(base_params=FAST, years=80 / 365.25, spinup_years=0.05, seed=3)
    a = simulate(vol, table, backend="numpy", **kw)
    b = simulate(vol, table, backend="cupy", **kw)
    assert a.metrics["modeled"].sum() > 0
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k])
    np.testing.assert_array_equal(a.metrics["modeled"], b.metrics["modeled"])
    np.testing.assert_array_equal(a.metrics["bv_tv"], b.metrics["bv_tv"])
