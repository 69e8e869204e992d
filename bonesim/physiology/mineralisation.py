"""Population-level mineralisation: tissue mineral density from the age of the bone packets.

New bone matrix (osteoid) is laid down unmineralised; after a mineralisation lag it
takes up mineral quickly (*primary* mineralisation, to about two thirds of its final
content within a few weeks) and then slowly over years (*secondary* mineralisation)
[1, 2]. The mineral content of a packet is therefore a function of its age ``a``
(days since it was formed), as a fraction of the fully mineralised content:

    m(a) = 0                                                   a < lag
    m(a) = m_p (1 - exp(-(a - lag)/tau_p)) + (1 - m_p)(1 - exp(-(a - lag)/tau_s))

The bone of a site is a population of packets of all ages. Remodeling removes packets
without regard to their age (an assumption: the BMU does not choose old bone) and
adds new packets at the formation rate; the mean tissue mineral density (TMD) is then
the average of m over the age distribution, and the site's BMD is BV x TMD. At a
steady turnover k (fraction of the bone renewed per year) the ages are exponential
with mean 1/k, so TMD falls when turnover rises (young, less mineralised bone) and
rises slowly when turnover falls: a large part of the BMD gain on antiresorptives
and of the BMD recovery after a high-turnover state ends (hyperthyroidism) [3].

A CA can use the same law per voxel: each voxel keeps the day it was formed, and its
TMD is ``law.m(age)`` times the fully mineralised density (see :class:`MineralisationLaw`).

References
----------
.. [1] Boivin G, Meunier PJ. The degree of mineralization of bone tissue measured by
   computerized quantitative contact microradiography. Calcif Tissue Int 70:503-511 (2002)
   (primary mineralisation to 50-70 % of the final content, secondary over years) [memory].
.. [2] Fuchs RK, Allen MR, Ruppel ME, et al. In situ examination of the time-course for
   secondary mineralization of Haversian bone using synchrotron FTIR microspectroscopy.
   Matrix Biol 27:34-41 (2008): 67 % of the interstitial level by day 18 (rabbit) [read].
.. [3] Ruffoni D, Fratzl P, Roschger P, Klaushofer K, Weinkamer R. The bone mineralization
   density distribution as a fingerprint of the mineralization process. Bone 40:1308-1319
   (2007) (turnover and mineralisation kinetics set the mean mineral content) [memory].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from bonesim.defaults import DAYS_PER_YEAR

__all__ = ["MINERALISATION", "MineralisationLaw", "mineral_content", "old_bone_m", "steady_age_weights"]


@dataclass(frozen=True)
class MineralisationLaw:
    """Mineral content of a bone packet as a function of its age (fraction of the final content).

    Attributes
    ----------
    lag_days : mineralisation lag (osteoid maturation) [memory, Parfitt 1983: 10-20 d].
    primary_fraction : fraction reached in the primary phase [read, Fuchs 2008: 67 % at 18 d].
    primary_days : time constant of the primary phase [read, Fuchs 2008, rabbit; days].
    secondary_years : time constant of the secondary phase [assumed; "several years" in humans].
    tmd_max_mg_cm3 : fully mineralised tissue density, mg HA/cm^3 [memory, ~1200].

    >>> law = MineralisationLaw()
    >>> float(law.m(0.0)), round(float(law.m(28.0)), 3), round(float(law.m(36525.0)), 3)
    (0.0, 0.638, 1.0)
    """

    lag_days: float = 10.0
    primary_fraction: float = 0.65
    primary_days: float = 5.0
    secondary_years: float = 3.0
    tmd_max_mg_cm3: float = 1200.0

    def m(self, age_days):
        a = np.maximum(np.asarray(age_days, dtype=float) - self.lag_days, 0.0)
        ts = self.secondary_years * DAYS_PER_YEAR
        return self.primary_fraction * (1.0 - np.exp(-a / self.primary_days)) + (
            1.0 - self.primary_fraction
        ) * (1.0 - np.exp(-a / ts))

    def steady_mean(self, turnover_per_year: float) -> float:
        """Mean m over the exponential age distribution of a steady turnover k (per year)."""
        k = turnover_per_year / DAYS_PER_YEAR
        lag = np.exp(-k * self.lag_days)
        tp, ts = self.primary_days, self.secondary_years * DAYS_PER_YEAR
        return float(
            lag * (self.primary_fraction / (1.0 + k * tp) + (1.0 - self.primary_fraction) / (1.0 + k * ts))
        )


MINERALISATION = MineralisationLaw()


def steady_age_weights(turnover_per_day: float) -> np.ndarray:
    """Ages 0, 1, 2, ... days of the bone of a steady turnover k (per day): weights summing to 1.

    The discrete steady state of the daily bookkeeping of :func:`mineral_content`
    (a fraction k of every packet resorbed each day): w(a) = k (1 - k)^a, cut at
    40 mean lives (or 200 years) and renormalised.
    """
    k0 = max(float(turnover_per_day), 1e-9)
    amax = int(min(40.0 / k0, 200 * DAYS_PER_YEAR))
    w = k0 * (1.0 - k0) ** np.arange(amax, dtype=float)
    return w / w.sum()


def old_bone_m(
    turnover_per_day: float, days: np.ndarray | float, law: MineralisationLaw = MINERALISATION
) -> np.ndarray:
    """Mean mineral content m, at ``days`` after day 0, of the bone that was there on day 0.

    That bone has the steady age distribution of the day-0 turnover
    (:func:`steady_age_weights`) and ages with the run: sum_a w(a) m(a + t).
    Resorption removes packets of every age alike, so the mean of the survivors
    is the same. At t = 0 it equals ``law.steady_mean`` of that turnover (to the
    discretisation of the ages in whole days).
    """
    w = steady_age_weights(turnover_per_day)
    t = np.asarray(days, dtype=float)
    a = np.arange(len(w), dtype=float)
    out = np.array([float(w @ law.m(a + ti)) for ti in t.reshape(-1)])
    return out.reshape(t.shape)


def mineral_content(
    bv_rel: np.ndarray,
    resorbed: np.ndarray,
    formed: np.ndarray,
    law: MineralisationLaw = MINERALISATION,
) -> tuple[np.ndarray, np.ndarray]:
    """Bone mineral (BV x TMD) and mean TMD over days, relative to day 0.

    Parameters
    ----------
    bv_rel : bone volume relative to day 0, per day.
    resorbed, formed : fraction of the current bone volume resorbed / formed on each day.
        Day 0's resorbed fraction sets the turnover of the established state before day 0.

    Returns
    -------
    bmd_rel, tmd_rel : ndarray
        BV x TMD and TMD relative to their day-0 values (TMD is mineral / volume of the
        packet bookkeeping; BMD = ``bv_rel`` x TMD).
    """
    n = len(bv_rel)
    # survival of a packet: the fraction resorbed each day is taken from every packet alike
    lam = np.concatenate([[0.0], np.cumsum(-np.log1p(-np.minimum(resorbed[1:], 0.5)))])
    surv = np.exp(-lam)
    # packets formed from day 1 on: volume bv[d] * formed[d] at formation, then surviving e^-(lam(t)-lam(d))
    src = np.zeros(n)
    src[1:] = bv_rel[1:] * formed[1:] * np.exp(lam[1:])
    ages = np.arange(n, dtype=float)
    new = surv * fftconvolve(src, law.m(ages))[:n]
    # bone present at day 0: steady age distribution of the day-0 turnover
    w = steady_age_weights(float(resorbed[0]))
    amax = len(w)
    # old(t) = sum_a w(a) m(a + t): a correlation
    mm = law.m(np.arange(amax + n, dtype=float))
    old = fftconvolve(mm, w[::-1])[amax - 1 : amax - 1 + n]
    mineral = surv * old + new  # per unit day-0 volume (old bone's volume is 1 * surv)
    volume = surv * (1.0 + np.cumsum(src))  # the same bookkeeping for volume
    tmd = mineral / volume
    tmd_rel = tmd / tmd[0]
    return bv_rel * tmd_rel, tmd_rel
