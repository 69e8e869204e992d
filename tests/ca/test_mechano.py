"""Mechanoregulation of the CA: the signal, its classes and weights, the engine loop, resume."""

from __future__ import annotations

import dataclasses
import os
import signal

import h5py
import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.ca.engine import simulate
from bonesim.ca.mechano import (
    MechanoParams,
    Mechanoregulation,
    disuse_factors,
    local_weight,
    surface_mask,
)
from bonesim.ca.params import constant_table
from bonesim.errors import BonesimError
from tests.ca.ca_helpers import result_arrays
from tests.ca.test_engine import FAST


def test_local_weight_is_one_in_the_lazy_zone_and_falls_with_the_signal():
    p = MechanoParams(lazy_zone=0.25, local_gain=3.0)
    r = np.linspace(0, 4, 401)
    w = local_weight(r, p)
    assert np.all(np.diff(w) <= 1e-12), "more signal never means more resorption"
    assert w[0] == pytest.approx(4.0)
    assert np.all(w[(r >= 0.75) & (r <= 1.25)] == 1.0)
    assert local_weight(np.array([2.25]), p)[0] == pytest.approx(0.5)


def test_disuse_raises_activation_and_lowers_formation_only_below_the_lazy_zone():
    p = MechanoParams(lazy_zone=0.25, disuse_activation_gain=1.0, disuse_formation_gain=0.3)
    assert disuse_factors(1.0, p) == (1.0, 1.0)
    assert disuse_factors(3.0, p) == (1.0, 1.0)
    assert disuse_factors(0.0, p) == pytest.approx((2.0, 0.7))
    a, f = disuse_factors(0.375, p)
    assert (a, f) == pytest.approx((1.5, 0.85))


def _columns_and_strut():
    """Two loaded columns along z joined by a horizontal strut (along x)."""
    bone = np.zeros((40, 24, 44), np.uint8)
    bone[:, 10:14, 6:12] = 255
    bone[:, 10:14, 32:38] = 255
    bone[18:22, 10:14, 12:32] = 255
    return bone


def test_an_unloaded_strut_senses_less_than_the_loaded_columns():
    bone = _columns_and_strut()
    m = Mechanoregulation(MechanoParams(axis="z", sensing_um=60.0), 20.0, 1.0)
    up = m.update(bone)
    surf = surface_mask(bone)
    strut = np.zeros_like(surf)
    strut[18:22, 10:14, 17:27] = True
    column = np.zeros_like(surf)
    column[4:14, 10:14, 6:12] = True
    s_strut = up.mech[surf & strut].mean()
    s_col = up.mech[surf & column].mean()
    assert s_strut < 0.5 * s_col
    # its seeds are favoured: the weight of the strut's classes is above that of the columns'
    assert up.lut[int(s_strut)] > up.lut[int(s_col)]
    # the weights average to 1 over the surface (the physiology's Ac.f is kept under habitual load)
    mean_w = up.lut[up.mech[surf]].mean() / 256
    assert mean_w == pytest.approx(1.0, abs=0.02)
    assert up.mean_signal_rel == pytest.approx(1.0)
    # along y no bone joins the faces: refused with a sentence
    with pytest.raises(BonesimError, match="does not connect"):
        Mechanoregulation(MechanoParams(axis="y"), 20.0, 1.0).update(bone[:, :, :20])


def test_force_control_raises_the_signal_as_bone_is_lost_and_disuse_lowers_it():
    bone = _columns_and_strut()
    m = Mechanoregulation(
        MechanoParams(axis="z", disuse_activation_gain=1.0, disuse_formation_gain=0.3), 20.0, 1.0
    )
    m.update(bone)
    thinner = bone.copy()
    thinner[:, 10:14, 6] = 0
    thinner[:, 10:14, 37] = 0
    assert m.update(thinner).mean_signal_rel > 1.1  # same force on less bone: more strain energy
    half = m.update(bone, magnitude=0.5)
    assert half.mean_signal_rel == pytest.approx(0.25, rel=1e-6)  # SED ∝ force²
    assert half.activation_factor > 1.0 and half.formation_factor < 1.0
    assert half.formation_q16 < 65536


@pytest.fixture(scope="module")
def vol() -> Volume:
    bone = phantom.gyroid((20, 22, 24), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    return Volume(bone, voxel_size_um=20.0)


MECH = MechanoParams(interval_days=10, sensing_um=60.0)


def test_mechanics_changes_the_run_and_resume_is_bit_identical(vol, tmp_path):
    kw = dict(years=0.15, spinup_years=0.05, save_every=7, backend="numpy", seed=4)
    one = simulate(vol, FAST, out=tmp_path / "one.h5", mechanics=MECH, **kw)
    plain = simulate(vol, FAST, out=tmp_path / "plain.h5", **kw)
    assert not np.array_equal(one.volume.data, plain.volume.data)
    assert one.timings["mechanics_s"] > 0 and plain.timings["mechanics_s"] == 0
    two = tmp_path / "two.h5"

    def interrupt(info):
        if info["step"] == 48:  # between two solves (every 10 steps), after the spin-up
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=two, progress=interrupt, mechanics=MECH, **kw)
    from bonesim.ca.engine import partial_path

    with h5py.File(partial_path(two) / "checkpoint.h5", "r") as f:
        assert "mechanics" in f and f["mechanics/mech"].shape == vol.shape
    with pytest.raises(BonesimError, match="mechanoregulation"):
        simulate(vol, FAST, out=two, resume=True, **kw)  # without --mechanics
    with pytest.raises(BonesimError, match="mechanoregulation"):
        simulate(vol, FAST, out=two, resume=True, mechanics=MechanoParams(interval_days=20), **kw)
    simulate(vol, FAST, out=two, resume=True, mechanics=MECH, **kw)
    a, b = result_arrays(tmp_path / "one.h5"), result_arrays(two)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_modeling_formation_adds_bone_and_resume_is_bit_identical(vol, tmp_path):
    """Modeling on (a low threshold, so that it acts in a short run): more bone, and resume gives the same bits."""
    mech = MechanoParams(interval_days=10, sensing_um=60.0, modeling=True, modeling_threshold=1.2)
    mech = dataclasses.replace(mech, modeling_rate_per_day=0.2)
    kw = dict(years=0.15, spinup_years=0.05, save_every=7, backend="numpy", seed=4)
    one = simulate(vol, FAST, out=tmp_path / "one.h5", mechanics=mech, **kw)
    plain = simulate(vol, FAST, mechanics=dataclasses.replace(mech, modeling=False), **kw)
    assert one.metrics["modeled"].sum() > 0 and plain.metrics["modeled"].sum() == 0
    bv = lambda r: int(r.volume.data.astype(np.int64).sum())  # noqa: E731
    assert bv(one) > bv(plain)
    two = tmp_path / "two.h5"

    def interrupt(info):
        if info["step"] == 48:  # between two solves (every 10 steps), after the spin-up
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=two, progress=interrupt, mechanics=mech, **kw)
    simulate(vol, FAST, out=two, resume=True, mechanics=mech, **kw)
    a, b = result_arrays(tmp_path / "one.h5"), result_arrays(two)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_disuse_in_the_daily_table_loses_more_bone(vol):
    n = 200
    table = constant_table(FAST, n)
    mech = MechanoParams(
        interval_days=30, sensing_um=60.0, disuse_activation_gain=1.0, disuse_formation_gain=0.3
    )
    kw = dict(years=0.4, spinup_years=0.05, backend="numpy", seed=2, base_params=FAST, mechanics=mech)
    habitual = simulate(vol, {**table, "load_magnitude": np.ones(n)}, **kw)
    disuse = simulate(vol, {**table, "load_magnitude": np.full(n, 0.2)}, **kw)
    bv = lambda r: float(r.volume.data.astype(np.int64).sum())  # noqa: E731
    assert bv(disuse) < bv(habitual)
    with pytest.raises(BonesimError, match="load_magnitude"):
        simulate(vol, {**table, "load_magnitude": np.full(n, -1.0)}, **kw)


def test_cli_simulate_with_mechanics(tmp_path):
    from click.testing import CliRunner

    from bonesim.cli import main
    from bonesim.io.hdf5 import write_volume

    bone = phantom.gyroid((16, 18, 20), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    src = tmp_path / "bone.h5"
    write_volume(src, Volume(bone, voxel_size_um=20.0))
    fast_toml = tmp_path / "fast.toml"
    fast_toml.write_text(
        "acf_per_year = 20.0\nresorption_days = 15\nreversal_days = 5\nmar_um_per_day = 2.0\n"
    )
    args = [
        "--years",
        "0.1",
        "--spinup-years",
        "0",
        "--backend",
        "numpy",
        "--no-progress",
        "--params",
        str(fast_toml),
    ]
    r = CliRunner().invoke(
        main, ["simulate", str(src), str(tmp_path / "m.h5"), *args, "--mechanics", "--mechanics-every", "5"]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["simulate", str(src), str(tmp_path / "p.h5"), *args])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "m.h5", "r") as a, h5py.File(tmp_path / "p.h5", "r") as b:
        assert not np.array_equal(a["state/bone"][...], b["state/bone"][...])
    r = CliRunner().invoke(
        main, ["simulate", str(src), str(tmp_path / "x.h5"), *args, "--mechanics", "--mechanics-every", "0"]
    )
    assert r.exit_code == 1 and "interval_days" in r.output
