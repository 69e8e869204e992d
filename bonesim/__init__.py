"""bonesim: GPU-accelerated simulation of bone remodeling on 3-D micro-CT volumes.

The public API is listed here; names are imported lazily so that ``import
bonesim`` stays fast and never imports CuPy, PyVista or Dask until used.

>>> import bonesim
>>> vol = bonesim.Volume(bonesim.phantom.plate((16, 16, 16), thickness=4), voxel_size_um=20)
>>> round(vol.bv_tv, 3)
0.25
"""

from __future__ import annotations

import importlib
from typing import Any

from bonesim._version import __version__

# public name -> module that defines it
_API: dict[str, str] = {
    "Volume": "bonesim.volume",
    "BonesimError": "bonesim.errors",
    "read_volume": "bonesim.io.hdf5",
    "write_volume": "bonesim.io.hdf5",
    "describe": "bonesim.io.hdf5",
    "import_volume": "bonesim.io.importers",
    "segment": "bonesim.io.segment",
    # CA core
    "RemodelingParams": "bonesim.ca.params",
    "simulate": "bonesim.ca.engine",
    "resolve_backend": "bonesim.ca.backends",
    # physiology
    "Scenario": "bonesim.physiology",
    "load_scenario": "bonesim.physiology",
    "run_physiology": "bonesim.physiology",
    "list_scenarios": "bonesim.physiology",
    "scenario_table": "bonesim.physiology",
    # morphometry
    "analyze": "bonesim.morphometry",
    "morphometry": "bonesim.morphometry",
    "dynamic_histomorphometry": "bonesim.morphometry",
    # visualisation
    "render_frame": "bonesim.viz",
    "animate": "bonesim.viz",
    "plot_metrics": "bonesim.viz",
    "write_report": "bonesim.viz",
    # batch
    "run_study": "bonesim.batch",
    "load_manifest": "bonesim.batch",
    "simulate_in_chunks": "bonesim.ca.backends.chunked",
}
_SUBMODULES = {
    "io",
    "phantom",
    "volume",
    "physiology",
    "morphometry",
    "viz",
    "batch",
    "ca",
    "validation",
    "mechanics",
}

__all__ = ["__version__", *_API, *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"bonesim.{name}")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bonesim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
