"""The ``[loading]`` scenario table: schema, composition, the daily ``load_magnitude`` column,
the systemic disuse factor and the bed-rest / spaceflight presets."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.ca.params import TABLE_COLUMNS, check_table, params_from_table
from bonesim.errors import BonesimError
from bonesim.physiology import Scenario, load_scenario, run_physiology, scenario_table
from bonesim.physiology.cells import CellInputs, quasi_steady_cells
from bonesim.physiology.factors import FACTOR_PARAMS, FactorParams
from bonesim.physiology.scenario import SCHEMA


def test_loading_defaults_are_habitual():
    s = load_scenario("healthy-adult")
    assert s["loading"] == {"axis": "z", "magnitude": 1.0, "start_years": 0.0, "stop_years": 1000.0}
    assert SCHEMA["loading"]["magnitude"].lo == 0.0 and SCHEMA["loading"]["magnitude"].hi == 3.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"axis": "w"}, r"`loading.axis` must be one of 'z', 'y', 'x', got 'w'"),
        ({"axis": 2}, r"`loading.axis` must be one of"),
        ({"magnitude": 3.5}, r"`loading.magnitude` must be in \[0, 3\], got 3.5"),
        ({"magnitude": -0.1}, r"`loading.magnitude` must be in \[0, 3\]"),
        ({"magnitude": "low"}, r"`loading.magnitude` must be a number in \[0, 3\]"),
        (
            {"strength": 0.5},
            r"unknown scenario key `loading.strength`; allowed keys in \[loading\]: axis, magnitude",
        ),
        (
            {"magnitude": 0.3, "start_years": 1.0, "stop_years": 0.5},
            r"`\[loading\]`: start_years \(1\) must be before stop_years \(0.5\)",
        ),
    ],
)
def test_loading_keys_refused_with_a_clear_message(body, message):
    with pytest.raises(BonesimError, match=message):
        Scenario.from_dict({"name": "x", "loading": body})


def test_loading_composes_like_the_other_tables():
    bed = load_scenario("disuse-bed-rest")
    assert bed["loading"]["magnitude"] == 0.3 and bed["loading"]["stop_years"] == pytest.approx(
        90 / 365.25, 1e-3
    )
    # a scenario without [loading] keeps the other's loading; later wins on what it sets
    s = load_scenario("postmenopausal+disuse-bed-rest")
    assert s["menopause"]["enabled"] and s["loading"]["magnitude"] == 0.3
    s = load_scenario("disuse-bed-rest+postmenopausal")
    assert s["loading"]["magnitude"] == 0.3
    # a key given explicitly wins even at its default value (``given``)
    back = Scenario.from_dict({"name": "habitual", "loading": {"magnitude": 1.0}})
    assert (bed + back)["loading"]["magnitude"] == 1.0
    assert (bed + load_scenario("healthy-adult"))["loading"]["magnitude"] == 0.3
    # only the axis: a valid section (the CA reads it at any magnitude)
    y = Scenario.from_dict({"name": "y", "loading": {"axis": "y"}})
    assert (bed + y)["loading"]["axis"] == "y" and (bed + y)["loading"]["magnitude"] == 0.3
    # round trip through the resolved TOML
    assert Scenario.from_toml(bed.to_toml()).values == bed.values
    assert "[loading]" in bed.to_toml()


def test_load_magnitude_column_follows_the_window():
    t = run_physiology("disuse-bed-rest", 0.5)
    m = t["load_magnitude"]
    assert m.dtype == np.float64 and m.shape == t["day"].shape
    # same window convention as every factor: (start, stop], day 0 is the state before
    assert m[0] == 1.0 and np.all(m[1:91] == 0.3) and np.all(m[91:] == 1.0)
    h = run_physiology("healthy-adult", 0.2)
    assert np.all(h["load_magnitude"] == 1.0)
    ex = Scenario.from_dict(
        {"name": "ex", "loading": {"magnitude": 2.0, "start_years": 0.1, "stop_years": 0.2}}
    )
    m = run_physiology(ex, 0.3)["load_magnitude"]
    i0, i1 = round(0.1 * 365.25), round(0.2 * 365.25)
    assert m[i0 - 1] == 1.0 and m[i0 + 1] == 2.0 and m[i1 + 1] == 1.0


def test_axis_is_scenario_level_and_ca_tolerates_the_column():
    st = scenario_table("spaceflight", 0.05)
    assert st.load_axis == "z" and st.scenario["loading"]["axis"] == "z"
    y = scenario_table(load_scenario("healthy-adult").replace(loading={"axis": "x"}), 0.02)
    assert y.load_axis == "x" and np.all(y.table["load_magnitude"] == 1.0)
    # the CA reads only its own columns; the extra column is kept, numeric, and ignored by the params
    assert "load_magnitude" not in TABLE_COLUMNS
    checked = check_table(st.table)
    assert "load_magnitude" in checked
    rows = params_from_table(st.table)
    assert len(rows) == len(st.table["day"])


def test_exercise_has_no_systemic_term():
    """Loading above habitual: no systemic factor (the CA's mechanics gives the local effect)."""
    base = run_physiology("healthy-adult", 0.3)
    ex = run_physiology(load_scenario("healthy-adult").replace(loading={"magnitude": 2.5}), 0.3)
    np.testing.assert_allclose(ex["acf_per_year"], base["acf_per_year"], rtol=1e-9)
    np.testing.assert_allclose(ex["bv_rel"], base["bv_rel"], rtol=1e-9)


def test_disuse_coefficients_reproduce_zerwekh_bed_rest_cells():
    """At the bed-rest deficit 0.7, healthy PTH: quasi-steady osteoclasts x2, osteoblasts x1 [fitted]."""
    p = FACTOR_PARAMS
    d = 0.7
    _, ob0, oc0 = quasi_steady_cells(CellInputs())
    _, ob, oc = quasi_steady_cells(CellInputs(p_rankl=p.disuse_rankl * d, a_oba=1.0 + p.disuse_aoba * d))
    assert float(oc / oc0) == pytest.approx(2.0, abs=1e-3)
    assert float(ob / ob0) == pytest.approx(1.0, abs=1e-3)


def test_bed_rest_turnover_calcium_and_loss():
    t = run_physiology("disuse-bed-rest", 1.0)
    a0, pth0, u0 = t["acf_per_year"][0], t["pth_pM"][0], t["urinary_ca_mmol_d"][0]
    during = slice(14, 85)
    # resorption up, formation markers ~ unchanged, uncoupled: BMU balance negative
    assert np.all(t["acf_per_year"][during] > 1.6 * a0)
    assert np.all(np.abs(t["oba_qs"][during] - 1.0) < 0.15)
    assert np.all(t["formation_efficiency"][during] < 0.6)
    # calcium from bone: PTH falls, urinary calcium rises (Zerwekh 1998; the rise is too large, see docs)
    assert np.all(t["pth_pM"][during] < 0.8 * pth0) and np.all(t["urinary_ca_mmol_d"][during] > 1.3 * u0)
    # ~1 %/month while in bed (systemic part), habitual turnover after reambulation
    loss_90 = 100 * (1 - t["bmd_rel"][90])
    assert 2.0 < loss_90 < 4.5, loss_90
    assert t["acf_per_year"][200] == pytest.approx(a0, rel=0.02)
    # switched off, the factor leaves the disuse to the CA (no systemic change at all)
    off = run_physiology("disuse-bed-rest", 0.5, params=FactorParams(disuse_rankl=0.0, disuse_aoba=0.0))
    np.testing.assert_allclose(off["bv_rel"], 1.0, atol=1e-9)


def test_spaceflight_loses_more_than_bed_rest_per_month():
    bed = run_physiology("disuse-bed-rest", 0.3)
    fly = run_physiology("spaceflight", 0.6)
    rate_bed = (1 - bed["bmd_rel"][90]) / 90
    rate_fly = (1 - fly["bmd_rel"][90]) / 90
    assert rate_fly > rate_bed > 0
    assert fly["load_magnitude"][100] == 0.1 and fly["load_magnitude"][190] == 1.0
    assert 0.05 < 1 - fly["bmd_rel"][183] < 0.11  # measured 7.8 % in 6 months


def test_ca_engine_runs_a_loading_scenario_and_stores_the_column(tmp_path):
    """An existing consumer: the CA engine takes the table with the extra column and stores it."""
    import h5py

    from bonesim.ca.engine import simulate
    from bonesim.io.hdf5 import read_table
    from bonesim.validation.ca_level import default_phantom

    st = scenario_table("disuse-bed-rest", 0.1)
    out = tmp_path / "bed.h5"
    simulate(default_phantom(24), years=0.1, backend="numpy", scenario=st, spinup_years=0.02, out=out)
    with h5py.File(out, "r") as f:
        assert "[loading]" in f["scenario"].attrs["toml"] and 'axis = "z"' in f["scenario"].attrs["toml"]
        phys = read_table(f["tables/physiology"])
    np.testing.assert_array_equal(phys["load_magnitude"], st.table["load_magnitude"])


@pytest.mark.parametrize(
    "base",
    [
        "healthy-adult",
        "postmenopausal-osteoporosis",
        "glucocorticoid",
        "vitamin-d-deficiency",
        "primary-hyperparathyroidism",
    ],
)
def test_total_unloading_on_the_presets_stays_in_range(base):
    """Magnitude 0 (more than spaceflight) from day 0 to 1 yr on each baseline: finite, Ca in range."""
    scn = load_scenario(base).replace(loading={"magnitude": 0.0, "stop_years": 1.0})
    t = run_physiology(scn, 1.5)
    for k, v in t.items():
        assert np.all(np.isfinite(v)), k
    assert np.all((t["calcium_mM"] > 1.5) & (t["calcium_mM"] < 3.5)), t["calcium_mM"].max()
    # glucocorticoid + total unloading for a year is the deepest: BMD 0.69 at 1.5 yr (measured)
    assert np.all(t["bmd_rel"] > 0.6) and np.all(t["acf_per_year"] > 0)
