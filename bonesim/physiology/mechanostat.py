"""Systemic mechanostat: the load signal of the osteocytes read against the bone that carries it.

Frost's mechanostat: under an unchanged habitual load, the tissue strain in the bone that remains
rises as bone is lost, and the osteocytes read the strain, not the load. For trabecular bone the
apparent modulus scales as a power of the bone volume fraction, E_app ∝ (BV/TV)^n with n ≈ 2
(Gibson & Ashby, open-cell foams; Morgan & Keaveny report site-specific exponents of about 1.5-2
[memory, not verified here]). At a fixed apparent stress the tissue strain then scales as

    S = m · (BV / BV_set)^(-n)

relative to the set point: ``m`` is the habitual load magnitude (scenario ``[loading]``, 1 habitual)
and ``BV_set`` the bone volume of the healthy young adult steady state (``bv_rel`` = 1). The signal
acts on the cells through the two channels of the systemic disuse factor (docs/physiology.md,
section 3: osteocyte RANKL, sclerostin-Wnt osteoblast survival), with the load deficit

    d = 1 - S            (S < 1: under-strain, the disuse law as fitted to Zerwekh 1998, capped at 1)
    d = g · (1 - S)      (S > 1: over-strain; negative: less RANKL, longer osteoblast life)

At ``bv_rel`` = 1 the deficit is the old ``max(0, 1 - m)``: the healthy adult stays stationary and
the disuse rows start as before. ``n = 0`` switches the feedback off (S = m).

Parameters (``FactorParams``): ``mech_exponent`` n = 2 [lit, memory]; ``mech_gain`` g = 0.005
[fitted, as a bound: the largest round value at which the fitted row aging-woman-before50 still
passes; larger gains slow the late-life loss more but break the fitted aging rows, see
docs/physiology.md, "Systemic mechanostat"]. The bone volume is the model's ODE state (BMU balance
of the dynamic cells), starting from :func:`~bonesim.physiology.model.initial_bone_volume`.

References
----------
.. [1] Frost HM. Bone "mass" and the "mechanostat": a proposal. Anat Rec 219:1-9 (1987) [memory].
.. [2] Gibson LJ, Ashby MF. Cellular Solids, 2nd ed., Cambridge University Press (1997) [memory].
.. [3] Morgan EF, Bayraktar HH, Keaveny TM. Trabecular bone modulus-density relationships depend
   on anatomic site. J Biomech 36:897-904 (2003) [memory].
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_deficit", "strain_ratio"]


def strain_ratio(load, bv_rel, exponent: float):
    """Tissue strain relative to the set point, ``load * bv_rel**(-exponent)``.

    >>> float(strain_ratio(1.0, 0.5, 2.0))
    4.0
    """
    b = np.maximum(np.asarray(bv_rel, dtype=float), 1e-3)
    return np.asarray(load, dtype=float) * b ** (-exponent)


def load_deficit(load, bv_rel, exponent: float, gain: float):
    """Signed load deficit read by the osteocytes (> 0 disuse, < 0 over-strain).

    >>> float(load_deficit(0.3, 1.0, 2.0, 0.5))  # bed rest at the set point: the old deficit
    0.7
    >>> round(float(load_deficit(1.0, 0.9, 2.0, 0.1)), 4)  # 10 % bone lost under habitual load
    -0.0235
    """
    s = strain_ratio(load, bv_rel, exponent)
    d = 1.0 - s
    return np.where(d > 0.0, np.minimum(d, 1.0), gain * d)
