"""Tests of bonesim.physiology alone (fast): steady state, factor directions, scenarios, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.errors import BonesimError
from bonesim.physiology import (
    CA_COLUMNS,
    Scenario,
    list_scenarios,
    load_scenario,
    run_physiology,
    scenario_table,
)
from bonesim.physiology.calcium import CalciumInputs, calcium_rhs, calcium_steady_state
from bonesim.physiology.calibration import evaluate, load_targets, resolve_spec
from bonesim.physiology.cells import CellInputs, cell_rhs, quasi_steady_cells


def at(table, years):
    return round(years * 365.25)


def rate(table, t0, t1, col="bv_rel"):
    b = table[col]
    return 100 * (b[at(table, t1)] / b[at(table, t0)] - 1) / (t1 - t0)


@pytest.fixture(scope="module")
def healthy():
    return run_physiology("healthy-adult", 10)


@pytest.fixture(scope="module")
def runs():
    names = [
        "vitamin-d-deficiency",
        "low-calcium-diet",
        "glucocorticoid",
        "hyperthyroid",
        "primary-hyperparathyroidism",
        "alcohol",
        "smoking",
        "anorexia",
        "postmenopausal",
    ]
    return {n: run_physiology(n, 8 if n in ("anorexia", "postmenopausal") else 3) for n in names}


# --- modules -------------------------------------------------------------------------------------
def test_cell_steady_state_matches_pivonka_package():
    obp, oba, oca = quasi_steady_cells(CellInputs())
    # steady state of bone-models 0.1.0 Pivonka_Model (its initial guess), PHYSIOLOGY.md
    np.testing.assert_allclose([obp, oba, oca], [6.1964e-4, 5.5839e-4, 8.0696e-4], rtol=1e-4)
    d = cell_rhs(obp, oba, oca, CellInputs())
    assert max(abs(float(x)) for x in d) < 1e-18


def test_quasi_steady_cells_vectorised_and_steady():
    inp = CellInputs(pth_rel=np.array([0.8, 1.0, 1.5]), p_rankl=np.array([0.0, 100.0, 300.0]))
    obp, oba, oca = quasi_steady_cells(inp)
    d = cell_rhs(obp, oba, oca, inp)
    for x, ref in zip(d, (obp, oba, oca), strict=True):
        assert np.all(np.abs(x / ref) < 1e-9)
    assert np.all(np.diff(oca) > 0)  # more PTH and RANKL -> more osteoclasts


def test_calcium_nominal_steady_state():
    y = calcium_steady_state()
    assert (
        y[0] / 14 == pytest.approx(2.35)
        and y[1] / 14 == pytest.approx(3.85)
        and y[4] / 14 == pytest.approx(90)
    )
    assert np.max(np.abs(calcium_rhs(y, CalciumInputs()) / y)) < 1e-14


# --- steady state -----------------------------------------------------------------------------------
def test_healthy_steady_state_exact(healthy):
    assert len(healthy["day"]) == at(healthy, 10) + 1
    np.testing.assert_array_equal(healthy["day"], np.arange(len(healthy["day"])))
    for k, v in healthy.items():
        if k in ("day", "age_years") or v[0] == 0:
            continue
        drift = np.max(np.abs(v / v[0] - 1))
        assert drift < 1e-6, (k, drift)
    assert healthy["acf_per_year"][0] == pytest.approx(0.30) and healthy["formation_efficiency"][
        0
    ] == pytest.approx(1)
    assert 0.2 <= healthy["acf_per_year"][0] <= 0.5


def test_table_has_ca_columns_and_valid_ranges(runs):
    for name, t in runs.items():
        for c in CA_COLUMNS:
            assert c in t and np.all(np.isfinite(t[c])), (name, c)
        assert np.all((t["formation_efficiency"] >= 0) & (t["formation_efficiency"] <= 1.5))
        assert np.all(t["acf_per_year"] > 0) and np.all(t["mar_um_per_day"] > 0)
        assert len({len(v) for v in t.values()}) == 1


# --- factor directions ------------------------------------------------------------------------------
def test_vitamin_d_deficiency_chain(runs):
    t = runs["vitamin-d-deficiency"]
    i = at(t, 0.1)
    assert t["calcitriol_pM"][i] < t["calcitriol_pM"][0]  # less substrate -> less calcitriol
    assert t["ca_absorption_mmol_d"][i] < t["ca_absorption_mmol_d"][0]  # -> less absorption
    assert t["pth_pM"][-1] > 1.3 * t["pth_pM"][0]  # -> secondary hyperparathyroidism
    assert t["oca"][-1] > 1.05 and t["acf_per_year"][-1] > t["acf_per_year"][0]  # -> osteoclasts, turnover
    assert t["bv_rel"][-1] < 1


def test_low_calcium_diet_raises_pth(runs):
    t = runs["low-calcium-diet"]
    assert t["ca_absorption_mmol_d"][-1] < t["ca_absorption_mmol_d"][0]
    assert t["pth_pM"][-1] > t["pth_pM"][0] and t["bv_rel"][-1] < 1


def test_estrogen_loss_raises_acf_and_lowers_f(runs):
    t = runs["postmenopausal"]
    i = at(t, 4)  # two years after the final menstrual period
    assert t["estrogen"][i] < 0.3 < 0.95 < t["estrogen"][0]
    assert t["acf_per_year"][i] > 1.2 * t["acf_per_year"][0]
    assert t["formation_efficiency"][i] < t["formation_efficiency"][0] - 0.03
    assert t["urinary_ca_mmol_d"][i] > t["urinary_ca_mmol_d"][0]


def test_glucocorticoid_lowers_formation_raises_urine(runs):
    t = runs["glucocorticoid"]
    i = at(t, 0.5)
    assert t["mar_um_per_day"][i] < t["mar_um_per_day"][0]  # day 0 is before the first dose
    assert t["formation_efficiency"][i] < 0.9
    assert t["oba"][at(t, 0.05)] < 1  # osteoblasts fall first
    assert np.mean(t["urinary_ca_mmol_d"][1 : at(t, 1)]) > t["urinary_ca_mmol_d"][0]
    assert t["ca_absorption_mmol_d"][i] < t["ca_absorption_mmol_d"][0]


def test_thyroid_shortens_remodeling_period(runs):
    t = runs["hyperthyroid"]
    assert t["remodeling_period_days"][-1] < 0.6 * t["remodeling_period_days"][0]
    assert (
        t["resorption_days"][-1] < t["resorption_days"][0] and t["reversal_days"][-1] < t["reversal_days"][0]
    )
    assert t["acf_per_year"][-1] > t["acf_per_year"][0] and t["formation_efficiency"][-1] < 1
    assert t["bv_rel"][-1] < 1


def test_primary_hyperparathyroidism(runs):
    t = runs["primary-hyperparathyroidism"]
    assert t["pth_pM"][-1] > 1.8 * t["pth_pM"][0]
    assert t["calcium_mM"][-1] > 2.42
    assert t["urinary_ca_mmol_d"][-1] > t["urinary_ca_mmol_d"][0]  # hypercalciuria
    assert t["acf_per_year"][-1] > t["acf_per_year"][0] and t["bv_rel"][-1] < 1


def test_alcohol_modest_loss(runs):
    t = runs["alcohol"]
    assert t["ca_absorption_mmol_d"][at(t, 0.05)] < t["ca_absorption_mmol_d"][0]
    assert t["vitamin_d_ng_ml"][0] < 30
    assert -1.0 < rate(t, 1, 3) < -0.05


def test_smoking_acts_through_estrogen_status(runs):
    t = runs["smoking"]  # premenopausal: ovarian estrogen defended, no loss
    assert abs(rate(t, 1, 3)) < 1e-6 and t["estrogen"][-1] == pytest.approx(1.0)
    pm = run_physiology("postmenopausal", 6)
    sm = run_physiology("postmenopausal+smoking", 6)
    assert sm["estrogen"][-1] < pm["estrogen"][-1] and sm["bmd_rel"][-1] < pm["bmd_rel"][-1]


def test_anorexia_loss_and_recovery(runs):
    t = runs["anorexia"]
    assert t["estrogen"][at(t, 1)] < 0.4
    assert rate(t, 0, 5) < -1.0
    assert rate(t, 6, 8) > rate(t, 0, 5)  # remission after 5 years
    # estrogen returns with the weight (recovery_years = 1): 1 - 0.7 exp(-1) one year on
    assert t["estrogen"][at(t, 6)] == pytest.approx(1.0 - 0.7 * np.exp(-1.0), abs=0.01)
    assert t["estrogen"][at(t, 8)] > 0.95


def test_aging_formation_deficit_and_sex_difference():
    w = run_physiology("aging-woman", 40)
    m = run_physiology("aging-man", 40)
    assert w["formation_efficiency"][at(w, 10)] < 1 and m["formation_efficiency"][at(m, 10)] < 1
    assert w["bv_rel"][-1] < m["bv_rel"][-1] < 1
    assert rate(w, 31, 34) < rate(w, 25, 29)  # menopause (age 51) accelerates the loss


# --- patterns -----------------------------------------------------------------------------------------
def test_menopause_transition_pattern(runs):
    t = runs["postmenopausal"]  # FMP at t = 2 yr
    before, first2, later = rate(t, 1, 2), rate(t, 2, 4), rate(t, 4, 8)
    assert first2 < before < later < 0


def test_glucocorticoid_fastest_in_first_year(runs):
    t = runs["glucocorticoid"]
    assert rate(t, 0, 0.5) < rate(t, 0.5, 1) < rate(t, 1, 3) < 0


# --- consistency mapping ---------------------------------------------------------------------------------
def test_balance_column_is_the_consistency_mapping(runs):
    t = runs["vitamin-d-deficiency"]
    bs_bv_um = 13.33 / 1000
    loss = t["acf_per_year"] * t["erosion_depth_um"] * bs_bv_um * (1 - t["formation_efficiency"])  # 1/yr
    expected = np.exp(-np.concatenate([[0], np.cumsum(0.5 * (loss[1:] + loss[:-1]))]) / 365.25)
    np.testing.assert_allclose(t["bv_rel_balance"], expected, rtol=1e-12)
    # once inputs are steady, bv_rel (with remodeling space) falls at the mapping's rate
    r_sim = -np.log(t["bv_rel"][at(t, 3)] / t["bv_rel"][at(t, 2)])
    r_map = -np.log(t["bv_rel_balance"][at(t, 3)] / t["bv_rel_balance"][at(t, 2)])
    assert r_sim == pytest.approx(r_map, rel=0.05)


def test_spinup_starts_from_the_sustained_state():
    t = run_physiology("vitamin-d-deficiency", 0.5, spinup_years=3)
    assert t["pth_pM"][0] > 1.3 * 3.85
    assert abs(t["pth_pM"][-1] / t["pth_pM"][0] - 1) < 0.05


# --- scenarios ---------------------------------------------------------------------------------------------
def test_presets_present():
    required = {
        "healthy-adult",
        "aging-man",
        "aging-woman",
        "postmenopausal",
        "vitamin-d-deficiency",
        "low-calcium-diet",
        "glucocorticoid",
        "hyperthyroid",
        "primary-hyperparathyroidism",
        "alcohol",
        "smoking",
        "anorexia",
    }
    assert required <= set(list_scenarios())


@pytest.mark.parametrize("name", list_scenarios())
def test_toml_round_trip(name, tmp_path):
    s = load_scenario(name)
    back = Scenario.from_toml(s.to_toml())
    assert back == s
    p = tmp_path / "x.toml"
    p.write_text(s.to_toml())
    assert load_scenario(str(p)).values == s.values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[thyroid]\nlevel = 9.0", "`thyroid.level` must be in [0.3, 4], got 9.0"),
        (
            "[thyroid]\nlevl = 1.0",
            "unknown scenario key `thyroid.levl`; allowed keys in [thyroid]: level, start_years",
        ),
        ("[thyriod]\nlevel = 1.0", "unknown scenario section `thyriod`"),
        ('[subject]\nsex = "other"', "`subject.sex` must be one of 'female', 'male', got 'other'"),
        ("[subject]\naging = 1", "`subject.aging` must be true or false"),
        ('[diet]\ncalcium_mg_per_day = "lots"', "`diet.calcium_mg_per_day` must be a number in [100, 3000]"),
        (
            "[glucocorticoid]\ndose_mg_per_day = -5",
            "`glucocorticoid.dose_mg_per_day` must be in [0, 80], got -5",
        ),
        ("colour = 'red'", "unknown scenario key `colour`"),
        ("[subject\n", "invalid TOML"),
    ],
)
def test_bad_scenarios_refused(text, message):
    with pytest.raises(BonesimError) as exc:
        Scenario.from_toml(text)
    assert message in str(exc.value)


def test_unknown_preset_message():
    with pytest.raises(BonesimError, match="unknown scenario 'nope'; presets: abaloparatide, aging-man"):
        load_scenario("nope")


def test_composition_include_and_plus(tmp_path):
    both = load_scenario("postmenopausal+glucocorticoid")
    assert both["menopause"]["enabled"] and both["glucocorticoid"]["dose_mg_per_day"] == 10.0
    p = tmp_path / "mine.toml"
    p.write_text(
        'name = "mine"\ninclude = ["postmenopausal", "vitamin-d-deficiency"]\n[vitamin_d]\nlevel_ng_ml = 12.0\n'
    )
    mine = load_scenario(str(p))
    assert (
        mine.name == "mine"
        and mine["menopause"]["age_years"] == 51.0
        and mine["vitamin_d"]["level_ng_ml"] == 12
    )
    # effects compose: menopause + glucocorticoid loses more than either alone
    pm, gc, pg = (run_physiology(s, 3)["bv_rel"][-1] for s in ("postmenopausal", "glucocorticoid", both))
    assert pg < min(pm, gc)


def test_include_cycle_refused(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text(f'include = ["{p}"]\n')
    with pytest.raises(BonesimError, match="include cycle"):
        load_scenario(str(p))


def test_scenario_table_object():
    st = scenario_table("postmenopausal", 0.5)
    assert st.name == "postmenopausal" and "[menopause]" in st.toml
    assert Scenario.from_toml(st.toml).values == load_scenario("postmenopausal").values
    assert len(st.table["day"]) == at(st.table, 0.5) + 1


def test_run_physiology_argument_checks():
    with pytest.raises(ValueError, match="`years` must be in"):
        run_physiology("healthy-adult", 0)
    with pytest.raises(ValueError, match="`spinup_years` must be in"):
        run_physiology("healthy-adult", 1, spinup_years=-1)


# --- calibration ----------------------------------------------------------------------------------------------
def test_targets_file_complete():
    rows = load_targets()
    ids = {r.id for r in rows}
    assert {
        "healthy-10y",
        "aging-woman-young",
        "aging-man-young",
        "meno-first-2y",
        "gc-year1",
        "vitd-pth",
    } <= ids
    for r in rows:
        assert r.source and r.evidence in {"read", "memory", "assumed"}
        assert r.tolerance > 0 and r.kind in {"fitted", "independent", "info"}
        assert r.site and r.modality and r.mapping, r.id
        resolve_spec(r.scenario)
        if r.comparator:
            resolve_spec(r.comparator)
    # every row of both target lists of issue 14 is a row (fitted or independent)
    issue14 = {
        "phpt-spine",
        "thyroid-recovery",
        "gc-stop-recovery",
        "vitd-calcium",
        "smoking-premeno",
        "smoking-postmeno",
        "alcohol-1unit",
        "anorexia-recovery",
        "gc-urine",
        "aln-spine",
        "aln-fn",
        "dmab-hip",
        "dmab-spine-5y",
        "dmab-spine-8y",
        "tpt-spine",
        "tpt-fn",
        "ht-hip",
        "ht-spine-pepi",
        "cavd-spine",
        "cavd-fn",
        "zol-spine",
        "zol-hip",
        "rom-spine",
        "rom-hip",
        "aln-heaney-acf",
        "aln-heaney-balance",
    }
    assert issue14 <= ids
    assert all(r.kind in {"fitted", "independent"} for r in rows if r.id in issue14)


def test_calibration_targets_within_tolerance():
    results, patterns = evaluate()
    failed = [(r.target.id, round(r.value, 3)) for r in results if r.target.kind == "fitted" and not r.passed]
    assert not failed
    assert all(ok for _, ok in patterns), patterns


TREATMENT_PRESETS = {
    "hormone_therapy": "hormone-therapy",
    "alendronate": "alendronate",
    "zoledronate": "zoledronate",
    "denosumab": "denosumab",
    "teriparatide": "teriparatide",
    "abaloparatide": "abaloparatide",
    "romosozumab": "romosozumab",
    "calcium_vitamin_d": "calcium-vitamin-d",
}


@pytest.mark.parametrize("seed", range(4))
def test_random_scenarios_within_ranges_stay_finite(seed):
    from bonesim.physiology import SCHEMA

    rng = np.random.default_rng(seed)
    body: dict = {}
    for sec, keys in SCHEMA.items():
        body[sec] = {}
        if sec in TREATMENT_PRESETS:  # drawn in the next test (same draws as before treatments existed)
            continue
        # [loading] came later and stays habitual here: any disuse on top of seed 3's extremes (G = 10,
        # 25(OH)D 150, 3 g Ca, thyrotoxicosis; 3.2 mM already) is an immobilisation hypercalcaemic
        # crisis above this test's 3.5 mM (3.5 / 3.6 / 4.1 mM at magnitude 0.5 / 0.1 / 0, measured);
        # test_loading draws deep disuse on the presets instead
        if sec == "loading":
            continue
        for k, key in keys.items():
            if k == "recovery_years":  # came later: left at its default so the draws stay as they were
                continue
            if isinstance(key.default, bool):
                body[sec][k] = bool(rng.integers(2))
            elif isinstance(key.default, str):
                body[sec][k] = str(rng.choice(key.choices))
            else:
                hi = min(key.hi, 3.0) if k in ("start_years", "stop_years") else key.hi
                body[sec][k] = float(rng.choice([key.lo, hi, rng.uniform(key.lo, hi)]))
    for sec in body.values():  # an empty window is refused (its keys would have no effect)
        if "start_years" in sec and sec["start_years"] >= sec["stop_years"]:
            sec["start_years"], sec["stop_years"] = 0.0, 3.0
    t = run_physiology(Scenario.from_dict({"name": "random", **body}), 2)
    for k, v in t.items():
        assert np.all(np.isfinite(v)), k
    assert np.all((t["formation_efficiency"] >= 0) & (t["formation_efficiency"] <= 1.5))
    assert np.all(t["acf_per_year"] > 0) and np.all((t["calcium_mM"] > 1.5) & (t["calcium_mM"] < 3.5))


def test_composition_a_later_file_can_switch_a_factor_off(tmp_path):
    """Issue 11 #5: `postmenopausal+nomeno.toml` with `menopause.enabled = false` turns menopause off."""
    from bonesim.physiology import load_scenario

    f = tmp_path / "nomeno.toml"
    f.write_text('name = "nomeno"\n[menopause]\nenabled = false\n')
    assert load_scenario("postmenopausal")["menopause"]["enabled"] is True
    both = load_scenario(f"postmenopausal+{f}")
    assert both["menopause"]["enabled"] is False
    inc = tmp_path / "inc.toml"
    inc.write_text('include = ["postmenopausal"]\n[menopause]\nenabled = false\n')
    assert load_scenario(inc)["menopause"]["enabled"] is False


@pytest.mark.parametrize("seed", range(3))
def test_random_treatment_combinations_stay_finite(seed):
    """Approved regimens, any subset, random start/stop, on the trial baseline."""
    rng = np.random.default_rng(100 + seed)
    scn = load_scenario("postmenopausal-osteoporosis")
    for sec, preset in TREATMENT_PRESETS.items():
        if rng.integers(2):
            start = float(rng.uniform(0, 1.5))
            body = {k: v for k, v in load_scenario(preset)[sec].items() if not k.endswith("_years")}
            scn = scn.replace(
                **{sec: {**body, "start_years": start, "stop_years": start + rng.uniform(0.2, 2)}}
            )
    t = run_physiology(scn, 3)
    for k, v in t.items():
        assert np.all(np.isfinite(v)), k
    # stacked drugs: denosumab started on top of a PTH analogue dips plasma Ca to ~1.71 mM for a few
    # days (measured, seeds 1 and 2; "hungry bone", cf. clinical denosumab hypocalcaemia)
    assert np.all((t["calcium_mM"] > 1.6) & (t["calcium_mM"] < 3.0))
    assert np.all(t["bmd_rel"] > 0.8) and np.all(t["bmd_rel"] < 1.4)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"denosumab": {"interval_months": 3.0}}, "`[denosumab]` is given without a dose"),
        ({"calcium_vitamin_d": {"start_years": 1.0}}, "`[calcium_vitamin_d]` is given without a dose"),
        (
            {"thyroid": {"level": 2.0, "start_years": 2.0, "stop_years": 1.0}},
            "start_years (2) must be before",
        ),
    ],
)
def test_keys_without_effect_refused(body, message):
    with pytest.raises(BonesimError) as exc:
        Scenario.from_dict({"name": "x", **body})
    assert message in str(exc.value)
