"""Per-voxel tissue mineral density (TMD) and volumetric BMD (vBMD) of a CA frame, mg HA/cm^3.

The mineral content of bone is a function of its age (days since it was formed),
the law of :mod:`bonesim.physiology.mineralisation` (primary and secondary
mineralisation; one law for the physiology model and the CA). A CA voxel holds a
bone fraction b (0..255) and the day its newest bone was formed (``formed_day``,
−1 for bone that was there on day 0). Its mineral, as a density over the voxel:

    new = b - b_old                          (bone formed during the run)
    rho = tmd_max * (b_old * m_old(day) + new * m(day - formed_day)) / 255

* ``b_old`` is the part of the voxel's bone that predates the run. It is exact for
  a voxel that only gained bone (b_old = its day-0 fraction) and for one that was
  emptied and refilled (b_old = 0). For a voxel partly resorbed and then refilled,
  ``analyze`` takes the lowest fraction seen in a saved frame since day 0
  (resorption is taken to remove the newest bone first, and the refill lies on
  what is left): a cavity dug and refilled between two saved frames counts as old
  bone. All new bone of a voxel takes the age of its newest bone, so a voxel
  refilled over several steps is slightly too young (by at most the duration of its
  refill, days against the secondary phase's years).
* ``m_old(day)`` (:func:`bonesim.physiology.mineralisation.old_bone_m`) is the mean
  content of the bone present on day 0: the steady age distribution of the day-0
  turnover, ageing with the run. ``analyze`` takes that turnover from what the CA
  resorbed in the second half of its spin-up (which steps under the day-0
  parameters), or, for a result without it, the nominal
  :func:`day0_turnover_per_day`. Resorption removes bone of every age alike, so it
  is also the mean of what is left of it.

vBMD is the mineral over the total volume (mg HA per cm^3 of tissue + marrow, as a
QCT trabecular vBMD); TMD is the mineral over the bone volume (the mean degree of
mineralisation of the bone matrix, as micro-CT TMD or qBEI). Both depend only on
the bone and map fields, which NumPy and CUDA produce bit-identically, so the
summaries of the two backends agree to the last bit as well.
"""

from __future__ import annotations

import numpy as np

from bonesim.defaults import DAYS_PER_YEAR
from bonesim.physiology.mineralisation import MINERALISATION, MineralisationLaw
from bonesim.volume import BONE_FULL

__all__ = ["day0_turnover_per_day", "mineral_density", "mineral_summary"]


def mineral_density(
    bone: np.ndarray,
    formed_day: np.ndarray,
    day: float,
    old_m: float,
    *,
    bone_old: np.ndarray | None = None,
    law: MineralisationLaw = MINERALISATION,
) -> np.ndarray:
    """Mineral per voxel volume (mg HA/cm^3 of the voxel), float64, the shape of ``bone``.

    Parameters
    ----------
    bone : uint8 bone fraction (0..255).
    formed_day : int32, the last day each voxel gained bone (−1: none since day 0).
    day : the day of the frame (a ``formed_day`` after it counts as age 0).
    old_m : mean mineral content (0..1) of the bone present on day 0, at ``day``.
    bone_old : the part of each voxel's bone that predates the run (0..255);
        default: all of it where ``formed_day < 0``, none elsewhere.

    The TMD of a voxel is this density divided by its bone fraction ``bone / 255``.

    >>> b = np.array([255, 255, 0, 255], np.uint8); fd = np.array([-1, 20, -1, 100], np.int32)
    >>> law = MineralisationLaw()
    >>> rho = mineral_density(b, fd, 48.0, 0.9, law=law)
    >>> rho.round(1).tolist()  # 1200 x 0.9; 1200 x m(28 d) = 1200 x 0.638; none yet at age 0
    [1080.0, 765.5, 0.0, 0.0]
    """
    b = np.asarray(bone).astype(np.float64)
    fd = np.asarray(formed_day)
    new_mask = fd >= 0
    if bone_old is None:
        old = np.where(new_mask, 0.0, b)
    else:
        old = np.where(new_mask, np.minimum(np.asarray(bone_old, dtype=np.float64), b), b)
    m_new = law.m(np.maximum(float(day) - fd, 0.0))
    return law.tmd_max_mg_cm3 * (old * float(old_m) + (b - old) * m_new) / BONE_FULL


def mineral_summary(
    bone: np.ndarray,
    formed_day: np.ndarray,
    day: float,
    old_m: float,
    *,
    bone_old: np.ndarray | None = None,
    law: MineralisationLaw = MINERALISATION,
) -> dict[str, float]:
    """vBMD (mineral over the total volume) and TMD (over the bone volume), mg HA/cm^3.

    Keys ``vbmd_mgha_cm3`` and ``tmd_mgha_cm3`` (NaN without bone); see
    :func:`mineral_density`. Only voxels holding bone are evaluated.

    >>> b = np.zeros((4, 4, 4), np.uint8); b[:2] = 255; fd = np.full(b.shape, -1, np.int32)
    >>> s = mineral_summary(b, fd, 0.0, 0.85)
    >>> round(s["vbmd_mgha_cm3"], 6), round(s["tmd_mgha_cm3"], 6)
    (510.0, 1020.0)
    """
    b = np.asarray(bone)
    sel = np.flatnonzero(b.reshape(-1))
    n = b.size
    bv = float(b.reshape(-1)[sel].sum(dtype=np.int64)) / BONE_FULL
    rho = mineral_density(
        b.reshape(-1)[sel],
        np.asarray(formed_day).reshape(-1)[sel],
        day,
        old_m,
        bone_old=None if bone_old is None else np.asarray(bone_old).reshape(-1)[sel],
        law=law,
    )
    mineral = float(rho.sum())
    return {
        "vbmd_mgha_cm3": mineral / n if n else float("nan"),
        "tmd_mgha_cm3": mineral / bv if bv > 0 else float("nan"),
    }


def day0_turnover_per_day(acf_per_year: float, erosion_depth_um: float, bs_bv_per_um: float) -> float:
    """Bone turnover (fraction of the bone resorbed per day) of the day-0 parameters.

    The spin-up of a CA run steps under the first row of the daily parameters, so the
    bone present on day 0 has the ages of that row's turnover: each activation removes
    a cavity of depth E, so the resorbed volume per bone surface is Ac.f x E per year
    (BFR/BS = Ac.f x W.Th at steady state; Parfitt 1983 [memory]) and the turnover is
    BS/BV x Ac.f x E. BS/BV is that of the day-0 bone (1/um).

    >>> round(day0_turnover_per_day(0.3, 50.0, 0.015) * 365.25, 6)  # 22.5 %/yr
    0.225
    """
    return float(bs_bv_per_um) * float(acf_per_year) * float(erosion_depth_um) / DAYS_PER_YEAR
