"""The coupled systemic model and its daily parameter table for the CA.

Fifteen ODEs, time unit day: the bone-cell module (OBp, OBa, OCa; Pivonka 2008,
:mod:`~bonesim.physiology.cells`), the calcium-PTH-calcitriol loop (nine states;
Peterson & Riggs 2010, :mod:`~bonesim.physiology.calcium`), two adaptation states
(the parts of the estrogen-loss RANKL rise and of the early glucocorticoid effects that fade with time,
:mod:`~bonesim.physiology.factors`) and the log bone volume relative to the young-adult set point,
which the systemic mechanostat reads (:mod:`~bonesim.physiology.mechanostat`). All states are integrated relative to the healthy
steady state, which is solved to machine precision, so a healthy scenario stays put.

Coupling: systemic PTH drives the cells through ``PTH_rel ** PTH_GAMMA`` (damped, see
below); plasma calcium above normal raises osteoblast-progenitor recruitment (``d_obu``,
``FactorParams.ob_calcium_k``); the cells drive the osteoclast- and osteoblast-dependent bone
calcium fluxes (their trabecular share, ``CalciumParams.trabecular_turnover_share``).

Mapping to the CA (one row per day), with rho = cells / healthy cells of the
*quasi-steady* cell state for the day's inputs (the transient lag of osteoblasts
behind osteoclasts is made by the CA itself, as remodeling space, so it is not
counted twice):

* ``acf_per_year = Ac.f0 * rho_OC``
* ``formation_efficiency = rho_OB / rho_OC`` (= k_form OBa / k_res OCa, balanced at health)
* ``erosion_depth_um = E0``; ``resorption_days``, ``reversal_days``, ``mar_um_per_day``:
  healthy values times the factor modifiers (thyroid, glucocorticoid).

The physiology-level bone volume ``bv_rel`` is what the CA should produce: every
BMU activated on a day removes a cavity of depth E that refills (linearly over the
resorption period, held over reversal, refilled at MAR to f E), so the missing bone
is the remodeling space of the open BMUs plus the permanent deficits (1 - f) E of the
finished ones; with bone surface proportional to bone volume (BS/BV constant),
``bv_rel = exp(-BS/BV * (missing(t) - missing(0)))``. Its long-run rate is the
consistency mapping ``Ac.f * E * BS/BV * (1 - f)`` of docs/physiology.md; the
column ``bv_rel_balance`` is that mapping alone, without the remodeling space.

References
----------
.. [1] Pivonka P, et al. Bone 43:249-263 (2008).
.. [2] Peterson MC, Riggs MM. Bone 46:49-63 (2010).
.. [3] Parfitt AM. The physiologic and clinical significance of bone histomorphometric
   data. In: Recker RR (ed) Bone Histomorphometry, CRC Press (1983) (BMU cycle, remodeling
   space, Ac.f ~ 0.2-0.5 /yr in trabecular bone).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from bonesim.ca.params import OPTIONAL_COLUMNS, TABLE_COLUMNS
from bonesim.errors import InputError
from bonesim.physiology.calcium import CA_PARAMS, CalciumInputs, calcium_rhs, calcium_steady_state, fluxes
from bonesim.physiology.cells import CellInputs, cell_rhs, quasi_steady_cells
from bonesim.physiology.factors import DAYS_PER_YEAR, FACTOR_PARAMS, FactorParams, Forcing
from bonesim.physiology.mineralisation import MINERALISATION, mineral_content
from bonesim.physiology.scenario import Scenario, load_scenario

__all__ = [
    "CA_COLUMNS",
    "PTH_GAMMA",
    "ScenarioTable",
    "initial_bone_volume",
    "run_physiology",
    "scenario_table",
]

log = logging.getLogger(__name__)

#: Columns the CA engine reads (docs/model.md, daily parameter table): the engine's own list
#: (``modeling_um_per_day``, modeling-based formation, is optional for the engine; this model writes it).
CA_COLUMNS = ("day", *TABLE_COLUMNS, *OPTIONAL_COLUMNS)
#: Damping of the PTH action on the cells: PTH_cell = PTH_cell0 * PTH_rel**PTH_GAMMA [assumed].
#: Without it, loss changed by ~1 %/yr per +20 % PTH (PHYSIOLOGY.md), too steep for the
#: modest bone loss of vitamin-D insufficiency.
PTH_GAMMA = 0.5

_CELL0 = np.array(quasi_steady_cells(CellInputs()), dtype=float)
_CA0 = calcium_steady_state()
_N_CELL, _N_CA = 3, 9
#: state layout: cells, calcium module, the two adaptation states, log bone volume (mechanostat)
_I_AE, _I_AGC, _I_BV = _N_CELL + _N_CA, _N_CELL + _N_CA + 1, _N_CELL + _N_CA + 2
_N = _N_CELL + _N_CA + 3


def _cell_inputs(inp: dict, pth_rel, ca_rel=1.0, k_ca: float = FACTOR_PARAMS.ob_calcium_k) -> CellInputs:
    """Cell-module inputs: the factor map's multipliers, systemic PTH (damped) and plasma calcium.

    ``ca_rel`` is plasma Ca relative to 2.35 mM: above it, through the osteoblast-lineage
    calcium-sensing receptor, it raises the recruitment of osteoblast progenitors,
    D_OBu x max(1, ca_rel)**k_ca (docs/physiology.md, "Calcium sensing by the osteoblast lineage").
    """
    return CellInputs(
        pth_rel=np.maximum(pth_rel, 0.0) ** PTH_GAMMA,
        p_rankl=inp["p_rankl"],
        d_obp=inp["d_obp"],
        a_oba=inp["a_oba"],
        d_obu=np.maximum(ca_rel, 1.0) ** k_ca,
        beta_opg=inp["beta_opg"],
        d_ocp=inp["d_ocp"],
        a_oca=inp["a_oca"],
        oc_activity=inp["oc_activity"],
        rankl_free=inp["rankl_free"],
    )


def _ca_inputs(inp: dict, rho_oc, rho_ob) -> CalciumInputs:
    """Calcium-module inputs. Bone calcium release follows the resorbed volume: active osteoclasts
    times the resorption per osteoclast (``oc_activity``: deeper erosion in estrogen deficiency,
    shallower on bisphosphonates), so ``rho_oc`` passed on is OCa x oc_activity."""
    return CalciumInputs(
        gland=inp["gland"],
        f_vd=inp["f_vd"],
        oral_ca=inp["oral_ca"],
        abs_mult=inp["abs_mult"],
        renal_mult=inp["renal_mult"],
        estrogen=inp["estrogen"],
        rho_oc=rho_oc * inp["oc_activity"],
        rho_ob=rho_ob,
    )


def _bv_slope(forcing: Forcing, inp: dict, rho_oc, rho_ob):
    """d ln(BV)/dt (per day) of the mechanostat state: the BMU balance of the *dynamic* cells,
    -BS/BV (Ac.f0 E0 (rho_OC a - rho_OB) / 365 - modeling), a = resorption per osteoclast: the
    consistency mapping of docs/physiology.md (0.2 /yr x (rho_OC - rho_OB) at the defaults)."""
    rem = forcing.s["remodeling"]
    bs_bv_um = rem["bs_bv_per_mm"] / 1000.0
    per_day = rem["acf0_per_year"] * rem["erosion_depth_um"] / DAYS_PER_YEAR
    return -bs_bv_um * (per_day * (rho_oc * inp["oc_activity"] - rho_ob) - inp["modeling_um_per_day"])


def _rhs(t: float, z: np.ndarray, forcing: Forcing, p: FactorParams) -> np.ndarray:
    cells = z[:_N_CELL] * _CELL0
    ca = z[_N_CELL : _N_CELL + _N_CA] * _CA0
    a_e, a_gc = z[_I_AE], z[_I_AGC]
    inp = forcing.inputs(t, a_e, a_gc, np.exp(z[_I_BV]))
    pth_rel = ca[1] / _CA0[1]
    dcell = np.array(cell_rhs(*cells, _cell_inputs(inp, pth_rel, ca[0] / _CA0[0], p.ob_calcium_k))) / _CELL0
    dca = calcium_rhs(ca, _ca_inputs(inp, z[2], z[1])) * 24.0 / _CA0  # per hour -> per day
    d_e, x_gc = forcing.drives(t)
    dadapt = np.array([(d_e - a_e) / p.estrogen_adapt_days, (x_gc - a_gc) / p.gc_adapt_days])
    dbv = np.array([_bv_slope(forcing, inp, z[2], z[1])], dtype=float)
    return np.concatenate([dcell, dca, dadapt, dbv])


def _integrate(
    forcing: Forcing, p: FactorParams, z0: np.ndarray, t0: float, t1: float, t_eval: np.ndarray | None
):
    """Integrate piecewise between the input breakpoints; return (t, z) at ``t_eval`` (or at ``t1``)."""
    edges = [t0, *[b for b in forcing.breakpoints(t1) if t0 < b < t1], t1]
    ts, zs = [], []
    z = z0
    for a, b in itertools.pairwise(edges):
        sel = (
            np.empty(0)
            if t_eval is None
            else t_eval[(t_eval >= a) & ((t_eval < b) | (b == t1) & (t_eval <= b))]
        )
        times = np.union1d(sel, [b])
        sol = solve_ivp(
            _rhs,
            (a, b),
            z,
            method="LSODA",
            t_eval=times,
            args=(forcing, p),
            rtol=1e-9,
            atol=1e-12,
            max_step=60.0,
        )
        if not sol.success:  # pragma: no cover - numerical failure is a bug
            raise RuntimeError(f"physiology ODE failed at t={sol.t[-1]:.1f} d: {sol.message}")
        keep = np.isin(sol.t, sel)
        ts.append(sol.t[keep])
        zs.append(sol.y[:, keep])
        z = sol.y[:, -1]
    if t_eval is None:
        return np.array([t1]), z[:, None]
    return np.concatenate(ts), np.concatenate(zs, axis=1)


def _cavity_profile(s, res, rev, form, f):
    """Missing depth (fraction of E) of a BMU s days after activation (profile, ends at 1 - f)."""
    out = np.where(s < res, s / res, 1.0)
    refill = np.clip((s - res - rev) / np.maximum(form, 1e-9), 0.0, 1.0)
    return np.where(s < res + rev, out, 1.0 - f * refill)


def _missing_depth(acf, e_um, res, rev, form, f) -> np.ndarray:
    """Missing bone per unit surface (um) at each day: open cavities + finished deficits."""
    n = len(acf)
    tot = res + rev + form
    lmax = int(np.ceil(tot.max())) + 1
    # history before day 0 = day-0 values (the state at day 0 is taken as established)
    pad = lambda x: np.concatenate([np.full(lmax, x[0]), x])  # noqa: E731
    a = pad(acf) / DAYS_PER_YEAR * pad(e_um)
    r, v, fo, ff, tt = pad(res), pad(rev), pad(form), pad(f), pad(tot)
    days = np.arange(n)
    missing = np.zeros(n)
    for s in range(lmax + 1):  # cohorts activated s days ago, still open or finished within the window
        d = days + lmax - s
        open_ = s < tt[d]
        missing += a[d] * np.where(open_, _cavity_profile(float(s), r[d], v[d], fo[d], ff[d]), 0.0)
    # finished cohorts: permanent deficit (1 - f), charged on completion
    done_day = np.arange(-lmax, n) + np.ceil(tt).astype(int)
    deficit = a * (1.0 - ff)
    perm = np.zeros(n + lmax + 2)
    ok = done_day <= n - 1
    np.add.at(perm, np.clip(done_day[ok], -1, None) + 1, deficit[ok])  # index 0 collects pre-day-0
    # cohorts finished before day 0 land in index 0 and are dropped: only changes from day 0 count
    perm_cum = np.cumsum(perm)[1 : n + 1]
    return missing + perm_cum


def _fluxes_um(acf, e_um, res, rev, form, f) -> tuple[np.ndarray, np.ndarray]:
    """Resorbed and formed depth per unit surface on each day (um/day), from the BMU cohorts."""
    n = len(acf)
    tot = res + rev + form
    lmax = int(np.ceil(tot.max())) + 1
    pad = lambda x: np.concatenate([np.full(lmax, x[0]), x])  # noqa: E731
    a = pad(acf) / DAYS_PER_YEAR * pad(e_um)
    r, v, fo, ff = pad(res), pad(rev), pad(form), pad(f)
    days = np.arange(n)
    resorbed = np.zeros(n)
    formed = np.zeros(n)
    for s in range(lmax + 1):
        d = days + lmax - s
        # overlap of day [s, s+1) of the cohort's life with its resorption / formation phase
        ov_r = np.clip(r[d] - s, 0.0, 1.0)
        f0 = r[d] + v[d]
        ov_f = np.clip(np.minimum(s + 1.0, f0 + fo[d]) - np.maximum(float(s), f0), 0.0, 1.0)
        resorbed += a[d] * ov_r / r[d]
        formed += a[d] * ff[d] * ov_f / np.maximum(fo[d], 1e-9)
    return resorbed, formed


def run_physiology(
    scenario: Scenario | str,
    years: float,
    *,
    spinup_years: float = 0.0,
    params: FactorParams = FACTOR_PARAMS,
    progress: Callable[[float], None] | None = None,
) -> dict[str, np.ndarray]:
    """Run the systemic model and return the daily parameter table.

    Parameters
    ----------
    scenario : Scenario or str
        A scenario or a preset name / TOML path (see :func:`load_scenario`).
    years : float
        Simulated time from day 0, in years (> 0, at most 120).
    spinup_years : float
        Years integrated *before* day 0 with the inputs frozen at their day-0 values,
        starting from the healthy state, so that day 0 starts from the state the
        day-0 inputs sustain (e.g. an established secondary hyperparathyroidism).
    params : FactorParams
        Factor coefficients (for calibration studies).
    progress : callable, optional
        Called with the fraction done (0..1).

    Returns
    -------
    dict of str to ndarray
        One row per day, day 0 to day ``round(years * 365.25)`` inclusive: the CA columns
        ``day, acf_per_year, erosion_depth_um, resorption_days, reversal_days,
        mar_um_per_day, formation_efficiency`` and explanatory columns (``age_years``,
        ``calcium_mM``, ``pth_pM``, ``calcitriol_pM``, ``estrogen``, ``obp``, ``oba``,
        ``oca`` (relative to healthy, dynamic), ``oca_qs``, ``oba_qs`` (quasi-steady),
        ``ca_absorption_mmol_d``, ``urinary_ca_mmol_d``, ``bone_ca_release_mmol_d``,
        ``remodeling_period_days``, ``bv_rel``, ``bv_rel_balance``, ``vitamin_d_ng_ml``,
        ``load_magnitude`` (habitual loading relative to normal, 1 outside the ``[loading]`` window)).

    Examples
    --------
    >>> t = run_physiology("healthy-adult", 1)
    >>> len(t["day"]), round(float(t["acf_per_year"][-1]), 3), round(float(t["formation_efficiency"][-1]), 6)
    (366, 0.3, 1.0)
    """
    scn = load_scenario(scenario)
    if not (0 < float(years) <= 120):
        raise InputError(f"`years` must be in (0, 120], got {years!r}")
    if not (0 <= float(spinup_years) <= 50):
        raise InputError(f"`spinup_years` must be in [0, 50], got {spinup_years!r}")
    n_days = round(years * DAYS_PER_YEAR)
    forcing = Forcing(scn, params, horizon_days=n_days)
    z0 = np.ones(_N)
    # day 0 is an established state: the adaptation states start at their day-0 drives (as if
    # the day-0 inputs had always been there), e.g. 17 years after menopause the fading part
    # of the estrogen-loss response has faded
    z0[_I_AE : _I_AGC + 1] = forcing.drives(0.0)
    # bone volume at day 0 relative to the young-adult set point of the mechanostat
    z0[_I_BV] = np.log(initial_bone_volume(scn, params))
    if spinup_years > 0:
        frozen = Forcing(scn, params, freeze_at=0.0)
        _, z = _integrate(frozen, params, z0, -spinup_years * DAYS_PER_YEAR, 0.0, None)
        z0 = z[:, -1]
    day = np.arange(n_days + 1, dtype=float)
    _, z = _integrate(forcing, params, z0, 0.0, float(n_days), day)
    if progress:
        progress(1.0)
    return _table(scn, forcing, day, z)


#: age from which the mechanostat history of a subject runs (the set point: young adult, before the
#: age-related deficit ramps in at FactorParams.age_peak_years - age_ramp_years)
HISTORY_START_AGE = 20.0


def initial_bone_volume(scn: Scenario, params: FactorParams = FACTOR_PARAMS) -> float:
    """Bone volume at day 0 relative to the young-adult set point (the mechanostat's initial state).

    ``subject.bone_volume_rel`` if given (> 0); otherwise (0, the default) the subject's own history:
    the model run from age 20 at the set point to the day-0 age with the subject's lifelong inputs
    (sex, age-related deficit if ``aging``, the menopause) and its ``[remodeling]`` values; the other
    factors of the scenario start at day 0. 1 when nothing of that history happens before day 0.

    >>> initial_bone_volume(load_scenario("healthy-adult"))
    1.0
    """
    sub, men = scn["subject"], scn["menopause"]
    if sub["bone_volume_rel"] > 0:
        return float(sub["bone_volume_rel"])
    age0 = sub["age_years"]
    meno_before = men["enabled"] and sub["sex"] == "female" and men["age_years"] < age0
    if age0 <= HISTORY_START_AGE or not (sub["aging"] or meno_before) or params.mech_exponent == 0:
        return 1.0
    return _history_bone_volume(
        (sub["sex"], age0, sub["aging"]),
        tuple(sorted(men.items())),
        tuple(sorted(scn["remodeling"].items())),
        params,
    )


@functools.lru_cache(maxsize=64)
def _history_bone_volume(subject: tuple, menopause: tuple, remodeling: tuple, params: FactorParams) -> float:
    sex, age0, aging = subject
    hist = Scenario.from_dict(
        {
            "name": "history",
            "subject": {"sex": sex, "age_years": HISTORY_START_AGE, "aging": aging, "bone_volume_rel": 1.0},
            "menopause": dict(menopause),
            "remodeling": dict(remodeling),
        }
    )
    table = run_physiology(hist, age0 - HISTORY_START_AGE, params=params)
    return float(table["bv_mech"][-1])


def _table(scn: Scenario, forcing: Forcing, day: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    rem = scn["remodeling"]
    cells = z[:_N_CELL]
    ca = z[_N_CELL : _N_CELL + _N_CA] * _CA0[:, None]
    inp = forcing.inputs(day, z[_I_AE], z[_I_AGC], np.exp(z[_I_BV]))
    inp = {k: np.broadcast_to(np.asarray(v, dtype=float), day.shape) for k, v in inp.items()}
    pth_rel = ca[1] / _CA0[1]
    _, oba_q, oca_q = quasi_steady_cells(_cell_inputs(inp, pth_rel, ca[0] / _CA0[0], forcing.p.ob_calcium_k))
    rho_oc = oca_q / _CELL0[2]
    rho_ob = oba_q / _CELL0[1]
    # formation efficiency = k_form OBa / (k_res OCa): resorption per osteoclast (oc_activity)
    # lowers k_res and with it the erosion depth, the formed wall (k_form OBa) is unchanged
    act = inp["oc_activity"]
    f_eff = rho_ob / (rho_oc * act)
    if np.any((f_eff < 0.0) | (f_eff > 1.5)):
        log.warning(
            "formation efficiency outside [0, 1.5] clipped (min %.3f, max %.3f)", f_eff.min(), f_eff.max()
        )
        f_eff = np.clip(f_eff, 0.0, 1.5)
    acf = rem["acf0_per_year"] * rho_oc
    e_um = rem["erosion_depth_um"] * act
    res = rem["resorption_days"] * inp["resorption_mult"]
    rev = rem["reversal_days"] * inp["reversal_mult"]
    mar = rem["mar_um_per_day"] * inp["mar_mult"]
    form = f_eff * e_um / mar
    bs_bv_um = rem["bs_bv_per_mm"] / 1000.0
    missing = _missing_depth(acf, e_um, res, rev, form, f_eff)
    # modeling-based formation (on quiescent surface, without prior resorption: anabolic drugs)
    modeling = np.asarray(inp["modeling_um_per_day"], dtype=float)
    mod_cum = np.concatenate([[0.0], np.cumsum(0.5 * (modeling[1:] + modeling[:-1]))])
    bv_rel = np.exp(-bs_bv_um * (missing - missing[0] - mod_cum))
    resorbed, formed = _fluxes_um(acf, e_um, res, rev, form, f_eff)
    bmd_rel, tmd_rel = mineral_content(bv_rel, bs_bv_um * resorbed, bs_bv_um * (formed + modeling))
    balance = np.concatenate(
        [[0.0], np.cumsum(0.5 * (acf[1:] * (1 - f_eff[1:]) + acf[:-1] * (1 - f_eff[:-1])))]
    )
    bv_bal = np.exp(-bs_bv_um * e_um * balance / DAYS_PER_YEAR)
    fl = fluxes(ca, _ca_inputs(inp, cells[2], cells[1]))
    V1 = CA_PARAMS.V1
    return {
        "day": day,
        "acf_per_year": acf,
        "erosion_depth_um": e_um,
        "resorption_days": res,
        "reversal_days": rev,
        "mar_um_per_day": mar,
        "formation_efficiency": f_eff,
        "age_years": forcing.age(day),
        "calcium_mM": ca[0] / V1,
        "pth_pM": ca[1] / V1,
        "calcitriol_pM": ca[4] / V1,
        "estrogen": inp["estrogen"].copy(),
        "vitamin_d_ng_ml": inp["vitamin_d_eff_ng_ml"].copy(),
        "obp": cells[0].copy(),
        "oba": cells[1].copy(),
        "oca": cells[2].copy(),
        "oba_qs": rho_ob,
        "oca_qs": rho_oc,
        "ca_absorption_mmol_d": fl["j40"] * 24.0,
        "urinary_ca_mmol_d": fl["j27"] * 24.0,
        "bone_ca_release_mmol_d": (fl["j14"] - fl["j15"]) * 24.0,
        "remodeling_period_days": res + rev + form,
        "bv_rel": bv_rel,
        "bv_rel_balance": bv_bal,
        "bmd_rel": bmd_rel,
        "tmd_rel": tmd_rel,
        "tmd_mg_cm3": tmd_rel
        * MINERALISATION.tmd_max_mg_cm3
        * MINERALISATION.steady_mean(bs_bv_um * resorbed[0] * DAYS_PER_YEAR),
        "resorbed_um_per_day": resorbed,
        "formed_um_per_day": formed + modeling,
        "modeling_um_per_day": modeling.copy(),
        "oc_activity": np.asarray(act, dtype=float).copy(),
        "rankl_free": np.asarray(inp["rankl_free"], dtype=float).copy(),
        "denosumab_ng_ml": forcing.exposure("denosumab_ng_ml", day),
        "bisphosphonate_umol": forcing.exposure("bisphosphonate_umol", day),
        "romosozumab_ug_ml": forcing.exposure("romosozumab_ug_ml", day),
        # habitual loading relative to normal (scenario [loading]); the axis is scenario-level
        # (ScenarioTable.load_axis), the CA's mechanoregulation reads both
        "load_magnitude": inp["load_magnitude"].copy(),
        # mechanostat state: bone volume relative to the young-adult set point (BMU balance of the
        # dynamic cells, from the day-0 value initial_bone_volume), and the load deficit it gives
        "bv_mech": np.exp(z[_I_BV]),
        "load_deficit": np.asarray(inp["load_deficit"], dtype=float).copy(),
    }


@dataclass(frozen=True)
class ScenarioTable:
    """A scenario with its daily table, as the CA engine takes it (``simulate(..., scenario=obj)``).

    Attributes
    ----------
    name : str
        Scenario name (stored in ``/scenario`` attrs).
    toml : str
        The full resolved scenario TOML (stored in ``/scenario`` attrs).
    table : dict of str to ndarray
        The daily parameter table of :func:`run_physiology`.
    scenario : Scenario
    """

    name: str
    toml: str
    table: dict[str, np.ndarray]
    scenario: Scenario

    @property
    def load_axis(self) -> str:
        """Principal habitual loading axis of the sample, ``"z"``, ``"y"`` or ``"x"`` (``[loading] axis``).

        The daily magnitude is the table column ``load_magnitude`` (1 habitual).
        """
        return self.scenario["loading"]["axis"]


def scenario_table(name_or_path: str | Scenario, years: float, *, spinup_years: float = 0.0) -> ScenarioTable:
    """Load a scenario and run the physiology for ``years``: the object ``bonesim simulate`` passes on.

    >>> st = scenario_table("healthy-adult", 0.1)
    >>> st.name, len(st.table["day"]), st.toml.startswith('name = "healthy-adult"')
    ('healthy-adult', 38, True)
    """
    scn = load_scenario(name_or_path)
    table = run_physiology(scn, years, spinup_years=spinup_years)
    return ScenarioTable(scn.name, scn.to_toml(), table, scn)
