"""Bone-cell population model (module A): osteoblast precursors, active osteoblasts, active osteoclasts.

The model is the one of Pivonka et al. (2008), in the form and with the parameter
values of the ``Pivonka_Parameters`` class of the ``bone-models`` package
(version 0.1.0, MIT licence), where the published values of ``D_OBp``, ``K8`` and
``beta_RANKL`` are corrected. Concentrations in pM, time in days.

Three states, ``OBp`` (osteoblast precursors), ``OBa`` (active osteoblasts) and
``OCa`` (active osteoclasts); the ligands TGF-beta, PTH, OPG and RANKL are
algebraic (quasi-steady) functions of the cells and of the systemic inputs:

* TGF-beta is released from the matrix by resorbing osteoclasts and activates
  osteoblast progenitors, represses precursor maturation and drives osteoclast
  apoptosis (coupling of formation to resorption).
* PTH (from the calcium module) raises RANKL on precursors and lowers OPG from
  active osteoblasts.
* RANKL binding to RANK differentiates osteoclast precursors; OPG is its decoy.

Every systemic factor enters through one of the multipliers of
:class:`CellInputs` (see :mod:`bonesim.physiology.factors`).

References
----------
.. [1] Pivonka P, Zimak J, Smith DW, et al. Model structure and control of bone
   remodeling: a theoretical study. Bone 43:249-263 (2008). doi:10.1016/j.bone.2008.03.025
.. [2] Lemaire V, Tobin FL, Greller LD, et al. Modeling the interactions between
   osteoblast and osteoclast activities in bone remodeling. J Theor Biol 229:293-309 (2004).
.. [3] bone-models 0.1.0 (PyPI), ``bone_models/parameters/pivonka_parameters.py`` [code].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CELL_PARAMS", "CellInputs", "CellParams", "cell_rhs", "quasi_steady_cells"]


@dataclass(frozen=True)
class CellParams:
    """Parameters of the Pivonka 2008 model (units pM, 1/day), from ``bone-models`` [code].

    References
    ----------
    .. [1] Pivonka et al., Bone 43:249 (2008); bone-models 0.1.0 ``Pivonka_Parameters``.
    """

    D_OBu: float = 7.00e-4  # pM/d, OB progenitor differentiation
    D_OBp: float = 2.674077909527713e-01  # 1/d (= 5.348 * 0.05; paper value corrected in the code)
    D_OCp: float = 2.1e-3  # pM/d, OC precursor differentiation
    A_OBa: float = 1.89e-1  # 1/d, active OB apoptosis
    A_OCa: float = 7.00e-1  # 1/d, active OC apoptosis
    K1: float = 4.545454545454545e-3  # pM, TGFb activation of OBu
    K2: float = 1.415624253823446e-3  # pM, TGFb repression of OBp
    K3: float = 4.545454545454545e-3  # pM, TGFb activation of OCa apoptosis
    K4: float = 1.5e2  # pM, PTH activation (RANKL)
    K5: float = 2.225814277099542e-1  # pM, PTH repression (OPG)
    K8: float = 4.457452802710724  # pM, RANKL-RANK activation of OCp
    beta_PTH: float = 250.0  # pM/d, intrinsic PTH production (local)
    D_PTH: float = 86.0  # 1/d
    beta_OPG: float = 1.624900e8  # 1/d, OPG per active OB
    D_OPG: float = 0.35  # 1/d
    OPG_max: float = 2.0e8  # pM
    R_RANKL: float = 2.703476e6  # pM/pM, max RANKL per precursor OB
    beta_RANKL: float = 1.684195e2  # pM/d, intrinsic RANKL production
    D_RANKL: float = 1.013246e1  # 1/d
    K_A1: float = 1.0e-3  # 1/pM, RANKL-OPG binding
    K_A2: float = 3.411764e-2  # 1/pM, RANKL-RANK binding
    RANK: float = 10.0  # pM
    alpha_kres: float = 1.0  # TGFb content x resorption rate (pM per pM OCa per day)
    D_TGFb: float = 1.0  # 1/d


CELL_PARAMS = CellParams()


@dataclass(frozen=True)
class CellInputs:
    """Systemic inputs of the cell module at one time (scalars or equal-shape arrays).

    Attributes
    ----------
    pth_rel : systemic PTH relative to the healthy level (already damped, see model).
    p_rankl : extra RANKL production, pM/day (estrogen loss, glucocorticoid burst, ...).
    d_obp, a_oba, beta_opg, d_ocp, a_oca : multipliers of the parameters of the same name
        (``a_oca``: osteoclast apoptosis, raised by bisphosphonates).
    oc_activity : resorption per osteoclast relative to healthy (bisphosphonates lower it); it
        scales the TGF-beta released from the matrix (alpha k_res) and, in the model, the erosion depth.
    rankl_free : fraction of RANKL not bound by a drug (denosumab), 1 without one.
    d_obu : multiplier of D_OBu, the recruitment of osteoblast progenitors (plasma calcium
        sensed by the osteoblast lineage, see model).
    """

    pth_rel: float | np.ndarray = 1.0
    p_rankl: float | np.ndarray = 0.0
    d_obp: float | np.ndarray = 1.0
    a_oba: float | np.ndarray = 1.0
    beta_opg: float | np.ndarray = 1.0
    d_ocp: float | np.ndarray = 1.0
    a_oca: float | np.ndarray = 1.0
    oc_activity: float | np.ndarray = 1.0
    rankl_free: float | np.ndarray = 1.0
    d_obu: float | np.ndarray = 1.0


def _ligands(obp, oba, oca, inp: CellInputs, p: CellParams = CELL_PARAMS):
    """Return (pi_act_OBu, pi_rep_OBp, pi_act_OCa, pi_act_OCp) for cell levels and inputs."""
    tgfb = p.alpha_kres * inp.oc_activity * oca / p.D_TGFb
    pi_act_obu = tgfb / (tgfb + p.K1)
    pi_rep_obp = p.K2 / (tgfb + p.K2)
    pi_act_oca = tgfb / (tgfb + p.K3)
    pth = p.beta_PTH / p.D_PTH * inp.pth_rel
    pi_act_pth = pth / (pth + p.K4)
    pi_rep_pth = p.K5 / (pth + p.K5)
    prod_opg = p.beta_OPG * inp.beta_opg * oba * pi_rep_pth
    opg = prod_opg * p.OPG_max / (prod_opg + p.D_OPG * p.OPG_max)
    rankl_eff = p.R_RANKL * obp * pi_act_pth
    rankl = (
        rankl_eff
        / (1.0 + p.K_A1 * opg + p.K_A2 * p.RANK)
        * (p.beta_RANKL + inp.p_rankl)
        / (p.beta_RANKL + p.D_RANKL * rankl_eff)
        * inp.rankl_free
    )
    rr = p.K_A2 * rankl * p.RANK
    pi_act_ocp = rr / (rr + p.K8)
    return pi_act_obu, pi_rep_obp, pi_act_oca, pi_act_ocp


def cell_rhs(obp, oba, oca, inp: CellInputs, p: CellParams = CELL_PARAMS):
    """Time derivatives (pM/day) of OBp, OBa and OCa (Pivonka 2008, eqs. 1-3).

    >>> d = cell_rhs(*quasi_steady_cells(CellInputs()), CellInputs())
    >>> max(abs(float(x)) for x in d) < 1e-15
    True
    """
    a_obu, r_obp, a_oca, a_ocp = _ligands(obp, oba, oca, inp, p)
    d_obp = p.D_OBp * inp.d_obp
    dobp = p.D_OBu * inp.d_obu * a_obu - d_obp * obp * r_obp
    doba = d_obp * obp * r_obp - p.A_OBa * inp.a_oba * oba
    doca = p.D_OCp * inp.d_ocp * a_ocp - p.A_OCa * inp.a_oca * oca * a_oca
    return dobp, doba, doca


def _cells_given_oca(oca, inp: CellInputs, p: CellParams):
    tgfb = p.alpha_kres * inp.oc_activity * oca / p.D_TGFb
    pi_act_obu = tgfb / (tgfb + p.K1)
    pi_rep_obp = p.K2 / (tgfb + p.K2)
    obp = p.D_OBu * inp.d_obu * pi_act_obu / (p.D_OBp * inp.d_obp * pi_rep_obp)
    oba = p.D_OBu * inp.d_obu * pi_act_obu / (p.A_OBa * inp.a_oba)
    return obp, oba


def quasi_steady_cells(inp: CellInputs, p: CellParams = CELL_PARAMS, *, iterations: int = 200):
    """Steady state (OBp, OBa, OCa) of the cell module for given inputs, vectorised over arrays.

    At steady state OBp and OBa are explicit functions of OCa (set dOBp/dt = dOBa/dt = 0),
    so the steady state is the root of one scalar function of OCa, found by bisection on
    log(OCa) (monotone: more osteoclasts release more TGF-beta, which removes osteoclasts).
    Used to give the CA the formation efficiency of the *quasi-steady* cell state, so
    that the transient lag of osteoblasts behind osteoclasts is not counted twice (the
    CA makes its own remodeling space).

    Returns
    -------
    tuple of ndarray
        OBp, OBa, OCa in pM.

    Examples
    --------
    >>> obp, oba, oca = quasi_steady_cells(CellInputs())
    >>> [f"{float(x):.4e}" for x in (obp, oba, oca)]
    ['6.1964e-04', '5.5839e-04', '8.0696e-04']
    """
    shape = np.broadcast(*(np.asarray(v) for v in vars(inp).values())).shape
    lo = np.full(shape, np.log(1e-9))
    hi = np.full(shape, np.log(1e-1))

    def g(log_oca):
        oca = np.exp(log_oca)
        obp, oba = _cells_given_oca(oca, inp, p)
        return cell_rhs(obp, oba, oca, inp, p)[2]

    # g > 0 below the root, < 0 above it
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
        if np.all(hi - lo < 1e-15):
            break
    oca = np.exp(0.5 * (lo + hi))
    obp, oba = _cells_given_oca(oca, inp, p)
    return obp, oba, oca
