"""One set of healthy defaults: the CA without a scenario and the healthy-adult scenario agree."""

from __future__ import annotations

import subprocess

import pytest

from bonesim.ca.params import TABLE_COLUMNS, RemodelingParams
from bonesim.defaults import DAYS_PER_YEAR, HEALTHY, HEALTHY_RANGES, MAX_REVERSAL_STEPS
from bonesim.physiology import scenario_table


def test_simulate_without_scenario_equals_healthy_adult():
    table = scenario_table("healthy-adult", years=1).table
    plain = RemodelingParams()
    for col in TABLE_COLUMNS:
        assert table[col][0] == pytest.approx(getattr(plain, col)), col
        assert table[col][-1] == pytest.approx(getattr(plain, col)), col


def test_healthy_values_inside_their_ranges_and_the_ca_limit():
    for key, (lo, hi) in HEALTHY_RANGES.items():
        assert lo <= HEALTHY[key] <= hi, key
    assert HEALTHY_RANGES["reversal_days"][1] <= MAX_REVERSAL_STEPS  # at 1-day steps every healthy state runs


def test_one_year_length_in_the_code():
    """No module spells the year length itself (docstrings may)."""
    r = subprocess.run(
        ["grep", "-rnE", r"365\.(25|0)\b", "bonesim", "--include=*.py"], capture_output=True, encoding="utf-8"
    )
    code = [
        ln
        for ln in r.stdout.splitlines()
        if "DAYS_PER_YEAR = 365.25" not in ln
        and '"""' not in ln
        and "·" not in ln
        and ">>>" not in ln
        and "(0.3, 365.25)" not in ln
        and "``" not in ln
    ]
    assert not code, code
    assert DAYS_PER_YEAR == 365.25
