"""Statistical behaviour of the CA: realised activation frequency, steady state, loss at f < 1."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.ca.engine import simulate
from bonesim.ca.params import RemodelingParams, constant_table
from bonesim.defaults import DAYS_PER_YEAR


def realised_acf(metrics: dict[str, np.ndarray]) -> float:
    """Surface voxels newly recruited per year ÷ mean bone-surface voxel count (after the spin-up)."""
    days = np.diff(metrics["day"])
    mean_surface = float((metrics["surface_vox"][1:] * days).sum() / days.sum())
    return float(metrics["recruited"][1:].sum()) / mean_surface / (days.sum() / DAYS_PER_YEAR)


@pytest.mark.parametrize("h", [10.0, 25.0])
def test_realised_acf_within_10_percent(h):
    bone = phantom.gyroid((40, 40, 40), 20, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    # a fast cycle and a small footprint give >= 1000 activations in a small volume and a short run
    p = RemodelingParams(
        acf_per_year=4.0,
        footprint_radius_um=2.5 * h,
        erosion_depth_um=2 * h,
        resorption_days=10,
        reversal_days=3,
        mar_um_per_day=3.0,
    )
    m = simulate(
        Volume(bone, h), p, years=0.3, spinup_years=0.1, save_every=10, backend="numpy", seed=2
    ).metrics
    assert m["seeds"][1:].sum() >= 1000
    assert realised_acf(m) == pytest.approx(4.0, rel=0.10)


def test_realised_acf_follows_a_ramp():
    """Ac.f rising linearly 0.3 -> 0.6 /yr over 2 years: realised within 5 % of the request in each year.

    Before the deficit catch-up of the schedule (Bernoulli seed draws only, footprint-corrected) the
    first year came out 6-9 % low (seeds 0 and 1); ~1000 activations in all.
    """
    h = 10.0
    bone = phantom.gyroid((40, 40, 40), 20, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    p = RemodelingParams(
        acf_per_year=0.3,
        footprint_radius_um=2.5 * h,
        erosion_depth_um=2 * h,
        resorption_days=10,
        reversal_days=3,
        mar_um_per_day=3.0,
    )
    table = constant_table(p, 732)
    table["acf_per_year"] = 0.3 + 0.3 * np.minimum(table["day"] / 730.5, 1.0)
    m = simulate(
        Volume(bone, h), table, base_params=p, years=2, spinup_years=0.1, save_every=30, backend="numpy"
    ).metrics
    assert m["seeds"][1:].sum() >= 1000
    day = m["day"]
    for first, last in ((0.0, 365.25), (365.25, 730.5)):
        sel = (day > first) & (day <= last + 1e-6)
        days = np.diff(day)[sel[1:]]
        # requested recruits: the table's Ac.f of each day over the frame x that frame's mean surface
        starts = np.concatenate([[0.0], day[:-1]])[sel]
        req = sum(
            table["acf_per_year"][int(a) : int(a + d)].sum() / DAYS_PER_YEAR * s
            for a, d, s in zip(starts, days, m["surface_vox"][sel], strict=True)
        )
        assert m["recruited"][sel].sum() / req == pytest.approx(1.0, abs=0.05), (first, last)


def _mc_bs_bv(bone: np.ndarray, h: float) -> float:
    """BS/BV [1/µm] from the marching-cubes surface at 127.5, without the faces cut by the box.

    The box faces are not bone surface: the CA's outer boundary is inert and never remodels.
    """
    from skimage import measure

    verts, faces, *_ = measure.marching_cubes(bone.astype(np.float32), 127.5, spacing=(h, h, h))
    return measure.mesh_surface_area(verts, faces) / (bone.sum(dtype=np.int64) / 255 * h**3)


@pytest.mark.slow
def test_healthy_steady_state_and_loss_at_f095():
    h, years = 30.0, 5.0
    bone = phantom.gyroid((60, 60, 60), 60, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    bs_bv = _mc_bs_bv(bone, h)
    assert 2 / bs_bv >= 180.0, "plate thickness 2·BV/BS >= 180 µm"
    vol = Volume(bone, h)
    healthy = RemodelingParams()
    m1 = simulate(vol, healthy, years=years, save_every=73, backend="numpy", seed=1).metrics
    m95 = simulate(
        vol, healthy.replace(formation_efficiency=0.95), years=years, save_every=73, backend="numpy", seed=1
    ).metrics
    # f = 1: no trend in BV/TV after the spin-up (least-squares slope over the 5 years)
    t = m1["day"] / DAYS_PER_YEAR
    slope = np.polyfit(t, m1["bv_tv"], 1)[0] / m1["bv_tv"].mean()
    assert abs(slope) < 0.005, f"BV/TV drifts {100 * slope:.2f} %/yr at f = 1"
    end_to_end = (m1["bv_tv"][-1] / m1["bv_tv"][0] - 1) / years
    assert abs(end_to_end) < 0.005, f"BV/TV changed {100 * end_to_end:.2f} %/yr from day 0 to the end"
    assert m1["perforated"].sum() == 0
    # f = 0.95: loss net of the f = 1 run ≈ Ac.f · BS/BV · E · (1 - f) per year, as a fraction of BV
    loss = (m1["bv_tv"][-1] - m95["bv_tv"][-1]) - (m1["bv_tv"][0] - m95["bv_tv"][0])
    expected = healthy.acf_per_year * bs_bv * healthy.erosion_depth_um * 0.05 * years * m95["bv_tv"][0]
    assert loss == pytest.approx(expected, rel=0.30)
