"""Export a saved frame as VTK ImageData (``.vti``) for ParaView and other VTK tools."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bonesim.errors import InputError
from bonesim.io.outputs import atomic_write, check_output
from bonesim.io.result import Result


def export_vti(
    result: str | os.PathLike, path: str | os.PathLike, frame: int = -1, *, overwrite: bool = False
) -> Path:
    """Write frame ``frame`` of ``result`` to ``path`` (``.vti``), in mm, as cell data.

    Cell arrays: ``bone`` (uint8 bone fraction of the frame), ``bone_initial``
    (the first saved frame), ``change`` (int16, frame minus first frame) and,
    when the result has them, ``resorbed_day`` and ``formed_day``. Cells match
    voxels (corner at the origin, edge = voxel size), as in the XDMF sidecar,
    so a ParaView "Contour" at 127.5 on ``bone`` (after "Cell Data to Point
    Data") shows the bone surface.

    Examples
    --------
    >>> export_vti("run.h5", "last.vti")  # doctest: +SKIP
    """
    from bonesim._optional import require

    pv = require("pyvista", "VTK export")

    out = Path(path)
    if out.suffix.lower() != ".vti":
        raise InputError(f"`path` must end in .vti, got {out.name!r}")
    check_output(out, overwrite=overwrite, inputs=[result], suffixes=(".vti",), what="VTK file")
    info = Result.open(result)
    idx = info.frame_index(frame)
    bt, b0 = info.frames([idx, 0])
    maps = {k: v for k, v in info.maps().items() if k in ("resorbed_day", "formed_day")}
    h = info.voxel_size_um / 1000.0
    nz, ny, nx = bt.shape
    grid = pv.ImageData(dimensions=(nx + 1, ny + 1, nz + 1), spacing=(h, h, h), origin=(0.0, 0.0, 0.0))
    grid.cell_data["bone"] = np.ascontiguousarray(bt).ravel()
    grid.cell_data["bone_initial"] = np.ascontiguousarray(b0).ravel()
    grid.cell_data["change"] = (bt.astype(np.int16) - b0.astype(np.int16)).ravel()
    for k, v in maps.items():
        grid.cell_data[k] = np.ascontiguousarray(v).ravel()
    grid.field_data["day"] = np.array([float(info.days[idx])])
    grid.field_data["frame"] = np.array([idx])
    with atomic_write(out, overwrite=overwrite, inputs=[result], suffixes=(".vti",), what="VTK file") as tmp:
        grid.save(tmp)
    return out
