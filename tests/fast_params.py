"""The one fast parameter set of the CA tests: BMUs that start, resorb and refill within weeks.

Ac.f, durations and MAR are scaled up from the healthy defaults so that a few
hundred steps on a 20-40³ phantom see many complete cycles. Tests that need
another regime pass overrides: ``fast(acf_per_year=6)``.
"""

from __future__ import annotations

from bonesim.ca.params import RemodelingParams

BASE = dict(
    acf_per_year=15.0,
    erosion_depth_um=60.0,
    footprint_radius_um=50.0,
    resorption_days=12.0,
    reversal_days=4.0,
    mar_um_per_day=3.0,
    formation_efficiency=0.9,
)


def fast(**overrides) -> RemodelingParams:
    """The fast parameters with ``overrides``."""
    return RemodelingParams(**{**BASE, **overrides})


FAST = fast()
