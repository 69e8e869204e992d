"""Treatments: doses and schedules -> drug exposure over time (pharmacokinetics) -> drug effect.

Each treatment is a scenario section (:data:`bonesim.physiology.scenario.SCHEMA`) with
doses in units named in the keys and ``start_years`` / ``stop_years``. This module turns
the doses into daily exposure time courses; :mod:`bonesim.physiology.factors` maps the
exposures onto the cell and calcium parameters (pharmacodynamics). The mechanisms, PK
models and sources are in ``docs/treatments.md``; marks as in ``factors.py``
([code] read in a model's source, [read] read in a retrieved abstract or text,
[memory] from memory, not verified, [assumed], [fitted]).

PK models
---------
denosumab
    Two-compartment model with first-order subcutaneous absorption and linear plus
    Michaelis-Menten (target-mediated) elimination, parameters of OpenBoneMin
    (``inst/OpenBoneMin.cpp``; Peterson et al. 2004 AAPS J 6 abstract W4340) [code].
    Pharmacodynamics: equilibrium binding of RANKL by the antibody in the bone-marrow
    interstitium, free RANKL fraction 1 / (1 + ABC * C / K_D), with the affinity of
    denosumab for human RANKL K_D = 3 pM = 0.45 ng/mL at 150 kDa (Kostenuik et al. 2009
    JBMR 24:182 [memory; the 3e-12 M value also read on a secondary encyclopedia page])
    and the bone antibody biodistribution coefficient ABC = 0.073 (bone / plasma
    concentration of an IgG; Shah & Betts 2013 mAbs 5:297 [memory]); the serum
    concentration of half-maximal binding is K_D / ABC = 6.2 ng/mL. The antibody (nM) is
    in large excess over RANKL (pM), so its free concentration is the total one.
    *Before* this change, the free fraction used K_D = k_out,L / (k_denosL * 6.667 pM per
    ng/mL) = 220 ng/mL, the RANKL-removal term of OpenBoneMin. That constant belongs to
    OpenBoneMin's own osteoclast response (a Hill exponent of 8.5 on RANK-RANKL, so a 2x
    RANKL fall already shuts osteoclastogenesis); in the Pivonka cell model, whose RANK
    activation is hyperbolic and whose TGF-beta feedback makes OCa scale like the square
    root of the activation, it left Ac.f suppressed by > 70 % only for ~2 months of each
    6-month interval (Ac.f 0.21 -> 0.38 -> 0.82 of baseline at days 30, 90, 150), against
    the ~80-90 % CTX suppression held until month 6 in FREEDOM (Cummings 2009 NEJM 361:756:
    CTX -86 % at month 1, -72 % at month 6 [memory]) and Bekker 2004 JBMR 19:1059 (single
    60 mg: suppression sustained ~6 months [memory]).
romosozumab
    One-compartment model, V 3.92 L, CL 0.23 L/day (Martin et al. 2020 Bone 133:115223, as
    tabulated in the Pharmacolibrary model M05BX06 [code]); absorption 0.2 /day and
    bioavailability 0.8 [assumed].
bisphosphonates (alendronate, zoledronate)
    The absorbed dose goes to an *active surface pool* (µmol) from which it leaves with a
    half-life of 1.5 years [assumed; the terminal skeletal half-life is longer, > 10 years,
    but most of that drug is buried under new bone]. Oral alendronate: 0.64 % absorbed
    [read: 0.6-0.7 %, Brixen & Mosekilde, Ugeskr Laeger 2005], half of it retained in bone
    [memory, Lin 1999 Bone 25:97]; zoledronate IV: 60 % retained [memory]. The effect is
    the pool's occupancy P / (P + K) of osteoclast-accessible surface, K = 10 µmol
    alendronate-equivalent [assumed], zoledronate counted 4x per µmol [assumed].
intermittent PTH analogues (teriparatide, abaloparatide)
    A daily injection with a plasma half-life of about an hour: the exposure is the daily
    pulse, x = dose / (dose + D50) with D50 = 20 µg teriparatide, 80 µg abaloparatide
    [assumed; the approved doses]. The pulse does not enter the calcium module's
    continuous PTH (the time-averaged rise is small).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from bonesim.defaults import DAYS_PER_YEAR

__all__ = ["PK", "PKParams", "exposures"]


@dataclass(frozen=True)
class PKParams:
    """Pharmacokinetic constants (see the module docstring for the source of each)."""

    # denosumab, OpenBoneMin [code]; hours, mL, ng
    den_vmax: float = 3110.0  # ng/h
    den_km: float = 188.0  # ng/mL
    den_vc: float = 2340.0  # mL
    den_vp: float = 1324.0  # mL
    den_cl: float = 2.75  # mL/h
    den_q: float = 18.67  # mL/h
    den_ka: float = 0.00592  # 1/h
    den_f: float = 0.729
    den_kd_pm: float = 3.0  # denosumab-RANKL affinity, Kostenuik 2009 [memory]
    den_mw_kda: float = 150.0  # IgG2 (OpenBoneMin's 150000 g/mol) [code]
    den_bone_abc: float = 0.073  # bone / plasma IgG concentration, Shah & Betts 2013 [memory]

    @property
    def den_kd_ng_ml(self) -> float:
        """Serum denosumab (ng/mL) that binds half the RANKL: K_D (pM -> ng/mL) / ABC (6.16)."""
        return self.den_kd_pm * self.den_mw_kda / 1000.0 / self.den_bone_abc

    # romosozumab
    rom_v_l: float = 3.92  # [code, Martin 2020 via Pharmacolibrary]
    rom_cl_l_d: float = 0.23  # [code]
    rom_ka_d: float = 0.2  # [assumed]
    rom_f: float = 0.8  # [assumed]
    # bisphosphonates
    aln_oral_f: float = 0.0064  # [read]
    aln_bone_fraction: float = 0.5  # [memory]
    zol_bone_fraction: float = 0.6  # [memory]
    bp_pool_half_life_years: float = 1.5  # [assumed]
    bp_k_umol: float = 10.0  # [assumed]
    zol_potency: float = 4.0  # [assumed]
    aln_mw: float = 249.1  # g/mol, alendronic acid
    zol_mw: float = 272.1  # g/mol, zoledronic acid
    # PTH analogues
    tpt_d50_ug: float = 20.0  # [assumed]
    aba_d50_ug: float = 80.0  # [assumed]


PK = PKParams()


def _dose_times(start_d: float, stop_d: float, interval_d: float, horizon_d: float) -> np.ndarray:
    """Dose times (days): start + 0.5 d, then every interval, while <= stop and <= horizon."""
    t0 = start_d + 0.5
    end = min(stop_d, horizon_d)
    if t0 > end:
        return np.empty(0)
    return np.arange(t0, end + 1e-9, interval_d)


def _bolus_course(grid: np.ndarray, doses: np.ndarray, amount: float, rhs, y_dose: int, n_state: int, out):
    """Integrate a PK system with boluses of ``amount`` into state ``y_dose``; return out(states) on grid."""
    res = np.zeros((n_state, len(grid)))
    y = np.zeros(n_state)
    t = float(grid[0])
    stops = [*doses, float(grid[-1])]
    for i, b in enumerate(stops):
        if b > t:
            sel = (grid > t) & (grid <= b)
            sol = solve_ivp(
                rhs, (t, b), y, t_eval=np.union1d(grid[sel], [b]), method="LSODA", rtol=1e-8, atol=1e-9
            )
            res[:, sel] = sol.y[:, np.isin(sol.t, grid[sel])]
            y = sol.y[:, -1].copy()
            t = b
        if i < len(doses):
            y[y_dose] += amount
    return out(res)


def _denosumab(grid, doses_d, dose_mg, p: PKParams):
    def rhs(t, y):  # t in days; PK rates per hour x 24
        sc, cent, per = y
        cp = cent / p.den_vc
        cl_nl = p.den_vmax / (p.den_km + cp)
        return 24.0 * np.array(
            [
                -p.den_ka * sc,
                p.den_ka * sc + p.den_q * per / p.den_vp - (p.den_q + p.den_cl + cl_nl) * cp,
                p.den_q * cp - p.den_q * per / p.den_vp,
            ]
        )

    return _bolus_course(grid, doses_d, dose_mg * 1e6 * p.den_f, rhs, 0, 3, lambda r: r[1] / p.den_vc)


def _romosozumab(grid, doses_d, dose_mg, p: PKParams):
    ke = p.rom_cl_l_d / p.rom_v_l

    def rhs(t, y):
        return np.array([-p.rom_ka_d * y[0], p.rom_ka_d * y[0] - ke * y[1]])

    return _bolus_course(grid, doses_d, dose_mg * p.rom_f, rhs, 0, 2, lambda r: r[1] / p.rom_v_l)  # mg/L


def _pool(grid, rate_per_day, boluses):
    """Surface pool with first-order loss: daily input ``rate_per_day(grid)`` plus boluses (time, amount)."""
    k = np.log(2.0) / (PK.bp_pool_half_life_years * DAYS_PER_YEAR)
    dt = np.diff(grid, prepend=grid[0])
    add = rate_per_day * dt
    for t, amt in boluses:
        i = int(np.searchsorted(grid, t))
        if i < len(grid):
            add[i] += amt
    out = np.zeros(len(grid))
    decay = np.exp(-k * dt)
    acc = 0.0
    for i in range(len(grid)):
        acc = acc * decay[i] + add[i]
        out[i] = acc
    return out


def _window(grid, sec):
    return ((grid > sec["start_years"] * DAYS_PER_YEAR) & (grid <= sec["stop_years"] * DAYS_PER_YEAR)).astype(
        float
    )


def _injections(sec: dict, concentration, grid: np.ndarray, p) -> np.ndarray:
    """Serum concentration of an injected drug given every ``interval_months`` in its window (0 without a dose)."""
    if sec["dose_mg"] <= 0:
        return np.zeros(len(grid))
    doses = _dose_times(
        sec["start_years"] * DAYS_PER_YEAR,
        sec["stop_years"] * DAYS_PER_YEAR,
        sec["interval_months"] * DAYS_PER_YEAR / 12.0,
        grid[-1],
    )
    if not len(doses):
        return np.zeros(len(grid))
    return np.maximum(concentration(grid, doses, sec["dose_mg"], p), 0.0)


def exposures(scenario, horizon_days: float, p: PKParams = PK) -> dict[str, np.ndarray]:
    """Daily drug exposures for a scenario, day 0 to ``horizon_days``.

    Returns a dict with ``day`` and: ``denosumab_ng_ml``, ``rankl_free``, ``romosozumab_ug_ml``,
    ``bisphosphonate_umol`` (alendronate-equivalent surface pool), ``teriparatide_x``,
    ``abaloparatide_x`` (pulse exposure 0..1), ``cee_mg_per_day``, ``supplement_calcium_mg``,
    ``supplement_vitamin_d_iu``.

    >>> from bonesim.physiology.scenario import load_scenario
    >>> e = exposures(load_scenario("denosumab"), 400)
    >>> bool(e["rankl_free"][0] == 1.0), bool(e["rankl_free"][30] < 0.1), bool(e["rankl_free"][175] > e["rankl_free"][30])
    (True, True, True)
    """
    grid = np.arange(0.0, np.ceil(horizon_days) + 2.0)
    out: dict[str, np.ndarray] = {"day": grid}
    c = _injections(scenario["denosumab"], _denosumab, grid, p)
    out["denosumab_ng_ml"] = c
    out["rankl_free"] = 1.0 / (1.0 + c / p.den_kd_ng_ml)
    out["romosozumab_ug_ml"] = _injections(scenario["romosozumab"], _romosozumab, grid, p)
    aln, zol = scenario["alendronate"], scenario["zoledronate"]
    rate = (
        aln["dose_mg"] / aln["interval_days"] * p.aln_oral_f * p.aln_bone_fraction / p.aln_mw * 1e3
    ) * _window(grid, aln)  # µmol/day (the pool's half-life >> dosing interval: mean rate)
    boluses = []
    if zol["dose_mg"] > 0:
        for t in _dose_times(
            zol["start_years"] * DAYS_PER_YEAR,
            zol["stop_years"] * DAYS_PER_YEAR,
            zol["interval_years"] * DAYS_PER_YEAR,
            grid[-1],
        ):
            boluses.append((t, zol["dose_mg"] * p.zol_bone_fraction / p.zol_mw * 1e3 * p.zol_potency))
    out["bisphosphonate_umol"] = (
        _pool(grid, rate, boluses) if (rate.any() or boluses) else np.zeros(len(grid))
    )
    tpt, aba = scenario["teriparatide"], scenario["abaloparatide"]
    d = tpt["dose_ug_per_day"]
    out["teriparatide_x"] = d / (d + p.tpt_d50_ug) * _window(grid, tpt)
    d = aba["dose_ug_per_day"]
    out["abaloparatide_x"] = d / (d + p.aba_d50_ug) * _window(grid, aba)
    ht = scenario["hormone_therapy"]
    out["cee_mg_per_day"] = ht["cee_mg_per_day"] * _window(grid, ht)
    cvd = scenario["calcium_vitamin_d"]
    w = _window(grid, cvd)
    out["supplement_calcium_mg"] = cvd["calcium_mg_per_day"] * w
    out["supplement_vitamin_d_iu"] = cvd["vitamin_d_iu_per_day"] * w
    return out
