"""Per-voxel tissue mineral density, vBMD and TMD (bonesim.morphometry.mineral)."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.defaults import DAYS_PER_YEAR
from bonesim.morphometry.mineral import day0_turnover_per_day, mineral_density, mineral_summary
from bonesim.physiology.mineralisation import (
    MINERALISATION,
    MineralisationLaw,
    mineral_content,
    old_bone_m,
)


def test_block_formed_on_a_known_day_follows_m_of_age_and_old_bone_the_steady_value():
    law = MineralisationLaw(lag_days=7.0, primary_days=4.0, secondary_years=2.0, tmd_max_mg_cm3=1150.0)
    bone = np.zeros((10, 8, 8), np.uint8)
    bone[:3] = 255  # old bone, never formed during the run
    bone[5:8] = 255  # a block formed on day 40
    formed = np.full(bone.shape, -1, np.int32)
    formed[5:8] = 40
    k0 = 0.3 / DAYS_PER_YEAR
    for day in (40.0, 45.0, 60.0, 400.0, 2000.0):
        old_m = float(old_bone_m(k0, day, law))
        rho = mineral_density(bone, formed, day, old_m, law=law)
        age = day - 40.0
        np.testing.assert_allclose(rho[5:8], 1150.0 * law.m(age), rtol=0, atol=1e-9)
        np.testing.assert_allclose(rho[:3], 1150.0 * old_m, rtol=0, atol=1e-9)
        assert np.all(rho[3:5] == 0) and np.all(rho[8:] == 0)
        s = mineral_summary(bone, formed, day, old_m, law=law)
        assert s["vbmd_mgha_cm3"] == pytest.approx(1150.0 * (3 * old_m + 3 * law.m(age)) / 10, rel=1e-12)
        assert s["tmd_mgha_cm3"] == pytest.approx(1150.0 * (old_m + law.m(age)) / 2, rel=1e-12)
    # new bone is unmineralised during the lag, and the primary phase is fast
    assert mineral_summary(bone, formed, 45.0, 0.9, law=law)["tmd_mgha_cm3"] == pytest.approx(1150 * 0.9 / 2)


def test_old_bone_starts_at_the_steady_mean_and_keeps_mineralising():
    for k_year in (0.1, 0.25, 0.5):
        m0 = float(old_bone_m(k_year / DAYS_PER_YEAR, 0.0))
        assert m0 == pytest.approx(MINERALISATION.steady_mean(k_year), rel=2e-3)
    m = old_bone_m(0.25 / DAYS_PER_YEAR, np.array([0.0, 365.0, 3650.0]))
    assert m[0] < m[1] < m[2] < 1.0


def test_partly_refilled_voxel_splits_into_old_and_new_bone():
    law = MINERALISATION
    bone = np.array([255, 255, 100], np.uint8)
    formed = np.array([30, 30, -1], np.int32)
    old = np.array([0, 100, 200], np.uint8)  # emptied and refilled; 100 of 255 kept; never formed
    rho = mineral_density(bone, formed, 100.0, 0.8, bone_old=old, law=law)
    m = float(law.m(70.0))
    expect = law.tmd_max_mg_cm3 * np.array([m, (100 * 0.8 + 155 * m) / 255, 100 * 0.8 / 255])
    np.testing.assert_allclose(rho, expect, rtol=1e-12)
    # the default (no bone_old): all bone of a voxel formed during the run is new
    np.testing.assert_allclose(mineral_density(bone, formed, 100.0, 0.8, law=law)[1], law.tmd_max_mg_cm3 * m)


def _voxel_history(k_of_day: np.ndarray, n_vox: int, seed: int = 1) -> np.ndarray:
    """formed_day of voxels each remodeled (emptied and refilled the same day) with daily probability k."""
    rng = np.random.default_rng(seed)
    formed = np.full((len(k_of_day), n_vox), -1, np.int32)
    cur = np.full(n_vox, -1, np.int32)
    for d in range(1, len(k_of_day)):
        cur = np.where(rng.random(n_vox) < k_of_day[d], d, cur).astype(np.int32)
        formed[d] = cur
    return formed


def test_voxel_mean_matches_the_population_mineral_content():
    """The CA bookkeeping (one formation day per voxel) and the packet bookkeeping agree."""
    years, n_vox = 4, 40_000
    n = round(years * DAYS_PER_YEAR) + 1
    k0 = 0.3 / DAYS_PER_YEAR
    k = np.full(n, k0)
    k[round(DAYS_PER_YEAR) :] = k0 * 0.4  # an antiresorptive-like fall of turnover after one year
    formed = _voxel_history(k, n_vox)
    bone = np.full(n_vox, 255, np.uint8)
    _, tmd_rel = mineral_content(np.ones(n), k, k)
    tmd0 = MINERALISATION.tmd_max_mg_cm3 * float(old_bone_m(k0, 0.0))
    days = [0, 30, 200, 365, 400, 700, n - 1]
    voxel = np.array(
        [mineral_summary(bone, formed[d], d, float(old_bone_m(k0, d)))["tmd_mgha_cm3"] for d in days]
    )
    population = tmd0 * tmd_rel[days]
    # sampling error of 40 000 voxels: the sd of m over the ages is < 0.3, so < 0.3/200 = 0.15 %
    np.testing.assert_allclose(voxel, population, rtol=3e-3)
    # and the fall of turnover raises TMD (BV unchanged: vBMD rises by mineralisation alone)
    assert voxel[-1] > voxel[3] * 1.01


def test_voxel_mean_differs_from_a_wrong_old_bone_value():
    """The consistency test above can fail: old bone at the fully mineralised value is off."""
    n, n_vox = 400, 20_000
    k = np.full(n, 0.3 / DAYS_PER_YEAR)
    formed = _voxel_history(k, n_vox)
    bone = np.full(n_vox, 255, np.uint8)
    _, tmd_rel = mineral_content(np.ones(n), k, k)
    tmd0 = MINERALISATION.tmd_max_mg_cm3 * float(old_bone_m(k[0], 0.0))
    wrong = mineral_summary(bone, formed[n - 1], n - 1, 1.0)["tmd_mgha_cm3"]
    assert abs(wrong / (tmd0 * tmd_rel[n - 1]) - 1) > 3e-2


def test_day0_turnover_is_acf_times_erosion_depth_over_bone_surface():
    k = day0_turnover_per_day(0.3, 50.0, 13.33e-3)
    assert k * DAYS_PER_YEAR == pytest.approx(0.3 * 50.0 * 13.33e-3)
    assert day0_turnover_per_day(0.6, 50.0, 13.33e-3) == pytest.approx(2 * k)


# ------------------------------------------------------------ a CA run ----
@pytest.fixture
def only_bv_tv(monkeypatch):
    """The full morphometry costs seconds; these tests are about the mineral columns."""
    from bonesim.morphometry import indices

    real = indices.morphometry
    monkeypatch.setattr(indices, "morphometry", lambda vol, **kw: real(vol, indices=["bv_tv"], **kw))


@pytest.fixture(scope="module")
def ca_run(tmp_path_factory):
    from bonesim import simulate
    from bonesim.phantom import gyroid
    from bonesim.volume import Volume

    path = tmp_path_factory.mktemp("mineral") / "run.h5"
    simulate(
        Volume(gyroid((32, 32, 32), 20.0), 20.0),
        years=0.5,
        spinup_years=1.0,
        save_every=30,
        backend="numpy",
        out=path,
    )
    return path


def test_result_stores_formed_day_per_frame(ca_run):
    import h5py

    from bonesim.io.result import Result

    info = Result.open(ca_run)
    days = info.days
    fd = np.stack([info.formed_day(i) for i in range(len(days))])
    with h5py.File(ca_run, "r") as f:
        np.testing.assert_array_equal(fd[-1], f["maps/formed_day"][...])
        new = f["series/formed_day_new"]
        assert new.dtype == np.int32 and new.shape == fd.shape
        # only what formed since the frame before is stored: a small part of the bone series
        assert new.id.get_storage_size() < 0.6 * f["series/bone"].id.get_storage_size()
    # reading on from the frame before gives the same map
    np.testing.assert_array_equal(info.formed_day(len(days) - 1, (2, fd[2])), fd[-1])
    for d, m in zip(days, fd, strict=True):
        assert m.max() <= max(d, -1) and (d > 0 or m.max() == -1)
    assert (fd[-1] >= 0).sum() > (fd[1] >= 0).sum() > 0  # bone forms as the run goes on


def test_analyze_reports_vbmd_and_tmd_per_frame(ca_run, tmp_path, only_bv_tv):
    import shutil

    import h5py

    from bonesim.io.result import Result
    from bonesim.morphometry import analyze

    p = tmp_path / "run.h5"
    shutil.copy(ca_run, p)
    table = analyze(p, csv=tmp_path / "a.csv")
    info = Result.open(p)
    # the day-0 turnover: what the CA resorbed per day in the second half of its spin-up, / BV
    b0 = info.frame(0)
    k0 = info.state_attrs["spinup_removed_per_day"] / (b0.sum(dtype=np.int64) / 255 / b0.size)
    assert 0.05 < k0 * DAYS_PER_YEAR < 1.0
    t = info.tables["metrics"]  # the same order as what the CA resorbs after day 0
    after = t["bone_removed"][1:].sum() / (t["bv_tv"][0] * t["day"][-1])
    assert 0.5 < k0 / after < 2.0
    # recompute frame by frame: old bone = the lowest fraction of the frames since day 0
    low = None
    for i, day in enumerate(info.days):
        b = info.frame(i)
        low = b.copy() if low is None else np.minimum(low, b)
        s = mineral_summary(b, info.formed_day(i), day, float(old_bone_m(k0, day)), bone_old=low)
        assert table["vbmd_mgha_cm3"][i] == s["vbmd_mgha_cm3"]
        assert table["tmd_mgha_cm3"][i] == s["tmd_mgha_cm3"]
        assert table["vbmd_mgha_cm3"][i] == pytest.approx(table["tmd_mgha_cm3"][i] * table["bv_tv"][i])
    tmd0 = MINERALISATION.tmd_max_mg_cm3 * float(old_bone_m(k0, 0.0))
    assert table["tmd_mgha_cm3"][0] == pytest.approx(tmd0, rel=1e-12)  # day 0: all old bone
    # the bone formed in half a year is less mineralised than the old bone of the same day
    old_only = MINERALISATION.tmd_max_mg_cm3 * old_bone_m(k0, info.days[1:])
    assert np.all(table["tmd_mgha_cm3"][1:] < old_only)
    with h5py.File(p, "r") as f:
        np.testing.assert_array_equal(f["tables/metrics/vbmd_mgha_cm3"][...], table["vbmd_mgha_cm3"])
    assert "vbmd_mgha_cm3,tmd_mgha_cm3" in (tmp_path / "a.csv").read_text(encoding="utf-8")
    last = analyze(p, frames="last", write=False)
    assert last["vbmd_mgha_cm3"][0] == table["vbmd_mgha_cm3"][-1]  # reads the skipped frames too

    # a calibrated input: day-0 TMD is the measured one, relative changes are the same
    from bonesim.io.hdf5 import read_json_attr, write_json_attr

    cal = tmp_path / "cal.h5"
    shutil.copy(p, cal)
    with h5py.File(cal, "r+") as f:
        meta = read_json_attr(f["volume/bone"], "metadata", {})
        meta["calibration"] = {"slope": 4.0, "intercept": -50.0, "tmd_mg_ha_cm3": 870.0}
        write_json_attr(f["volume/bone"], "metadata", meta)
    c = analyze(cal, write=False)
    assert c["tmd_mgha_cm3"][0] == pytest.approx(870.0, rel=1e-12)
    np.testing.assert_allclose(
        c["vbmd_mgha_cm3"] / c["vbmd_mgha_cm3"][0],
        table["vbmd_mgha_cm3"] / table["vbmd_mgha_cm3"][0],
        rtol=1e-12,
    )

    # a result without the spin-up's turnover: the nominal Ac.f x E x BS/BV of the day-0 parameters
    from bonesim.morphometry.basic import bone_surface_um2

    with h5py.File(p, "r+") as f:
        del f["state"].attrs["spinup_removed_per_day"]
    ph = info.tables["physiology"]
    bs_bv = bone_surface_um2(b0, 20.0) / (b0.sum(dtype=np.int64) / 255 * 20.0**3)
    k_nom = day0_turnover_per_day(ph["acf_per_year"][0], ph["erosion_depth_um"][0], bs_bv)
    nominal = analyze(p, write=False)
    tmd0 = MINERALISATION.tmd_max_mg_cm3 * float(old_bone_m(k_nom, 0.0))
    assert nominal["tmd_mgha_cm3"][0] == pytest.approx(tmd0, rel=1e-12)
    assert k_nom != pytest.approx(k0, rel=1e-3)

    # a result without per-frame maps: day 0 and the last frame only (from /maps)
    with h5py.File(p, "r+") as f:
        del f["series/formed_day_new"]
    table = nominal
    old = analyze(p, write=False)
    assert old["vbmd_mgha_cm3"][0] == table["vbmd_mgha_cm3"][0]
    assert old["vbmd_mgha_cm3"][-1] == table["vbmd_mgha_cm3"][-1]
    assert np.isnan(old["vbmd_mgha_cm3"][1:-1]).all()


def test_plain_volume_has_no_vbmd(tmp_path, only_bv_tv):
    from bonesim.io.hdf5 import write_volume
    from bonesim.morphometry import analyze
    from bonesim.phantom import gyroid
    from bonesim.volume import Volume

    p = tmp_path / "bone.h5"
    write_volume(p, Volume(gyroid((16, 16, 16), 8.0), 20.0))
    t = analyze(p, write=False)
    assert np.isnan(t["vbmd_mgha_cm3"]).all() and np.isnan(t["tmd_mgha_cm3"]).all()


def test_plot_draws_vbmd_relative_to_day_0(ca_run, tmp_path, only_bv_tv):
    pytest.importorskip("matplotlib")
    import shutil

    from bonesim.io.result import Result
    from bonesim.morphometry import analyze
    from bonesim.viz.plot import RELATIVE, _panels, _reference_value, plot_metrics

    day = np.array([-30.0, 0.0, 30.0, 60.0])
    assert _reference_value(day, np.array([5.0, np.nan, 4.0, 8.0])) == 4.0
    assert np.isnan(_reference_value(day[:1], np.array([5.0])))
    p = tmp_path / "run.h5"
    shutil.copy(ca_run, p)
    analyze(p)
    info = Result.open(p)
    assert "vbmd_mgha_cm3" in RELATIVE
    assert ("metrics", "vbmd_mgha_cm3", "vBMD / day 0") in _panels([info], "metrics", None)
    fig = plot_metrics([p], tmp_path / "p.png", which="metrics")
    assert (tmp_path / "p.png").stat().st_size > 1000
    ax = next(a for a in fig.axes if a.get_ylabel() == "vBMD / day 0")
    y = np.concatenate([ln.get_ydata() for ln in ax.get_lines()])
    v = info.tables["metrics"]["vbmd_mgha_cm3"]
    np.testing.assert_allclose(np.sort(y), np.sort(v / v[0]))
