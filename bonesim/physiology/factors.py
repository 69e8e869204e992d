"""Factors: each scenario input mapped onto the parameters of the cell and calcium modules.

Every factor acts through a stated mechanism on named model parameters; the
coefficients are in :class:`FactorParams`, each marked **[code]** (read in the
source of a published model), **[lit]** (a published value), **[assumed]** (a
first-pass choice) or **[calibrated]** (fitted to the clinical targets in
``data/reference/clinical_rates.csv``). The table below is repeated, with more
detail, in ``docs/physiology.md``.

=====================  =======================================================  ===========================
factor (input)         mechanism -> model parameter                             source
=====================  =======================================================  ===========================
age (``aging``)        osteoblast lifespan falls after peak bone mass (~25 yr):  Riggs 2008 (rates), Bullamore
                       A_OBa x (1 + k_sex ramp); intestinal Ca absorption       1970 (absorption) [calibrated]
                       falls after 50: abs x (1 - 0.003 (age-50))
estrogen (menopause)   (i) RANKL production P_RANKL rises with the estrogen      Martinez-Reina 2019 form
                       deficit, partly adapting over years; (ii) renal Ca       [code], Riggs 2012 tmEST [code],
                       reabsorption capacity tmEST falls; (iii) resorption per  [calibrated] to SWAN/Han 1997;
                       osteoclast, hence erosion depth E, x (1 + 0.109 d_E)     Eriksen 1999 (E) [read]
glucocorticoid         OB differentiation D_OBp down, OB apoptosis A_OBa up,    Compston 2018 (mechanisms),
                       with an early part that adapts (fast loss in the first   Martonova 2023 PTH [code],
                       months), OPG down, small adapting RANKL rise, MAR down,  [calibrated] to Compston 2018
                       gut absorption down,
                       renal reabsorption down (hypercalciuria), PTH x0.9
vitamin D 25(OH)D      substrate of renal 1-alpha-hydroxylase: f_VD =           [assumed] Hill 2, K 8 ng/mL
                       D^2/(D^2+K^2) normalised at 30 ng/mL -> calcitriol ->    (knee near Aloia 2006
                       active Ca absorption -> plasma Ca -> PTH (CaSR curve)    17.6 ng/mL [read])
dietary calcium        oral calcium input of the gut compartment                Peterson & Riggs 2010
thyroid hormone        OC recruitment D_OCp x theta; phases shortened (resorption Mosekilde 1990, Eriksen 1985
                       and reversal / theta, MAR x theta); OB apoptosis x       [assumed]
                       (1 + 0.05 (theta-1)): faster cycle, incomplete formation
alcohol                gut Ca absorption down, 25(OH)D down, OB apoptosis up    Turner 2000, Kanis 2005 [assumed]
smoking                anti-estrogenic: lowers the non-ovarian (postmenopausal) Law & Hackshaw 1997 [memory],
                       estrogen of women; no direct term (0 coefficients)      [assumed] coefficient
eating disorder        estrogen down (hypothalamic amenorrhoea), Ca intake      Misra & Klibanski 2014
                       down, absorption and 25(OH)D down, OB apoptosis up       [assumed]
                       (low IGF-1); the RANKL rise comes through estrogen;
                       after stop, weight regain: severity x exp(-dt/recovery)  recovery_years [memory]
primary HPT            parathyroid secretion x G (continuous excess, catabolic) Peterson & Riggs 2010 [code]
disuse (``loading``)   load deficit d = max(0, 1 - magnitude): osteocyte RANKL  Zerwekh 1998 bed rest [read]
                       P_RANKL + k d (resorption up) and sclerostin/Wnt loss:   -> [fitted] (cells only, no
                       OB apoptosis A_OBa x (1 + k d); > 1 (exercise): none     BMD); Xiong 2011, Spatz 2012
mechanostat            d read against the bone volume: d = 1 - S, S = m BV^-n   Gibson & Ashby n = 2
                       (n 2); over-strain S > 1: d = g (1 - S), g = 0.005       [memory]; g bounded by the
                       (mechanostat.py)                                         aging rows [fitted]
=====================  =======================================================  ===========================

References
----------
.. [1] Riggs BL, Melton LJ, Robb RA, et al. A population-based assessment of rates of bone
   loss at multiple skeletal sites. J Bone Miner Res 23:205-214 (2008).
.. [2] Martinez-Reina J, Pivonka P. Effects of long-term treatment of denosumab on bone
   mineral density: insights from an in-silico model of bone mineralization. Bone
   125:87-95 (2019) (estrogen-loss RANKL term, bone-models 0.1.0 [code]).
.. [3] Compston J. Glucocorticoid-induced osteoporosis: an update. Endocrine 61:7-16 (2018).
.. [4] Martonova D, et al. Effects of PTH glandular and external dosing patterns on bone
   cell activity using a two-state receptor model. Front Bioeng Biotechnol (2023); bone-models [code].
.. [5] Mosekilde L, Eriksen EF, Charles P. Effects of thyroid hormones on bone and mineral
   metabolism. Endocrinol Metab Clin North Am 19:35-63 (1990).
.. [6] Kanis JA, et al. Smoking and fracture risk: a meta-analysis. Osteoporos Int 16:155
   (2005); Alcohol intake as a risk factor for fracture. Osteoporos Int 16:737 (2005).
.. [7] Krall EA, Dawson-Hughes B. Smoking increases bone loss and decreases intestinal calcium
   absorption. J Bone Miner Res 14:215-220 (1999).
.. [8] Misra M, Klibanski A. Anorexia nervosa and bone. J Endocrinol 221:R163-R176 (2014).
.. [9] Bullamore JR, Wilkinson R, Gallagher JC, et al. Effect of age on calcium absorption.
   Lancet 2:535-537 (1970).
.. [10] Han ZH, Palnitkar S, Rao DS, et al. Effects of ethnicity and age or menopause on the
   remodeling and turnover of iliac bone. J Bone Miner Res 12:498-508 (1997).
.. [11] Weinstein RS, Jilka RL, Parfitt AM, Manolagas SC. Inhibition of osteoblastogenesis and
   promotion of apoptosis of osteoblasts and osteocytes by glucocorticoids. J Clin Invest
   102:274-282 (1998).
.. [12] Greendale GA, Sowers M, Han W, et al. Bone mineral density loss in relation to the final
   menstrual period in a multiethnic cohort (SWAN). J Bone Miner Res 27:111-118 (2012) (10-yr
   and transmenopausal losses).
.. [13] Sowers MR, Zheng H, Jannausch ML, et al. Amount of bone loss in relation to time around the
   final menstrual period and FSH staging of the transmenopause. J Clin Endocrinol Metab
   95:2155-2162 (2010), PMC2869543 (the -1.7 / -3.3 / -1.1 %/yr spine rates).
.. [14] Law MR, Hackshaw AK. A meta-analysis of cigarette smoking, bone mineral density and risk of
   hip fracture. BMJ 315:841-846 (1997) [memory].
.. [15] Zerwekh JE, Ruml LA, Gottschalk F, Pak CYC. The effects of twelve weeks of bed rest on bone
   histology, biochemical markers of bone turnover, and calcium homeostasis in eleven normal
   subjects. J Bone Miner Res 13:1594-1601 (1998) [read, abstract; volume/pages from memory]:
   cancellous eroded surface 2.1 -> 4.7 %, active osteoclast surface doubled, serum formation
   markers unchanged, PTH and calcitriol down, urinary Ca 5.3 -> 7.3 mmol/day.
.. [17] Aloia JF, Talwar SA, Pollack S, Feuerman M, Yeh JK. Optimal vitamin D status and serum
   parathyroid hormone concentrations in African American women. Am J Clin Nutr 84:602-609 (2006)
   [read, abstract]: line-line breakpoint of PTH on 25(OH)D at 44 nmol/L (17.6 ng/mL).
.. [16] Xiong J, Onal M, Jilka RL, et al. Matrix-embedded cells control osteoclast formation. Nat Med
   17:1235-1241 (2011) (osteocyte RANKL needed for unloading-induced loss) [memory]; Spatz JM,
   Fields EE, Yu EW, et al. Serum sclerostin increases in healthy adult men during bed rest. J Clin
   Endocrinol Metab 97:E1736-E1740 (2012) [memory].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bonesim.defaults import DAYS_PER_YEAR  # re-exported for the physiology modules
from bonesim.physiology.calcium import CA_PARAMS
from bonesim.physiology.mechanostat import load_deficit
from bonesim.physiology.scenario import Scenario
from bonesim.physiology.treatments import PK, exposures

__all__ = ["FACTOR_PARAMS", "FactorParams", "Forcing"]


@dataclass(frozen=True)
class FactorParams:
    """Coefficients of the factor -> parameter map (see the module table for sources)."""

    # age [calibrated to Riggs 2008 young-adult spine rates and lifetime split]
    age_peak_years: float = 25.0
    age_ramp_years: float = 5.0
    age_aoba_female: float = 0.0826  # A_OBa step after peak bone mass, women
    age_aoba_male: float = 0.0485  # men
    age_aoba_slope: float = 0.00149  # per year after 50, both sexes
    age_abs_slope: float = 0.003  # per year after 50 [calibrated, spec]
    # estrogen [calibrated]
    p_rankl_estrogen: float = 608.9  # pM/day at the full menopausal deficit
    estrogen_sustained: float = 0.0002  # fraction of the RANKL rise that does not adapt
    estrogen_adapt_days: float = 807.4  # adaptation time constant
    # deeper osteoclastic erosion in estrogen deficiency: resorption per osteoclast (and so the
    # erosion depth E) x (1 + k d_E), the formed wall unchanged [read: Eriksen et al. 1999 JBMR
    # 14:1217, untreated early postmenopausal women, erosion depth 46.9 -> 52.0 um (+10.9 %) over
    # 2 yr, wall thickness unchanged; on HRT no change]. Their women were already postmenopausal at
    # baseline, so +10.9 % at the full deficit is a lower bound of the rise from premenopause.
    estrogen_erosion: float = 0.109
    # plasma calcium sensed by the osteoblast lineage (CaSR): recruitment of osteoblast progenitors
    # D_OBu x (Ca/Ca0)**k [fitted: phpt-spine; docs/physiology.md "Calcium sensing by the osteoblast lineage"]
    ob_calcium_k: float = 0.5
    # glucocorticoid [calibrated]; x = dose / (dose + gc_d50)
    gc_d50_mg: float = 7.5
    gc_dobp: float = 0.35
    gc_aoba: float = 0.142
    gc_opg: float = 0.5
    gc_p_rankl: float = 300.0
    gc_aoba_early: float = 1.44  # adapting part of the osteoblast apoptosis rise
    gc_adapt_days: float = 127.0
    gc_mar: float = 0.4
    gc_abs: float = 0.3
    gc_renal: float = 0.005
    gc_gland: float = 0.175  # Martonova 2023: time-averaged PTH x0.9 at their dose [code]
    # vitamin D [assumed]
    # f_VD = D^n / (D^n + K^n), normalised at 30 ng/mL: flat above ~20 ng/mL, steep below, so that
    # PTH rises below a breakpoint near 17.6 ng/mL (Aloia 2006 AJCN 84:602, line-line knot at
    # 44 nmol/L [read, abstract]); n and K [assumed] (the first pass had n = 1, K = 3 ng/mL)
    k25_ng_ml: float = 8.0
    vd_hill: float = 2.0
    # thyroid [assumed]
    thyroid_aoba: float = 0.05
    # alcohol, smoking, eating disorder [assumed]
    alcohol_abs: float = 0.03  # per unit/day
    alcohol_vd: float = 0.03
    alcohol_aoba: float = 0.006
    # smoking acts through estrogen status only (issue 14; Law & Hackshaw 1997): the direct
    # absorption / 25(OH)D / osteoblast terms of the first pass (0.10, 0.10, 0.02) are 0
    smoking_abs: float = 0.0  # per 20 cigarettes/day
    smoking_vd: float = 0.0
    smoking_aoba: float = 0.0
    smoking_estrogen: float = 0.10
    ed_estrogen: float = 0.7
    ed_calcium: float = 0.48
    ed_abs: float = 0.2
    ed_vd: float = 0.33
    ed_aoba: float = 0.08
    ed_p_rankl: float = 0.0  # 50 in the prototype; with the estrogen term it double-counted (loss 5.6 %/yr)
    # treatments (PD); PK in bonesim.physiology.treatments, sources in docs/treatments.md
    ht_d50_mg: float = 0.625  # CEE dose restoring half the estrogen deficit [assumed]
    bp_apoptosis: float = 2.2026  # A_OCa x (1 + k occupancy) [fitted: Heaney 1997 Ac.f cut]
    bp_activity: float = 0.0  # resorption per OC x (1 - k occupancy); fitted to Heaney 1997's balance it went
    # to 0 (bound) without matching it, see scripts/calibrate_physiology.py: left at 0 (mechanism kept)
    tpt_aoba: float = 0.4593  # OB apoptosis A_OBa x (1 - k x) [fitted: Neer 2001 spine]
    tpt_model_um_d: float = 0.006  # modeling-based formation on quiescent surface, um/day per x [assumed]
    tpt_rankl: float = 40.0  # pM/day per x, more activation [assumed]
    aba_rankl_ratio: float = 0.5  # abaloparatide's RANKL effect relative to teriparatide [assumed]
    rom_ec50_ug_ml: float = 5.0  # sclerostin-antibody occupancy [assumed]
    rom_model_um_d: float = 0.1080  # modeling-based formation per occupancy [fitted: FRAME spine]
    rom_opg: float = 0.5  # OPG x (1 + k occupancy) [assumed]
    rom_adapt_days: float = 120.0  # attenuation of the formation response [assumed]
    vd_ng_ml_per_100iu: float = 0.7  # 25(OH)D rise per 100 IU/day D3 [memory, Heaney 2003]
    # disuse, per unit of load deficit d = max(0, 1 - loading.magnitude) [fitted, cells only]: at
    # bed rest (magnitude 0.3, d = 0.7) the quasi-steady osteoclasts double (Zerwekh 1998: cancellous
    # eroded surface x2.2, active osteoclast surface x2) and the osteoblasts stay at baseline (serum
    # formation markers unchanged) [read]; solved jointly on the quasi-steady cells at healthy PTH
    # (tests/physiology/test_loading.py checks the two numbers).
    # Linear in d [assumed]; no term above habitual loading (exercise: the CA's local mechanics).
    disuse_rankl: float = 508.36  # pM/day extra RANKL production per unit deficit (osteocyte RANKL)
    disuse_aoba: float = 1.0543  # A_OBa x (1 + k d): sclerostin-Wnt loss of osteoblast survival
    # systemic mechanostat (bonesim.physiology.mechanostat): the deficit above reads the tissue strain
    # S = min(m, 1) (BV/BV_set)**-n instead of the load alone; d = 1 - S below the set point strain,
    # mech_gain (1 - S) above it. n: trabecular modulus ~ (BV/TV)**n, n ~ 2 [lit, memory: Gibson &
    # Ashby; Morgan & Keaveny 1.5-2]; n = 0 switches the feedback off.
    mech_exponent: float = 2.0
    mech_gain: float = 0.005  # over-strain gain


FACTOR_PARAMS = FactorParams()


def _on(t, start_days, stop_days):
    """1 inside the window (start, stop], else 0: a factor starting at day 0 is off *on* day 0,
    so day 0 (the baseline the CA spins up under) is the state before the factor."""
    return (
        ((t > start_days) & (t <= stop_days)).astype(float)
        if np.ndim(t)
        else float(start_days < t <= stop_days)
    )


class Forcing:
    """The scenario's inputs as functions of time ``t`` (days from day 0; scalars or arrays).

    Parameters
    ----------
    scenario : Scenario
    params : FactorParams
    freeze_at : float, optional
        If given, every input is evaluated at this time whatever ``t`` (spin-up).
    """

    def __init__(
        self,
        scenario: Scenario,
        params: FactorParams = FACTOR_PARAMS,
        freeze_at: float | None = None,
        horizon_days: float = 0.0,
    ):
        self.s = scenario
        self.x = exposures(scenario, max(horizon_days, 1.0))
        # attenuating response to sclerostin inhibition: low-pass of the occupancy
        occ = self.x["romosozumab_ug_ml"] / (self.x["romosozumab_ug_ml"] + params.rom_ec50_ug_ml)
        lp = np.zeros_like(occ)
        a = 1.0 - np.exp(-1.0 / params.rom_adapt_days)
        for i in range(1, len(occ)):
            lp[i] = lp[i - 1] + a * (occ[i - 1] - lp[i - 1])
        self.x["romosozumab_occ"] = occ
        self.x["romosozumab_drive"] = np.maximum(occ - lp, 0.0)
        self.p = params
        self.freeze_at = freeze_at
        sub, men = scenario["subject"], scenario["menopause"]
        self.age0 = sub["age_years"]
        self.female = sub["sex"] == "female"
        self.aging = sub["aging"]
        self.menopause = men["enabled"] and self.female
        self.fmp_days = (men["age_years"] - self.age0) * DAYS_PER_YEAR
        # logistic width so that 10 % -> 90 % of the fall takes transition_years
        self.meno_width = men["transition_years"] * DAYS_PER_YEAR / (2.0 * np.log(9.0))
        self.e_post = men["postmenopausal_estrogen"]

    # -- helpers ---------------------------------------------------------------------------
    def _t(self, t):
        return self.freeze_at if self.freeze_at is not None else t

    def _window(self, section, t):
        sec = self.s[section]
        return _on(t, sec["start_years"] * DAYS_PER_YEAR, sec["stop_years"] * DAYS_PER_YEAR)

    def breakpoints(self, t_end: float) -> list[float]:
        """Times (days) where an input jumps: the integrator restarts there."""
        if self.freeze_at is not None:
            return []
        out = []
        for sec in (
            "glucocorticoid",
            "thyroid",
            "eating_disorder",
            "parathyroid",
            "hormone_therapy",
            "alendronate",
            "teriparatide",
            "abaloparatide",
            "calcium_vitamin_d",
            "loading",
        ):
            for k in ("start_years", "stop_years"):
                d = self.s[sec][k] * DAYS_PER_YEAR
                if 0.0 < d < t_end:
                    out.append(d)
        return sorted(set(out))

    # -- inputs ----------------------------------------------------------------------------
    def age(self, t):
        """Age in years."""
        return self.age0 + self._t(t) / DAYS_PER_YEAR

    def exposure(self, name, t):
        """A drug exposure of :func:`~bonesim.physiology.treatments.exposures` at time t (days)."""
        t = self._t(t)
        return np.interp(t, self.x["day"], self.x[name])

    def estrogen(self, t):
        """Relative estrogen E (1 premenopausal; menopause, smoking, eating disorder lower it;
        hormone therapy restores part of the deficit)."""
        t = self._t(t)
        e = np.ones_like(np.asarray(t, dtype=float))
        if self.menopause:
            z = np.clip((t - self.fmp_days) / self.meno_width, -60, 60)
            e = self.e_post + (1.0 - self.e_post) / (1.0 + np.exp(z))
        if self.female:
            p = self.p
            cig = min(self.s["smoking"]["cigarettes_per_day"], 40.0) / 20.0
            # smoking speeds estrogen catabolism; the ovary's feedback-regulated production defends
            # premenopausal levels, so only the non-ovarian (postmenopausal) part is lowered
            # (Law & Hackshaw 1997: no premenopausal BMD difference, extra loss after menopause)
            ovarian = (
                np.clip((e - self.e_post) / max(1.0 - self.e_post, 1e-9), 0.0, 1.0) if self.menopause else 1.0
            )
            e = e * (1.0 - p.smoking_estrogen * cig * (1.0 - ovarian))
            sev = self.ed_severity(t)
            e = e * (1.0 - p.ed_estrogen * sev)
        cee = self.exposure("cee_mg_per_day", t)
        e = e + (1.0 - e) * cee / (cee + self.p.ht_d50_mg)
        return e

    def drives(self, t):
        """Targets of the adaptation states: estrogen deficit d_E and glucocorticoid effect x_gc."""
        t = self._t(t)
        d_e = (1.0 - self.estrogen(t)) / 0.8
        dose = self.s["glucocorticoid"]["dose_mg_per_day"]
        x_gc = dose / (dose + self.p.gc_d50_mg) * self._window("glucocorticoid", t)
        return d_e, x_gc

    def ed_severity(self, t):
        """Eating-disorder severity: the scenario's inside its window; after ``stop_years`` it falls
        with the weight regain, exp(-(t - stop)/recovery_years) (``recovery_years`` 0: at once).
        Estrogen (menses), IGF-1 (the osteoblast term), intake and absorption all follow it."""
        ed = self.s["eating_disorder"]
        t = self._t(t)
        sev = ed["severity"] * self._window("eating_disorder", t)
        tau = ed["recovery_years"] * DAYS_PER_YEAR
        if tau > 0 and ed["severity"] > 0:
            stop = ed["stop_years"] * DAYS_PER_YEAR
            after = np.asarray(t, dtype=float) > stop
            tail = ed["severity"] * np.exp(-np.maximum(np.asarray(t, dtype=float) - stop, 0.0) / tau)
            sev = np.where(after, tail, sev)
            sev = float(sev) if np.ndim(sev) == 0 else sev
        return sev

    def load_magnitude(self, t):
        """Habitual loading relative to normal: ``loading.magnitude`` inside its window, else 1."""
        on = self._window("loading", self._t(t))
        return np.where(on > 0, self.s["loading"]["magnitude"], 1.0)

    def thyroid(self, t):
        lvl = self.s["thyroid"]["level"]
        w = self._window("thyroid", self._t(t))
        return 1.0 + (lvl - 1.0) * w

    def inputs(self, t, adapt_e, adapt_gc, bv_rel=1.0):
        """All inputs at time ``t`` given the adaptation states and the bone volume: a dict of floats/arrays.

        ``bv_rel`` is the trabecular bone volume relative to the healthy young-adult set point
        (the mechanostat state of the model): the load deficit is read against it
        (:func:`~bonesim.physiology.mechanostat.load_deficit`).

        Keys: cell-module multipliers (``pth_gamma`` is applied in the model), calcium-module
        inputs, and the phase modifiers ``resorption_mult``, ``reversal_mult``, ``mar_mult``.
        """
        p = self.p
        s = self.s
        t = self._t(t)
        age = self.age(t)
        d_e, x_gc = self.drives(t)
        theta = self.thyroid(t)
        units = s["alcohol"]["units_per_day"]
        cig = min(s["smoking"]["cigarettes_per_day"], 40.0) / 20.0
        sev = self.ed_severity(t)
        # age
        if self.aging:
            ramp = np.clip((age - (p.age_peak_years - p.age_ramp_years)) / p.age_ramp_years, 0.0, 1.0)
            k = p.age_aoba_female if self.female else p.age_aoba_male
            age_aoba = 1.0 + k * ramp + p.age_aoba_slope * np.maximum(0.0, age - 50.0)
            age_abs = np.maximum(0.5, 1.0 - p.age_abs_slope * np.maximum(0.0, age - 50.0))
        else:
            age_aoba, age_abs = 1.0, 1.0
        # RANKL: estrogen deficit (partly adapting), glucocorticoid burst (adapting), eating disorder
        # Adaptation of the estrogen response: the fading part is a counter-regulation that builds
        # up with the deficit and decays with its own time constant when estrogen returns (hormone
        # therapy, remission of amenorrhoea), so RANKL production undershoots baseline for a while
        # (recovery). Not clipped at 0 for that reason; bounded so that RANKL production stays
        # positive. The glucocorticoid terms stay clipped (an overshoot there destabilised the
        # calcium module in extreme random scenarios).
        x_tpt = self.exposure("teriparatide_x", t)
        x_aba = self.exposure("abaloparatide_x", t)
        load = self.load_magnitude(t)
        # load deficit read by the osteocytes: habitual loads above 1 (exercise) are left to the CA's
        # local mechanoregulation (no systemic term), the strain rises as bone is lost (mechanostat)
        disuse = load_deficit(np.minimum(load, 1.0), bv_rel, p.mech_exponent, p.mech_gain)
        p_rankl = (
            p.p_rankl_estrogen * (d_e - (1.0 - p.estrogen_sustained) * adapt_e)
            + p.gc_p_rankl * np.maximum(0.0, x_gc - adapt_gc)
            + p.ed_p_rankl * sev
            + p.tpt_rankl * (x_tpt + p.aba_rankl_ratio * x_aba)
            + p.disuse_rankl * disuse
        )
        p_rankl = np.maximum(p_rankl, -0.25 * 168.4195)
        bp = self.exposure("bisphosphonate_umol", t)
        occ_bp = bp / (bp + PK.bp_k_umol)
        occ_rom = self.exposure("romosozumab_occ", t)
        a_oba = (
            age_aoba
            * (1.0 + p.gc_aoba * x_gc + p.gc_aoba_early * np.maximum(0.0, x_gc - adapt_gc))
            * (1.0 - p.tpt_aoba * np.minimum(x_tpt + x_aba, 1.0))
            * (1.0 + p.thyroid_aoba * (theta - 1.0))
            * (1.0 + p.alcohol_aoba * units)
            * (1.0 + p.smoking_aoba * cig)
            * (1.0 + p.ed_aoba * sev)
            * (1.0 + p.disuse_aoba * disuse)
        )
        vd = (
            (
                s["vitamin_d"]["level_ng_ml"]
                + p.vd_ng_ml_per_100iu * self.exposure("supplement_vitamin_d_iu", t) / 100
            )
            * (1.0 - p.alcohol_vd * min(units, 10.0))
            * (1.0 - p.smoking_vd * cig)
            * (1.0 - p.ed_vd * sev)
        )
        h = p.vd_hill
        f_vd = (vd**h / (vd**h + p.k25_ng_ml**h)) / (30.0**h / (30.0**h + p.k25_ng_ml**h))
        # 964 mg/day is identified with the 24.055 mmol/day of Peterson & Riggs (0.01 % apart)
        oral_ca = (
            CA_PARAMS.oral_ca0
            * (
                s["diet"]["calcium_mg_per_day"] * (1.0 - p.ed_calcium * sev)
                + self.exposure("supplement_calcium_mg", t)
            )
            / 964.0
        )
        abs_mult = (
            age_abs
            * (1.0 - p.gc_abs * x_gc)
            * (1.0 - p.alcohol_abs * min(units, 10.0))
            * (1.0 - p.smoking_abs * cig)
            * (1.0 - p.ed_abs * sev)
        )
        gland = (1.0 + (s["parathyroid"]["gland_activity"] - 1.0) * self._window("parathyroid", t)) * (
            1.0 - p.gc_gland * x_gc
        )
        return {
            "p_rankl": p_rankl,
            "d_obp": 1.0 - p.gc_dobp * x_gc,
            # floor: a formation surge beyond this drains plasma calcium into bone faster than the
            # reduced calcium module can supply it (a safeguard, reached only by extreme combinations)
            "a_oba": np.maximum(a_oba, 0.75),
            "beta_opg": (1.0 - p.gc_opg * x_gc) * (1.0 + p.rom_opg * occ_rom),
            "d_ocp": theta,
            "a_oca": 1.0 + p.bp_apoptosis * occ_bp,
            "oc_activity": (1.0 - p.bp_activity * occ_bp) * (1.0 + p.estrogen_erosion * d_e),
            "rankl_free": self.exposure("rankl_free", t),
            "modeling_um_per_day": p.tpt_model_um_d * np.minimum(x_tpt + x_aba, 1.0)
            + p.rom_model_um_d * self.exposure("romosozumab_drive", t),
            "gland": gland,
            "f_vd": f_vd,
            "oral_ca": oral_ca,
            "abs_mult": abs_mult,
            "renal_mult": 1.0 - p.gc_renal * x_gc,
            "estrogen": self.estrogen(t),
            "resorption_mult": 1.0 / theta,
            "reversal_mult": 1.0 / theta,
            "mar_mult": theta * (1.0 - p.gc_mar * x_gc),
            "vitamin_d_eff_ng_ml": vd,
            "load_magnitude": load,
            "load_deficit": disuse,
        }
