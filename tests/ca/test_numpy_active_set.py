"""The NumPy backend's active-set step equals the full-volume step, bit for bit, over many steps.

``NumpyBackend.step`` (``step_active``) keeps the surface and BMU voxels between
steps and visits only them; ``step_block`` (the chunked backend's and the parity
tests' path) rebuilds every mask from the whole volume each step. Both must give
the same words, remodeling maps and counters every step, with mechanoregulation
off and on (a field that changes during the run), in both neighbourhoods, and
the maintained sets must equal their full recomputation after every step.
"""

from __future__ import annotations

import numpy as np
import pytest

from bonesim import phantom
from bonesim.ca.backends.base import COUNTERS, INERT, OFFSETS, pack
from bonesim.ca.backends.numpy_backend import NumpyBackend, _byte_views, _surface, rule, step_block
from bonesim.ca.rng import voxel_random
from bonesim.ca.schedule import Schedule
from tests.ca.ca_helpers import inputs
from tests.fast_params import fast

SHAPE = (19, 23, 17)  # no two edges equal, so a transposed index shows


def _gyroid() -> np.ndarray:
    return phantom.gyroid(SHAPE, 9.0, phantom.gyroid_sheet_level_for(0.35), sheet=True)


def _mech(rng: np.random.Generator, modeling: bool = False) -> tuple[np.ndarray, np.ndarray]:
    mech = rng.integers(0, 256, SHAPE).astype(np.uint8)
    lut = rng.integers(0, 6 * 256, 256).astype(np.uint32)  # weights 0 .. 6 (8.8 fixed point)
    if modeling:  # modeling thresholds: 0 below class 128, up to a 10 % chance per step above
        model = np.where(np.arange(256) >= 128, rng.integers(0, int(0.1 * 2**32), 256), 0)
        lut = np.concatenate([lut, model]).astype(np.uint32)
    return mech, lut


def _assert_sets_exact(st) -> None:
    """The maintained surface mask and BMU indices equal a recomputation from the words."""
    pbone, pph, _lat, marrow, _ = _byte_views(st.pad)
    np.testing.assert_array_equal(st.surface, _surface(pbone, pph, marrow, st.neighbourhood))
    bmu = np.zeros(st.pad.shape, bool)
    bmu[1:-1, 1:-1, 1:-1] = pph[1:-1, 1:-1, 1:-1] != 0
    np.testing.assert_array_equal(st.bmu, np.flatnonzero(bmu))


@pytest.mark.parametrize(
    ("neighbourhood", "mech_on", "mod_on"),
    [
        (26, False, False),
        (26, True, False),
        (6, False, False),
        (6, True, False),
        (26, True, True),
        (6, True, True),
    ],
)
def test_active_set_step_equals_full_volume_step(neighbourhood, mech_on, mod_on):
    rng = np.random.default_rng(neighbourhood + mech_on + 2 * mod_on)
    bone = _gyroid()
    sched = Schedule([fast(neighbourhood=neighbourhood, acf_per_year=40.0)], 20.0)
    sched.mech_on = int(mech_on)
    sched.mod_on = int(mod_on)
    z = np.zeros(SHAPE, np.uint8)
    words = pack(bone, z, z.astype(np.uint16))
    rmap = np.full(SHAPE, -1, np.int32)
    fmap = np.full(SHAPE, -1, np.int32)
    be = NumpyBackend()
    st = be.upload(bone, z, z.astype(np.uint16), rmap, fmap, neighbourhood=neighbourhood)
    mech = lut = None
    seen_phases: set[int] = set()
    totals = np.zeros(len(COUNTERS), np.uint64)
    for n in range(240):
        if mech_on and n % 80 == 0:  # a new field, as after a mechanics update
            mech, lut = _mech(rng, mod_on)
            be.set_mechanics(st, mech, lut)
        inp = sched.inputs(n, seed=11)
        words, c_full = step_block(
            words,
            inp,
            neighbourhood=neighbourhood,
            resorbed_day=rmap,
            formed_day=fmap,
            map_day=n,
            mech=mech,
            lut=lut,
        )
        be.step(st, inp, step=n, map_day=n)
        (c_active,) = be.read_counters(st)
        np.testing.assert_array_equal(st.word, words, err_msg=f"words differ after step {n}")
        np.testing.assert_array_equal(c_active, c_full, err_msg=f"counters differ at step {n}")
        np.testing.assert_array_equal(st.resorbed_day, rmap)
        np.testing.assert_array_equal(st.formed_day, fmap)
        _assert_sets_exact(st)
        seen_phases |= set(np.unique((words >> 8) & 3).tolist())
        totals += c_full
    out = be.download(st)
    np.testing.assert_array_equal(out["bone"], words & 0xFF)
    # the run must exercise every branch of the rule, or the comparison proves little
    assert seen_phases == {0, 1, 2, 3}
    removed, added, recruited, seeds, _surface_sum, _perforated, modeled = totals.tolist()
    assert removed > 0 and added > 0 and recruited > seeds > 0
    assert (modeled > 0) == mod_on, "modeling seeds exactly when modeling is on"


def test_active_set_step_reads_the_border_as_inert():
    """Bone touching every face: the padded border must never act as marrow, source or BMU."""
    bone = np.full(SHAPE, 255, np.uint8)
    bone[5:-5, 6:-6, 4:-4] = 0  # one cavity inside
    sched = Schedule([fast(acf_per_year=50.0)], 20.0)
    z = np.zeros(SHAPE, np.uint8)
    words = pack(bone, z, z.astype(np.uint16))
    be = NumpyBackend()
    st = be.upload(
        bone,
        z,
        z.astype(np.uint16),
        np.full(SHAPE, -1, np.int32),
        np.full(SHAPE, -1, np.int32),
        neighbourhood=26,
    )
    for n in range(60):
        inp = sched.inputs(n, seed=2)
        words, _ = step_block(words, inp)
        be.step(st, inp, step=n, map_day=-1)
        np.testing.assert_array_equal(st.word, words)
        _assert_sets_exact(st)
    assert np.any((words >> 8) & 3)


@pytest.mark.parametrize("neighbourhood", [26, 6])
def test_bone_around_new_marrow_becomes_surface(neighbourhood):
    """A finished, empty formation site deep in bone turns into marrow: its neighbours must draw next step."""
    bone = np.full(SHAPE, 255, np.uint8)
    phase = np.zeros(SHAPE, np.uint8)
    bone[9, 11, 8], phase[9, 11, 8] = 0, 3  # forming, nothing to form (timer 0): becomes marrow
    timer = np.zeros(SHAPE, np.uint16)
    words = pack(bone, phase, timer)
    be = NumpyBackend()
    st = be.upload(
        bone,
        phase,
        timer,
        np.full(SHAPE, -1, np.int32),
        np.full(SHAPE, -1, np.int32),
        neighbourhood=neighbourhood,
    )
    assert not st.surface.any()
    inp = inputs(act_thr=2**31, lat0=3)  # every other surface voxel starts a BMU
    for n in range(3):
        inp = inputs(act_thr=2**31, lat0=3, step=n)
        words, c = step_block(words, inp, neighbourhood=neighbourhood)
        be.step(st, inp, step=n, map_day=-1)
        np.testing.assert_array_equal(st.word, words)
        np.testing.assert_array_equal(be.read_counters(st)[0], c)
        _assert_sets_exact(st)
    assert words[9, 11, 8] & 0xFFFF == 0 and c[COUNTERS.index("seeds")] > 0


@pytest.mark.parametrize("neighbourhood", [26, 6])
def test_active_set_step_on_random_words(neighbourhood):
    """Arbitrary words (every phase byte, corrupted direction codes 27-31 included) for a few steps."""
    rng = np.random.default_rng(neighbourhood)
    bone = np.where(rng.random(SHAPE) < 0.4, 0, rng.integers(1, 256, SHAPE)).astype(np.uint8)
    phase = np.where(rng.random(SHAPE) < 0.6, 0, rng.integers(0, 256, SHAPE)).astype(np.uint8)
    timer = np.where(rng.random(SHAPE) < 0.3, 0, rng.integers(0, 2**16, SHAPE)).astype(np.uint16)
    assert np.any(((phase & 3) == 1) & (phase >> 3 >= 27) & (bone == 0) & (timer > 0))
    words = pack(bone, phase, timer)
    maps = [np.full(SHAPE, -1, np.int32) for _ in range(2)]
    be = NumpyBackend()
    st = be.upload(bone, phase, timer, *maps, neighbourhood=neighbourhood)
    for n in range(4):
        inp = inputs(act_thr=2**28, lat0=40, erode=50, form=20, step=n, seed_lo=3)
        words, c = step_block(
            words, inp, neighbourhood=neighbourhood, resorbed_day=maps[0], formed_day=maps[1], map_day=n
        )
        be.step(st, inp, step=n, map_day=n)
        np.testing.assert_array_equal(st.word, words)
        np.testing.assert_array_equal(be.read_counters(st)[0], c)
        np.testing.assert_array_equal(st.resorbed_day, maps[0])
        np.testing.assert_array_equal(st.formed_day, maps[1])
        _assert_sets_exact(st)


@pytest.mark.parametrize("neighbourhood", [26, 6])
def test_rule_on_dense_neighbour_words_equals_step_block(neighbourhood):
    """The rule applied to every voxel with all 27 neighbour rows (the layout of the GPU baseline)."""
    bone = _gyroid()
    sched = Schedule([fast(neighbourhood=neighbourhood, acf_per_year=40.0)], 20.0)
    z = np.zeros(SHAPE, np.uint8)
    words = pack(bone, z, z.astype(np.uint16))
    Z, Y, X = SHAPE
    for n in range(120):
        inp = sched.inputs(n, seed=4)
        pad = np.pad(words, 1, constant_values=int(INERT))
        rows = [
            pad[1 + dz : 1 + dz + Z, 1 + dy : 1 + dy + Y, 1 + dx : 1 + dx + X].ravel()
            for dz, dy, dx in OFFSETS
        ]
        hashes = voxel_random(inp.seed_lo, inp.seed_hi, inp.step, np.arange(words.size))
        dense, _ev = rule(np.stack(rows), inp, hashes, neighbourhood)
        words, _c = step_block(words, inp, neighbourhood=neighbourhood)
        np.testing.assert_array_equal(dense.reshape(SHAPE), words, err_msg=f"step {n}")
    assert set(np.unique((words >> 8) & 3).tolist()) == {0, 1, 2, 3}


def test_download_and_upload_mid_run_continues_the_same_run():
    """A resumed run uploads a mid-run state (open BMUs, maps set; Fortran-ordered maps here): same bits."""
    bone = _gyroid()
    sched = Schedule([fast(acf_per_year=40.0)], 20.0)
    plan = [sched.inputs(n, seed=6) for n in range(160)]
    z = np.zeros(SHAPE, np.uint8)
    be = NumpyBackend()
    maps = [np.full(SHAPE, -1, np.int32) for _ in range(2)]
    one = be.upload(bone, z, z.astype(np.uint16), *maps, neighbourhood=26)
    two = be.upload(bone, z, z.astype(np.uint16), *maps, neighbourhood=26)
    for n, inp in enumerate(plan):
        if n == 90:
            d = be.download(two)
            assert np.any(d["phase"]) and np.any(d["formed_day"] >= 0)
            f_maps = [np.asfortranarray(d[k]) for k in ("resorbed_day", "formed_day")]
            two = be.upload(d["bone"], d["phase"], d["timer"], *f_maps, neighbourhood=26)
            _assert_sets_exact(two)
        be.step(one, inp, step=n, map_day=n)
        be.step(two, inp, step=n, map_day=n)
    a, b = be.download(one), be.download(two)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(be.read_counters(one)[-70:], be.read_counters(two))
