"""RemodelingParams validation, TOML files, daily tables, and the host-side schedule."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.ca.params import RemodelingParams, check_table, constant_table, params_from_table
from bonesim.ca.schedule import Schedule, flat_footprint, lateral_costs
from bonesim.errors import BonesimError


def test_defaults_are_healthy_adult_ranges():
    p = RemodelingParams()
    assert 0.2 <= p.acf_per_year <= 0.5
    assert 40 <= p.erosion_depth_um <= 60
    assert 30 <= p.resorption_days <= 40
    assert p.reversal_days == 20 and p.mar_um_per_day == 0.6 and p.formation_efficiency == 1.0


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"acf_per_year": -1}, "`acf_per_year` must be in"),
        ({"erosion_depth_um": 0}, "`erosion_depth_um` must be a finite number > 0, got 0"),
        ({"neighbourhood": 18}, "`neighbourhood` must be 6 or 26, got 18"),
        ({"reversal_days": 80}, "`reversal_days` must be at most 62 steps"),
        ({"mar_um_per_day": float("nan")}, "`mar_um_per_day` must be a finite number"),
    ],
)
def test_validation_messages(kw, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(")):
        RemodelingParams(**kw)


def test_frozen_and_replace():
    p = RemodelingParams()
    with pytest.raises(AttributeError):
        p.acf_per_year = 1.0  # type: ignore[misc]
    assert p.replace(acf_per_year=0.5).acf_per_year == 0.5


def test_from_toml(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[remodeling]\nformation_efficiency = 0.9\nneighbourhood = 6\n")
    p = RemodelingParams.from_toml(f)
    assert p.formation_efficiency == 0.9 and p.neighbourhood == 6
    f.write_text("formation_efficiency = 0.8\n")  # top level works too
    assert RemodelingParams.from_toml(f).formation_efficiency == 0.8
    f.write_text("formation_eff = 0.8\n")
    with pytest.raises(BonesimError, match="unknown parameter"):
        RemodelingParams.from_toml(f)
    f.write_text("formation_efficiency = \n")
    with pytest.raises(BonesimError, match="not valid TOML"):
        RemodelingParams.from_toml(f)
    with pytest.raises(BonesimError, match="not found"):
        RemodelingParams.from_toml(tmp_path / "missing.toml")


def test_daily_table_round_trip_and_errors():
    t = constant_table(RemodelingParams(), 5)
    t["formation_efficiency"][3:] = 0.9
    rows = params_from_table(t)
    assert [r.formation_efficiency for r in rows] == [1.0, 1.0, 1.0, 0.9, 0.9]
    assert rows[0] is rows[1]  # identical rows share one object
    bad = dict(t)
    del bad["mar_um_per_day"]
    with pytest.raises(ValueError, match="lacks column"):
        check_table(bad)
    bad = {**t, "day": np.arange(1, 6)}
    with pytest.raises(ValueError, match="0, 1, 2"):
        check_table(bad)
    bad = {**t, "acf_per_year": np.array([0.4, np.nan, 0.4, 0.4, 0.4])}
    with pytest.raises(ValueError, match="NaN"):
        check_table(bad)
    bad = {**t, "formation_efficiency": np.full(5, 2.0)}
    with pytest.raises(ValueError, match="formation_efficiency"):
        params_from_table(bad)


def test_schedule_integers_and_exact_long_run_rates():
    p = RemodelingParams()
    s = Schedule([p], 20.0)
    ins = [s.inputs(n, seed=0) for n in range(365)]
    depth = ins[0].depth
    assert depth == round(50 / 20 * 255)
    # erosion: E reached in (resorption days - latency) steps on average; the latency is one step per
    # hand-over down the column (ceil(E/h) = 3) and per footprint ring (5 rings of a 100-µm footprint)
    assert s.rings == 5
    per_day = sum(i.erode for i in ins) / 365
    assert per_day == pytest.approx(depth / (35 - 3 - 5), rel=1e-3)
    # formation: f*E/MAR = 83.3 days less one step per refilled voxel (3) of hand-over latency
    fill = 50 / 0.6
    assert sum(i.form for i in ins) / 365 == pytest.approx(0.6 / 20 * 255 * fill / (fill - 3), rel=1e-3)
    assert [i.step for i in ins] == list(range(365))
    assert all(0 <= v < 2**32 for i in ins for v in i.as_tuple())


def test_lateral_costs_and_flat_footprint():
    lat0, c1, c2, c3 = lateral_costs(RemodelingParams(footprint_radius_um=100), 20.0)
    assert (c1, c2, c3) == (16, 23, 28)
    n, rings = flat_footprint(lat0, (c1, c2, c3), 26)
    # the budget is calibrated so the flat footprint covers π L² (the disc) within one ring of voxels
    assert abs(n - np.pi * 5**2) < 0.05 * np.pi * 5**2
    assert rings == 5
    assert flat_footprint(lat0, (c1, c2, c3), 6)[0] < n
    for h in (10.0, 40.0):  # at other voxel sizes too (40 µm: a disc of 2.5 voxels, 21 vs 19.6)
        lat, *costs = lateral_costs(RemodelingParams(footprint_radius_um=100), h)
        area = np.pi * (100 / h) ** 2
        assert abs(flat_footprint(lat, tuple(costs), 26)[0] - area) < 0.08 * area


def test_schedule_checkpoint_state_round_trip():
    s = Schedule([RemodelingParams()], 20.0)
    for n in range(20):
        s.inputs(n, seed=1)
    s.add_counters(np.array([[1, 2, 300, 4, 5, 0, 0]], np.uint64))
    s.calibrate()
    t = Schedule([RemodelingParams()], 20.0)
    t.set_state(s.get_state())
    assert [s.inputs(n, seed=1) for n in range(20, 40)] == [t.inputs(n, seed=1) for n in range(20, 40)]
