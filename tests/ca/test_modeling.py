"""Modeling-based formation: loaded marrow voxels next to quiescent bone start forming new bone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonesim import phantom
from bonesim.ca.backends.base import COUNTERS
from bonesim.ca.backends.numpy_backend import step_block
from bonesim.ca.kernel_abi import check_mechanics
from bonesim.ca.mechano import CLASS_OF_MEAN, MechanoParams, Mechanoregulation, modeling_table
from bonesim.errors import InputError
from tests.ca.ca_helpers import inputs, words_of

MODELED = COUNTERS.index("modeled")
P = MechanoParams(modeling=True, modeling_threshold=2.0, modeling_rate_per_day=0.05)


def _lut(x: float = 1.0, p: MechanoParams = P, dt: float = 1.0) -> np.ndarray:
    """Activation weights 1 (no BMU starts anyway: act_thr 0) and the modeling thresholds of ``p``."""
    return np.concatenate([np.full(256, 256, np.uint32), modeling_table(x, p, dt)])


def _run(words, mech, lut, steps, form=32, first=0, seed=1):
    rows = []
    for n in range(first, first + steps):
        inp = inputs(act_thr=0, form=form, seed_lo=seed, step=n, mech_on=1, mod_on=1)
        words, c = step_block(words, inp, mech=mech, lut=lut)
        rows.append(c)
    return words, np.array(rows)


def _strut() -> np.ndarray:
    """A thin strut (3 voxels thick) along x in marrow."""
    bone = np.zeros((11, 11, 40), np.uint8)
    bone[4:7, 4:7, 2:-2] = 255
    return bone


def test_a_loaded_strut_gains_bone_on_its_surface_and_an_unloaded_one_does_not():
    bone = _strut()
    mech = np.full(bone.shape, 3 * CLASS_OF_MEAN, np.uint8)  # 3 × the habitual mean: above 2×
    mech[:, :, 20:] = CLASS_OF_MEAN  # the habitual mean: below the threshold
    words, rows = _run(words_of(bone), mech, _lut(), 60)
    gained = (words & 0xFF).astype(np.int64) - bone.astype(np.int64)
    assert (gained >= 0).all(), "modeling only adds bone"
    assert gained[:, :, :20].sum() > 20 * 255, "the loaded half thickens"
    assert gained[:, :, 20:].sum() == 0, "the habitually loaded half does not"
    assert rows[:, MODELED].sum() > 0
    # new bone grows on the strut: the bone stays one face-connected piece
    _lab, n = ndimage.label((words & 0xFF) > 0)
    assert n == 1


def test_formation_stops_when_the_signal_falls_below_the_threshold():
    bone = _strut()
    mech = np.full(bone.shape, 3 * CLASS_OF_MEAN, np.uint8)
    words, rows = _run(words_of(bone), mech, _lut(), 30)
    assert rows[:, MODELED].sum() > 0
    # the bone added lowers the signal: the next FE solve says 0.6 × the habitual mean (X = 0.6)
    low = _lut(x=0.6)
    assert not low[256:][3 * CLASS_OF_MEAN].any(), "3 × 0.6 = 1.8 < 2: no modeling threshold"
    words2, rows2 = _run(words, mech, low, 200, first=30)
    assert rows2[:, MODELED].sum() == 0, "no new modeling seed below the threshold"
    # the seeds already started finish their one voxel and then stop: nothing is forming at the end
    assert not (((words2 >> 8) & 3) == 3).any()
    assert ((words2 & 0xFF) >= (words & 0xFF)).all()
    changed = _run(words2, mech, low, 5, first=230)[0]
    np.testing.assert_array_equal(changed, words2)


@pytest.mark.parametrize("dt", [0.5, 2.0])
def test_the_start_rate_per_day_does_not_depend_on_the_step(dt):
    """Marrow voxels started within 20 days of a loaded plate: the same fraction at dt = 1 and ``dt``.

    20 000 candidate voxels at 1.4 %/day (class 2.56 × the mean: u = 0.28 of the 5 %/day ramp):
    about 4 900 starts, binomial sd ≈ 60, so a 5 % tolerance is ~8 sd; a per-step probability not
    converted with dt would be off by a factor 2 (dt = 2) or 1/2 (dt = 0.5).
    """
    bone = phantom.plate((8, 100, 100), 2, axis=0)
    mech = np.full(bone.shape, round(2.56 * CLASS_OF_MEAN), np.uint8)
    days = 20

    def started(step_days: float) -> int:
        steps = round(days / step_days)
        # form = 0: a started voxel stays at bone 0, so only the first layer can start
        _w, rows = _run(words_of(bone), mech, _lut(dt=step_days), steps, form=0, seed=7)
        return int(rows[:, MODELED].sum())

    ref, other = started(1.0), started(dt)
    cand = 2 * 100 * 100  # the marrow layers above and below the plate (the volume's faces are inert)
    p = 0.05 * (2.56 / 2.0 - 1.0)
    expect = cand * (1 - (1 - p) ** days)
    assert abs(ref - expect) < 0.05 * expect
    assert abs(other - ref) < 0.05 * ref


def test_modeling_table_is_zero_below_the_threshold_and_rises_above_it():
    t = modeling_table(1.0, P, 1.0)
    assert not t[: 2 * CLASS_OF_MEAN + 1].any()
    assert (np.diff(t[2 * CLASS_OF_MEAN :].astype(np.int64)) >= 0).all() and t[-1] > 0
    assert not modeling_table(1.0, MechanoParams(), 1.0).any(), "off by default: all zero"
    # a higher load (X = 2) moves the threshold down to class 64
    t2 = modeling_table(2.0, P, 1.0)
    assert not t2[: CLASS_OF_MEAN + 1].any() and t2[CLASS_OF_MEAN + 8] > 0


def test_a_modeling_step_needs_mechanics_and_the_modeling_thresholds():
    shape = (4, 8, 8)
    mech = np.zeros(shape, np.uint8)
    with pytest.raises(InputError, match="mech_on"):
        check_mechanics(mech, np.zeros(512, np.uint32), shape, on=False, modeling=True)
    with pytest.raises(InputError, match="512"):
        check_mechanics(mech, np.zeros(256, np.uint32), shape, on=True, modeling=True)
    check_mechanics(mech, np.zeros(512, np.uint32), shape, on=True, modeling=True)
    check_mechanics(mech, np.zeros(512, np.uint32), shape, on=True, modeling=False)


def test_mechanoregulation_hands_the_modeling_thresholds_with_the_weights():
    bone = phantom.gyroid((16, 18, 20), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    on = Mechanoregulation(MechanoParams(modeling=True, modeling_threshold=1.5, sensing_um=60.0), 20.0, 1.0)
    up = on.update(bone)
    assert up.lut.shape == (512,)
    np.testing.assert_array_equal(up.lut[256:], modeling_table(up.mean_signal_rel, on.p, 1.0))
    assert up.lut[256:].any()
    off = Mechanoregulation(MechanoParams(sensing_um=60.0), 20.0, 1.0)
    assert not off.update(bone).lut[256:].any()
    # a checkpoint written before modeling (256 weights) resumes with modeling thresholds 0
    st = off.get_state()
    st["arrays"]["lut"] = st["arrays"]["lut"][:256].copy()
    again = Mechanoregulation(MechanoParams(sensing_um=60.0), 20.0, 1.0)
    again.set_state(st)
    assert again.lut.shape == (512,) and not again.lut[256:].any()


def test_cli_modeling_flag_sets_the_mechanics_settings():
    from bonesim.cli.simulate_cmd import _mechanics_settings

    assert _mechanics_settings(True, 30.0, None, True).modeling is True
    assert _mechanics_settings(True, 30.0, None, False).modeling is False
    assert _mechanics_settings(True, 30.0, None).modeling is MechanoParams().modeling
    assert _mechanics_settings(False, 30.0, None, True) is None


def test_counters_of_an_older_checkpoint_resume_with_zero_modeling_starts():
    from bonesim.ca.metrics import Metrics
    from bonesim.ca.params import RemodelingParams
    from bonesim.ca.schedule import Schedule

    m = Metrics()
    m.set_state({"sums": [1, 2, 3, 4, 5, 6], "steps": 2})  # six counters: before `modeled`
    assert m.sums.tolist() == [1, 2, 3, 4, 5, 6, 0]
    m.rows = [{k: 1.0 for k in ("day", "bv_tv")}]
    assert m.table()["modeled"].tolist() == [0.0]
    s = Schedule([RemodelingParams()], 20.0)
    st = s.get_state()
    st["pending"] = st["pending"][:6]
    del st["mod_on"]
    s.set_state(st)
    assert len(s.pending) == len(COUNTERS) and s.mod_on == 0
