"""Calcium-PTH-calcitriol loop (module B): a reduced Peterson & Riggs (2010) model.

Nine states in the units of the original (mmol, pmol, litres, **hours**):
``P`` plasma calcium (mmol), ``PTH`` plasma PTH (pmol), ``S`` parathyroid gland
pool, ``PTmax`` gland capacity, ``B`` calcitriol (pmol), ``AOH`` renal
1-alpha-hydroxylase, ``R`` calcitriol-dependent gut transport, ``T`` calcium in the
gut (mmol), ``Q`` the rapidly exchangeable bone calcium pool (mmol). Equations and parameter values are those of OpenBoneMin
(``inst/OpenBoneMin.cpp``, Metrum Research Group, the code of Peterson & Riggs 2010
with the estrogen kidney term of Riggs et al. 2012) [code].

Dropped from Peterson & Riggs: phosphate (PhosEffect = 1), RUNX2/CREB/BCL2, the
exchangeable/non-exchangeable bone pools and the drug PK; their own bone-cell block
is replaced by module A (:mod:`bonesim.physiology.cells`), which drives the bone
calcium fluxes J14/J15. Changes from OpenBoneMin (documented in docs/physiology.md):

* the osteoclast- and osteoblast-dependent fractions of the bone fluxes use one
  fraction ``F_BONE`` so that balanced turnover (rho_OC = rho_OB) has no net flux;
* the cell-independent (passive) part of the bone-to-plasma flux comes from the
  exchangeable pool ``Q`` (~100 mmol, Peterson & Riggs) instead of a constant, so a
  raised plasma calcium fills that pool within days instead of draining calcium into
  bone for ever (without it, primary hyperparathyroidism *lowered* urinary calcium);
* only the trabecular share s = 0.47 of the cell-dependent skeletal flux follows the cells
  (module A stands for the trabecular compartment; the cortical rest stays at its healthy
  rate), F (1 + s (rho - 1)) [read, secondary sources; docs/physiology.md "Trabecular share"];
* the renal estrogen term is weighted (``renal_estrogen_weight``): with full weight
  it nearly doubled urinary calcium after menopause in the prototype;
* calcitriol's direct suppression of the gland (pool S and capacity PTmax) reads
  c0 + w (c - c0) with ``gland_calcitriol_weight`` w = 0.2 [fitted to the vitamin-D
  deficiency rows vitd-pth and vitd-calcium]: at full weight the gland rose with the fall of
  calcitriol independently of plasma calcium, and that PTH raised serum calcium above normal
  through the kidney (2.40 mM at 25(OH)D 10 ng/mL; clinically it is normal or low);
* the constant of the maximal tubular reabsorption is solved so that the nominal
  state (Ca 2.35 mM, PTH 3.85 pM, calcitriol 90 pM) is an exact steady state.

References
----------
.. [1] Peterson MC, Riggs MM. A physiologically based mathematical model of
   integrated calcium homeostasis and bone remodeling. Bone 46:49-63 (2010).
.. [2] Riggs MM, Peterson MC, Gastonguay MR. Multiscale physiology-based modeling of
   mineral bone disorder in patients with impaired kidney function. J Clin Pharmacol
   52:45S-53S (2012) (estrogen kidney term ``tmEST``).
.. [3] OpenBoneMin, https://github.com/metrumresearchgroup/OpenBoneMin, inst/OpenBoneMin.cpp [code].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

__all__ = [
    "CALCIUM_STATES",
    "CA_PARAMS",
    "CalciumInputs",
    "CalciumParams",
    "calcium_rhs",
    "calcium_steady_state",
]

CALCIUM_STATES = ("P", "PTH", "S", "PTmax", "B", "AOH", "R", "T", "Q")


@dataclass(frozen=True)
class CalciumParams:
    """Peterson-Riggs parameters (OpenBoneMin values) [code]; rates per hour."""

    V1: float = 14.0  # L, plasma volume
    P0: float = 32.9  # mmol (Ca 2.35 mM)
    PTH0: float = 53.9  # pmol (3.85 pM)
    B0: float = 1260.0  # pmol (90 pM calcitriol)
    CaDay: float = 88.0  # mmol/d, bone-plasma calcium exchange
    F_BONE: float = 0.107763  # cell-dependent fraction of the bone fluxes (FracJ14)
    T58: float = 6249.09
    T59: float = 11.7387
    T61: float = 96.25
    kout: float = 100.0 / 14.0  # 1/h, PTH elimination
    T64: float = 0.05
    T65: float = 6.3
    T67: float = 1.54865
    T69: float = 0.10
    alph_oh_gam: float = 0.111241
    T16: float = 1.06147
    Reabs50: float = 1.57322
    T7: float = 2.0
    T9: float = 90.0
    GFR0: float = 100.0 / 16.667  # L/h
    T33: float = 0.003
    T34: float = 0.037
    T35: float = 90.0
    T28: float = 0.9
    T310: float = 0.105929
    T77: float = 0.909359
    T80: float = 4.0
    T81: float = 0.75
    T87: float = 0.0495
    T70: float = 0.01
    T71: float = 0.03
    ctriol_max: float = 4.1029
    ctriol_min: float = 0.9
    ctriol_gam: float = 12.5033
    PTout: float = 1.604e-4  # 1/h, gland capacity (tau ~ 260 d)
    oral_ca0: float = 24.055 / 24.0  # mmol/h (964 mg/d)
    Q0: float = 100.0  # mmol, exchangeable bone calcium (Peterson & Riggs 2010)
    max_tm_est_kid: float = 0.923737
    renal_estrogen_weight: float = 0.25  # [calibrated] see module docstring
    # weight of calcitriol's direct (VDR) suppression of the gland, S and PTmax [fitted, module docstring]
    gland_calcitriol_weight: float = 0.2
    # share of the whole skeleton's remodeling calcium flux that is trabecular (the compartment
    # the cell module stands for): 20 % of skeletal mass x 35 %/yr against 80 % x 10 %/yr
    # cortical -> 7/15 = 0.47 [read, secondary sources; docs/physiology.md "Trabecular share"]
    trabecular_turnover_share: float = 0.47

    @property
    def ca0(self) -> float:
        return self.P0 / self.V1

    @property
    def pthc0(self) -> float:
        return self.PTH0 / self.V1

    @property
    def c80(self) -> float:
        return self.B0 / self.V1


CA_PARAMS = CalciumParams()


@dataclass(frozen=True)
class CalciumInputs:
    """Systemic inputs of the calcium module at one time.

    Attributes
    ----------
    gland : parathyroid secretion multiplier G (primary hyperparathyroidism > 1).
    f_vd : 25(OH)D substrate factor of 1-alpha-hydroxylase (1 at 30 ng/mL).
    oral_ca : dietary calcium, mmol/h.
    abs_mult : multiplier of the fraction of oral calcium absorbed.
    renal_mult : multiplier of PTH-sensitive tubular reabsorption.
    estrogen : relative estrogen (1 premenopausal) for the renal term tmEST.
    rho_oc, rho_ob : osteoclasts and osteoblasts relative to healthy (bone fluxes).
    """

    gland: float = 1.0
    f_vd: float = 1.0
    oral_ca: float = CA_PARAMS.oral_ca0
    abs_mult: float = 1.0
    renal_mult: float = 1.0
    estrogen: float = 1.0
    rho_oc: float = 1.0
    rho_ob: float = 1.0


def _derived(p: CalciumParams):
    ca0, pthc0, c80 = p.ca0, p.pthc0, p.c80
    g = p.alph_oh_gam
    t66 = (p.T67**g + pthc0**g) / pthc0**g
    # T60 such that T63(Ca0) = 385 pmol/h (= kout * PTH0)
    inner = (p.T58 - p.T61) * ca0**p.T59 / (p.T58 - p.kout * p.PTH0) - ca0**p.T59
    t60 = np.exp(np.log(inner) / p.T59)
    inner_c = (p.ctriol_max - p.ctriol_min) * c80**p.ctriol_gam / (p.ctriol_max - 1) - c80**p.ctriol_gam
    ctriol50 = np.exp(np.log(inner_c) / p.ctriol_gam)
    return t66, t60, ctriol50


_DERIVED = _derived(CA_PARAMS)


def gut_t0(p: CalciumParams = CA_PARAMS) -> float:
    """Gut calcium T at the nominal steady state (R = 0.5): oral uptake = absorption."""
    t85 = p.T77 * 0.5**p.T80 / (0.5**p.T80 + p.T81**p.T80)
    # OpenBoneMin: T29 = (T28 - T310) T0 / T310 so that the saturable term T31 = T310 at T0
    return brentq(lambda t: p.oral_ca0 * t85 - (p.T310 * t / (t + p.T81) + p.T87 * t), 1e-9, 1e3, xtol=1e-15)


_T0 = gut_t0()


def fluxes(y, inp: CalciumInputs, p: CalciumParams = CA_PARAMS, reabs_const: float | None = None):
    """Calcium fluxes in mmol/h: dict with absorption J40, urine J27, bone J14, J15 and gut uptake."""
    P, PTH, _, _, B, _, R, T, Q = y
    ca, pthc, c8 = P / p.V1, PTH / p.V1, B / p.V1
    ca0, pthc0 = p.ca0, p.pthc0
    # bone (module A drives the cell-dependent fractions; the passive part exchanges with Q)
    t15 = p.CaDay / (ca0 * p.V1 * 24.0)
    # the cells are the trabecular compartment: its share s of skeletal turnover follows them, the
    # cortical rest (1 - s) stays at its healthy rate (no cortical cells in the model)
    s = p.trabecular_turnover_share
    skel_oc = 1.0 + s * (inp.rho_oc - 1.0)
    skel_ob = 1.0 + s * (inp.rho_ob - 1.0)
    j14 = p.CaDay / 24.0 * ((1.0 - p.F_BONE) * Q / p.Q0 + p.F_BONE * skel_oc)
    j15 = t15 * P * (1.0 - p.F_BONE) + t15 * p.P0 * p.F_BONE * skel_ob
    # kidney
    gfr = p.GFR0
    ca_filt = 0.3 * gfr * ca
    m = (1.0 - p.max_tm_est_kid) / 0.9 * p.renal_estrogen_weight
    tm_est = 1.0 - m + m * inp.estrogen
    c = _REABS_CONST if reabs_const is None else reabs_const
    reabs_max = tm_est * (0.3 * gfr * ca0 - c) * (p.Reabs50 + ca0) / ca0
    t17 = pthc0 * p.T16 - pthc0
    reabs_pth = p.T16 * pthc / (pthc + t17)
    reabs = reabs_max * ca / (p.Reabs50 + ca) * reabs_pth * inp.renal_mult
    j27 = np.maximum(0.0, (2.0 - p.T7 * c8 / (c8 + p.T9)) * (ca_filt - reabs))
    # gut
    t29 = (p.T28 - p.T310) * _T0 / p.T310
    t31 = p.T28 * T / (T + t29)
    j40 = t31 * T * (R / 0.5) / (T + p.T81) + p.T87 * T
    t85 = p.T77 * R**p.T80 / (R**p.T80 + p.T81**p.T80)
    uptake = inp.oral_ca * t85 * inp.abs_mult
    return {"j14": j14, "j15": j15, "j27": j27, "j40": j40, "uptake": uptake}


def calcium_rhs(y, inp: CalciumInputs, p: CalciumParams = CA_PARAMS):
    """Derivatives per hour of the eight calcium-module states (Peterson & Riggs 2010).

    >>> d = calcium_rhs(calcium_steady_state(), CalciumInputs())
    >>> bool(np.max(np.abs(d / calcium_steady_state())) < 1e-14)
    True
    """
    P, PTH, S, PTmax, B, AOH, R, _, Q = y
    t66, t60, ctriol50 = _DERIVED
    ca, pthc, c8 = P / p.V1, PTH / p.V1, B / p.V1
    f = fluxes(y, inp, p)
    dP = f["j14"] - f["j15"] - f["j27"] + f["j40"]
    t15 = p.CaDay / (p.ca0 * p.V1 * 24.0)
    dQ = t15 * P * (1.0 - p.F_BONE) - p.CaDay / 24.0 * (1.0 - p.F_BONE) * Q / p.Q0
    dT = f["uptake"] - f["j40"]
    # calcitriol-dependent gut transport R
    hill = c8 / (p.T35 + c8)
    t36 = p.T33 + (p.T34 - p.T33) * hill
    t37 = p.T34 - (p.T34 - p.T33) * hill
    dR = t36 * (1.0 - R) - t37 * R
    # PTH secretion: calcium-sensing curve x gland pool x capacity x G
    t63 = p.T58 - (p.T58 - p.T61) * ca**p.T59 / (ca**p.T59 + t60**p.T59)
    dPTH = t63 * (S / 0.5) * PTmax * inp.gland - p.kout * PTH
    # calcitriol as the parathyroid reads it (VDR): the deviation from nominal is weighted
    c8_gland = p.c80 + p.gland_calcitriol_weight * (c8 - p.c80)
    t72 = 90.0 * (p.ca0 / ca) ** 0.9
    t74 = np.tanh(p.T71 * (c8_gland - t72))
    t75 = p.T70 * (0.85 * (1.0 + t74) + 0.15)
    t76 = p.T70 * (0.85 * (1.0 - t74) + 0.15)
    dS = (1.0 - S) * t76 - S * t75
    ctriol_eff = p.ctriol_max - (p.ctriol_max - p.ctriol_min) * c8_gland**p.ctriol_gam / (
        c8_gland**p.ctriol_gam + ctriol50**p.ctriol_gam
    )
    dPTmax = p.PTout * (ctriol_eff - PTmax)
    # calcitriol: 1-alpha-hydroxylase driven by PTH, limited by 25(OH)D substrate
    g = p.alph_oh_gam
    pthc = np.maximum(pthc, 0.0)
    t68 = t66 * pthc**g / (p.T67**g + pthc**g)
    dAOH = p.T65 * t68 * inp.f_vd - p.T64 * AOH
    dB = AOH - p.T69 * B
    return np.array([dP, dPTH, dS, dPTmax, dB, dAOH, dR, dT, dQ])


def _solve_reabs_const(p: CalciumParams = CA_PARAMS) -> float:
    """Constant of ReabsMax making urine = absorption at the nominal state (OpenBoneMin: 0.149997)."""
    y0 = np.array([p.P0, p.PTH0, 0.5, 1.0, p.B0, p.T69 * p.B0, 0.5, _T0, p.Q0])
    inp = CalciumInputs()
    return brentq(
        lambda c: fluxes(y0, inp, p, reabs_const=c)["j27"] - fluxes(y0, inp, p, reabs_const=c)["j40"],
        0.0,
        1.0,
        xtol=1e-16,
    )


_REABS_CONST = _solve_reabs_const()


def calcium_steady_state(p: CalciumParams = CA_PARAMS) -> np.ndarray:
    """The healthy nominal steady state (P, PTH, S, PTmax, B, AOH, R, T, Q).

    >>> y = calcium_steady_state()
    >>> round(float(y[0] / 14), 3), round(float(y[1] / 14), 3), round(float(y[4] / 14), 1)
    (2.35, 3.85, 90.0)
    """
    return np.array([p.P0, p.PTH0, 0.5, 1.0, p.B0, p.T69 * p.B0, 0.5, _T0, p.Q0])
