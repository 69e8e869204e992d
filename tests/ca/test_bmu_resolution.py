"""One BMU keeps its requested resorption period, cycle and cavity volume across voxel sizes and time steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bonesim.ca.params import RemodelingParams

ROOT = Path(__file__).resolve().parents[2]


def _probe():
    spec = importlib.util.spec_from_file_location("bmu_resolution", ROOT / "scripts" / "bmu_resolution.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.one_bmu


CASES = [
    (10.0, 0.5),
    (10.0, 1.0),
    (20.0, 0.5),
    (20.0, 1.0),
    (20.0, 2.0),
    (40.0, 0.5),
    (40.0, 1.0),
    (40.0, 2.0),
]


@pytest.mark.parametrize(("h", "dt"), CASES)
def test_one_bmu_follows_the_request(h, dt):
    p = RemodelingParams()
    r = _probe()(h, dt, p)
    assert r["resorption_end_day"] == pytest.approx(p.resorption_days, rel=0.05)
    assert r["cycle_end_day"] == pytest.approx(r["requested"]["cycle_days"], rel=0.05)
    # the disc is π L² E; at 40 µm a 100-µm footprint is 21 voxels against 19.6 (the nearest digital disc)
    assert r["cavity_ratio"] == pytest.approx(1.0, abs=0.05 if h < 40 else 0.08)


def test_the_limit_of_coarse_steps_on_fine_voxels_is_visible():
    """10 µm at 2-day steps cannot grow a 10-ring footprint and a 5-voxel column in 35 days: it says so by running late."""
    r = _probe()(10.0, 2.0, RemodelingParams())
    assert r["resorption_end_day"] > 1.05 * 35
