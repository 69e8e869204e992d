"""The remodeling cellular automaton: parameters, time loop, backends and CUDA kernels.

Rooms inside (see ``docs/architecture.md``):

- :mod:`~bonesim.ca.params` — the BMU cycle in physical units, daily tables;
- :mod:`~bonesim.ca.schedule` — physics to integer per-step thresholds, activation calibration;
- :mod:`~bonesim.ca.engine` — :func:`simulate`: setup, the day loop, saving, assembly;
- :mod:`~bonesim.ca.metrics` — the counters of a run and its ``/tables/metrics`` rows;
- :mod:`~bonesim.ca.backends` — NumPy, CuPy and chunked (halo) backends of one step;
- :mod:`~bonesim.ca.halo` — the Dask halo-exchange driver the chunked backend uses;
- ``kernels/`` — the CUDA sources the CuPy backend compiles.

Names are imported lazily so ``import bonesim.ca`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "RemodelingParams": "bonesim.ca.params",
    "simulate": "bonesim.ca.engine",
    "SimulationResult": "bonesim.ca.engine",
    "resolve_backend": "bonesim.ca.backends",
    "simulate_in_chunks": "bonesim.ca.backends.chunked",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bonesim.ca' has no attribute {name!r}")
