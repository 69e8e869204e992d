"""Modeling-based formation of the physiology (anabolic drugs) in the CA: conversion, rule, engine, resume."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.ca.backends.base import COUNTERS
from bonesim.ca.backends.numpy_backend import step_block
from bonesim.ca.engine import simulate
from bonesim.ca.kernel_abi import MECH_WEIGHT_ONE
from bonesim.ca.params import RemodelingParams, constant_table, params_from_table
from bonesim.ca.schedule import Schedule, combine_modeling, modeling_probability, modeling_threshold
from bonesim.errors import InputError
from tests.ca.ca_helpers import inputs, result_arrays, words_of
from tests.fast_params import fast

MODELED = COUNTERS.index("modeled")
#: no BMU starts: every surface stays quiescent, so only modeling changes the bone
QUIET = fast(acf_per_year=0.0)


# --- the conversion ------------------------------------------------------------------------------
@pytest.mark.parametrize("h", [10.0, 19.5, 40.0])
@pytest.mark.parametrize("dt", [0.5, 1.0, 2.0])
def test_the_probability_carries_the_rate_in_physical_units(h, dt):
    rate = 0.003  # µm/day: teriparatide 20 ug/day in the physiology
    p = modeling_probability(rate, h, dt)
    # per day, one voxel (h µm) per start: the expected thickness per day is the rate
    p_day = 1.0 - (1.0 - p) ** (1.0 / dt)
    assert p_day * h == pytest.approx(rate, rel=1e-12)
    # two steps of dt are one of 2 dt (the chance not to start composes)
    assert (1.0 - p) ** 2 == pytest.approx(1.0 - modeling_probability(rate, h, 2 * dt), rel=1e-12)
    thr = modeling_threshold(rate, h, dt)
    assert thr == int(np.rint(p * 2.0**32)) and 0 < thr < 2**32


def test_threshold_limits():
    assert modeling_probability(0.0, 20.0, 1.0) == 0.0 and modeling_threshold(0.0, 20.0, 1.0) == 0
    assert modeling_threshold(20.0, 20.0, 1.0) == 2**32 - 1  # one layer a day: every draw starts
    assert modeling_threshold(1e3, 20.0, 1.0) == 2**32 - 1  # capped, not wrapped
    with pytest.raises(InputError):
        modeling_probability(0.1, 0.0, 1.0)
    with pytest.raises(InputError):
        RemodelingParams(modeling_um_per_day=-0.1)


def test_combination_with_the_mechanical_table_is_the_union_of_two_chances():
    rng = np.random.default_rng(0)
    tm = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    np.testing.assert_array_equal(combine_modeling(tm, 0), tm)
    td = modeling_threshold(0.1, 20.0, 1.0)
    c = combine_modeling(tm, td)
    pm, pd = tm / 2.0**32, td / 2.0**32
    np.testing.assert_allclose(c / 2.0**32, 1.0 - (1.0 - pm) * (1.0 - pd), atol=2e-9)
    assert (c >= np.maximum(tm, td)).all() and c.dtype == np.uint32
    assert combine_modeling(np.array([2**32 - 1], np.uint32), 2**32 - 1)[0] == 2**32 - 1


def test_schedule_threshold_follows_the_day():
    days = [QUIET.replace(modeling_um_per_day=r) for r in (0.0, 0.1, 0.2)]
    s = Schedule(days, voxel_size_um=20.0, spinup_steps=3)
    assert s.any_modeling
    assert [s.modeling_thr(n) for n in range(7)] == [0, 0, 0, 0] + [
        modeling_threshold(r, 20.0, 1.0) for r in (0.1, 0.2, 0.2)
    ]
    assert not Schedule([QUIET], voxel_size_um=20.0).any_modeling


def test_table_column_is_optional():
    t = constant_table(QUIET, 3)
    assert "modeling_um_per_day" not in t  # tables without a drug are as before
    assert all(p.modeling_um_per_day == 0.0 for p in params_from_table(t, QUIET))
    t2 = constant_table(QUIET.replace(modeling_um_per_day=0.25), 3)
    t2["modeling_um_per_day"][0] = 0.0
    assert [p.modeling_um_per_day for p in params_from_table(t2, QUIET)] == [0.0, 0.25, 0.25]
    t2["modeling_um_per_day"][1] = np.nan
    with pytest.raises(InputError, match="modeling_um_per_day"):
        params_from_table(t2, QUIET)


# --- the rule: mech_on with weight 1 and class 0 changes nothing but modeling --------------------
def test_unit_weights_leave_activation_bit_identical():
    bone = phantom.gyroid((16, 16, 16), 10, phantom.gyroid_sheet_level_for(0.35), sheet=True)
    w0 = w1 = words_of(bone)
    mech = np.zeros(bone.shape, np.uint8)
    lut = np.concatenate([np.full(256, MECH_WEIGHT_ONE, np.uint32), np.zeros(256, np.uint32)])
    for n in range(40):
        kw = dict(act_thr=40_000_000, erode=40, depth=600, form=60, seed_lo=3, step=n)
        w0, c0 = step_block(w0, inputs(**kw))
        w1, c1 = step_block(w1, inputs(**kw, mech_on=1, mod_on=1), mech=mech, lut=lut)
        np.testing.assert_array_equal(w0, w1)
        np.testing.assert_array_equal(c0, c1)
    assert (((w0 >> 8) & 3) != 0).any(), "BMUs started: the comparison saw activation"


# --- the engine ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plate_vol() -> Volume:
    return Volume(phantom.plate((16, 20, 20), 6, axis=0), voxel_size_um=20.0)


def _table(rate, days: int, base: RemodelingParams = QUIET) -> dict[str, np.ndarray]:
    t = constant_table(base, days)
    t["modeling_um_per_day"] = np.broadcast_to(np.asarray(rate, np.float64), (days,)).copy()
    return t


def _run(vol, table, base=QUIET, **kw):
    days = len(table["day"])
    kw = {"years": days / 365.25, "spinup_years": 0, "backend": "numpy", "save_every": 10, **kw}
    return simulate(vol, table, base_params=base, **kw)


def test_a_drug_forms_bone_on_quiescent_surfaces_at_its_rate(plate_vol):
    days, rate, h = 30, 0.5, 20.0
    drug = _run(plate_vol, _table(rate, days))
    none = _run(plate_vol, _table(0.0, days))
    assert none.metrics["modeled"].sum() == 0
    np.testing.assert_array_equal(none.metrics["bv_tv"], none.metrics["bv_tv"][0])
    assert drug.metrics["modeled"].sum() > 0
    assert drug.metrics["bv_tv"][-1] > none.metrics["bv_tv"][-1]
    # 2 faces of 20 x 20 marrow surface voxels at rate / h per day: ~600 starts in 30 days
    # (binomial sd ~24; starts on a column pause while its voxel forms, a few per cent)
    expected = 2 * 20 * 20 * rate / h * days
    assert 0.8 * expected < drug.metrics["modeled"].sum() < 1.1 * expected
    # new bone only on the plate's faces, the plate stays one piece and only grows
    bone = drug.state["bone"].astype(np.int64)
    assert (bone >= plate_vol.data).all()


def test_two_day_steps_form_at_the_same_rate(plate_vol):
    days, rate = 40, 0.5
    one = _run(plate_vol, _table(rate, days)).metrics["modeled"].sum()
    two = _run(plate_vol, _table(rate, days), base=QUIET.replace(dt_days=2.0)).metrics["modeled"].sum()
    # ~800 starts each (sd ~28): a per-step probability not converted with dt would halve the second
    assert two == pytest.approx(one, rel=0.12)


def test_modeling_stops_with_the_drug_and_frees_its_field(plate_vol):
    rate = np.r_[np.full(10, 0.5), np.zeros(20)]
    res = _run(plate_vol, _table(rate, 30), save_every=5)
    m = res.metrics["modeled"]
    assert m[1:3].sum() > 0 and m[3:].sum() == 0  # frames every 5 days: starts in days 0-9 only


def test_resume_is_bit_identical_with_a_changing_drug_rate(plate_vol, tmp_path):
    days = 60
    rate = np.r_[np.zeros(10), np.linspace(0.6, 0.05, 30), np.zeros(20)]  # romosozumab-like
    base = fast(acf_per_year=3.0)  # BMUs too: modeling and remodeling at once
    table = _table(rate, days, base)
    kw = dict(spinup_years=0.03, seed=5, save_every=7)
    one = tmp_path / "one.h5"
    _run(plate_vol, table, base, out=one, **kw)
    two = tmp_path / "two.h5"

    def interrupt(info):
        if info["step"] == 40:  # mid-way through the drug's ramp
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        _run(plate_vol, table, base, out=two, progress=interrupt, **kw)
    _run(plate_vol, table, base, out=two, resume=True, **kw)
    a, b = result_arrays(one), result_arrays(two)
    assert a.keys() == b.keys() and "series/bone" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert a["tables/metrics/modeled"].sum() > 0


def test_with_mechanics_the_drug_adds_to_the_mechanical_table_and_resumes_bit_identically(
    plate_vol, tmp_path
):
    from bonesim.ca.mechano import MechanoParams

    mech = MechanoParams(axis="x", interval_days=10, sensing_um=60.0)  # mechanical modeling off
    days = 40
    table = _table(np.r_[np.zeros(5), np.full(days - 5, 0.5)], days, fast(acf_per_year=3.0))
    kw = dict(spinup_years=0.03, seed=2, save_every=7, mechanics=mech, base=fast(acf_per_year=3.0))
    plain = _run(plate_vol, _table(0.0, days, fast(acf_per_year=3.0)), **kw)
    assert plain.metrics["modeled"].sum() == 0
    one = tmp_path / "one.h5"
    drug = _run(plate_vol, table, out=one, **kw)
    assert drug.metrics["modeled"].sum() > 0
    assert drug.metrics["bv_tv"][-1] > plain.metrics["bv_tv"][-1]
    two = tmp_path / "two.h5"

    def interrupt(info):
        if info["step"] == 36:  # between two FE solves (every 10 steps), the drug on
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        _run(plate_vol, table, out=two, progress=interrupt, **kw)
    _run(plate_vol, table, out=two, resume=True, **kw)
    a, b = result_arrays(one), result_arrays(two)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
