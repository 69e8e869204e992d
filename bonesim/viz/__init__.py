"""Visualisation of bonesim results: PyVista renders and animations, matplotlib plots.

Nothing here imports PyVista/VTK or matplotlib until a function is called.

* :func:`render_frame` — one saved frame, coloured by remodeling state
  relative to the first frame, as an RGB array (or a PNG);
  :func:`render_plotter` returns the ``pyvista.Plotter`` instead.
* :func:`animate` — all saved frames to GIF or MP4 with one camera.
* :func:`plot_metrics` — BV/TV, morphometry and daily physiology over time,
  several results overlaid.
* :func:`export_vti` — one frame (plus the remodeling maps) as VTK ImageData
  for ParaView; results also carry an XDMF sidecar (:mod:`bonesim.io.xdmf`).
* :func:`write_report` — one self-contained HTML page of one or more results
  (provenance, comparison, plots, slice overlays, an interactive 3-D view).
* :func:`probe_rendering` — can this machine render off-screen?
"""

from __future__ import annotations

from bonesim.viz.animate import animate
from bonesim.viz.export import export_vti
from bonesim.viz.gl import probe as probe_rendering
from bonesim.viz.plot import plot_metrics
from bonesim.viz.render import render_frame, render_plotter
from bonesim.viz.report import write_report

__all__ = [
    "animate",
    "export_vti",
    "plot_metrics",
    "probe_rendering",
    "render_frame",
    "render_plotter",
    "write_report",
]
