"""Bone morphometry: standard trabecular indices and remodeling labels.

Rooms:

- :mod:`~bonesim.morphometry.basic` — BV/TV, marching-cubes BS, BS/BV, BS/TV, SMI;
- :mod:`~bonesim.morphometry.thickness` — exact direct local thickness (Tb.Th, Tb.Sp);
- :mod:`~bonesim.morphometry.topology` — Euler characteristic, Conn.D;
- :mod:`~bonesim.morphometry.anisotropy` — MIL fabric tensor, DA;
- :mod:`~bonesim.morphometry.labels` — resorption/quiescent/formation labels between frames;
- :mod:`~bonesim.morphometry.histomorphometry` — dynamic histomorphometry (MS/BS, MAR, BFR/BS, ES/BS,
  OS/BS, Ac.f) of a simulation;
- :mod:`~bonesim.morphometry.gpu` — CuPy versions of BV/TV and local thickness;
- :mod:`~bonesim.morphometry.analyze` — fill the metrics table of a result file.

See ``docs/morphometry.md`` for definitions and validation.
"""

from __future__ import annotations

from bonesim.morphometry._common import MorphometryWarning
from bonesim.morphometry.analyze import HISTO_COLUMNS, METRIC_COLUMNS, analyze, dynamic_histomorphometry
from bonesim.morphometry.indices import ALL_INDICES, morphometry
from bonesim.morphometry.labels import remodeling_labels, remodeling_summary
from bonesim.morphometry.thickness import local_thickness

__all__ = [
    "ALL_INDICES",
    "HISTO_COLUMNS",
    "METRIC_COLUMNS",
    "MorphometryWarning",
    "analyze",
    "dynamic_histomorphometry",
    "local_thickness",
    "morphometry",
    "remodeling_labels",
    "remodeling_summary",
]
