"""The one set of defaults and limits shared by the CA and the physiology model.

Time: a simulated year is :data:`DAYS_PER_YEAR` days (Julian year) everywhere
(CA, physiology, batch, plots). Healthy adult trabecular remodeling: the
values a run uses without a scenario *and* the reference state of the
physiology model (``[remodeling]`` of a scenario), so ``bonesim simulate``
without ``--scenario`` and ``--scenario healthy-adult`` run the same BMU cycle
(``tests/test_defaults.py`` checks it).

>>> HEALTHY["acf_per_year"], DAYS_PER_YEAR
(0.3, 365.25)

Sources
-------
- Ac.f 0.30/yr: healthy adult iliac trabecular bone 0.2-0.5/yr (Eriksen 1986
  Endocr Rev 7:379; Recker 2004 JBMR 19:1628; from memory); the value the
  physiology model was calibrated with (``data/reference/clinical_rates.csv``).
- Erosion depth 50 µm, resorption 35 d, reversal 20 d: Eriksen 1986; Parfitt
  1994 J Cell Biochem 55:273 (from memory).
- MAR 0.6 µm/d: Dempster 2013 JBMR 28:2 (healthy 0.5-0.7 µm/d; from memory).
"""

from __future__ import annotations

#: Days in a simulated year.
DAYS_PER_YEAR = 365.25

#: Longest reversal the 6-bit reversal counter of the CA state can hold, in steps.
MAX_REVERSAL_STEPS = 62

#: Healthy adult trabecular BMU cycle (physical units; see the module docstring for sources).
HEALTHY: dict[str, float] = {
    "acf_per_year": 0.30,
    "erosion_depth_um": 50.0,
    "resorption_days": 35.0,
    "reversal_days": 20.0,
    "mar_um_per_day": 0.6,
    "formation_efficiency": 1.0,
    "footprint_radius_um": 100.0,
}

#: Plausible ranges of the healthy reference values a scenario may set (physiology ``[remodeling]``).
#: The reversal limit is the CA's counter at 1-day steps, so any healthy state the physiology accepts runs.
HEALTHY_RANGES: dict[str, tuple[float, float]] = {
    "acf_per_year": (0.05, 2.0),
    "erosion_depth_um": (10.0, 150.0),
    "resorption_days": (5.0, 120.0),
    "reversal_days": (1.0, float(MAX_REVERSAL_STEPS)),
    "mar_um_per_day": (0.1, 3.0),
}
