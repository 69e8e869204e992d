"""Draw the difference view (:mod:`bonesim.viz.difference`) into a PyVista plotter.

Each mask becomes a solid surface: the voxels are block-averaged and
Gaussian-smoothed like the bone of the surface view (:func:`scene.prepare`),
then contoured. The unchanged bone is contoured at the bone level from its
bone fraction; the lost, formed and perforated masks at a lower level
(:data:`MASK_LEVEL`), which keeps one-voxel-thin lost layers visible after
smoothing and puts their surface a fraction of a voxel outside the grey bone,
so the colour wins where the two meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bonesim.viz import scene
from bonesim.viz.difference import COLOURS, LABELS, Difference, difference_masks
from bonesim.volume import BONE_LEVEL

#: Iso-level (0-255) of the coloured masks after smoothing; the bone itself uses BONE_LEVEL.
MASK_LEVEL = 0.3 * 255.0


def _rgb(c: Sequence[int]) -> tuple[float, float, float]:
    return tuple(v / 255.0 for v in c)  # type: ignore[return-value]


def difference_meshes(
    b0: np.ndarray,
    bt: np.ndarray,
    voxel_size_um: float,
    *,
    downsample: int = 1,
    clip: Sequence[float] | None = None,
    smooth: float = 0.6,
    min_cluster: int | None = None,
) -> tuple[dict[str, Any], Difference]:
    """Surfaces (``pyvista.PolyData``, mm) of the unchanged bone and the three masks, and the masks."""
    import pyvista as pv

    kw = {} if min_cluster is None else {"min_cluster": min_cluster}
    d = difference_masks(b0, bt, **kw)
    u8 = np.uint8(255)
    arrays = {
        "current": np.where(d.formed, np.uint8(0), np.asarray(bt, np.uint8)),
        "lost": (d.lost & ~d.perforated) * u8,
        "formed": d.formed * u8,
        "perforated": d.perforated * u8,
    }
    meshes: dict[str, Any] = {}
    for name, arr in arrays.items():
        if name != "current" and not arr.any():
            continue
        g = scene.prepare(arr, arr, arr, voxel_size_um, downsample=downsample, clip=clip, smooth=smooth)
        img = pv.ImageData(dimensions=g.bt.shape[::-1], spacing=(g.spacing_mm,) * 3, origin=g.origin_mm)
        img.point_data["v"] = g.bt.ravel()
        level = BONE_LEVEL if name == "current" else MASK_LEVEL
        mesh = img.contour([level], scalars="v", method="flying_edges", compute_normals=True)
        if mesh.n_points:
            meshes[name] = mesh
    return meshes, d


def add_difference(
    p: Any,
    b0: np.ndarray,
    bt: np.ndarray,
    voxel_size_um: float,
    *,
    downsample: int = 1,
    clip: Sequence[float] | None = None,
    smooth: float = 0.6,
    legend: bool = True,
    background: Sequence[int] = (30, 32, 36),
) -> dict[str, float]:
    """Add the difference view of ``bt`` against ``b0`` to plotter ``p``; return the mask summary."""
    meshes, d = difference_meshes(b0, bt, voxel_size_um, downsample=downsample, clip=clip, smooth=smooth)
    for name, mesh in meshes.items():
        p.add_mesh(mesh, color=_rgb(COLOURS[name]), specular=0.25, smooth_shading=True, name=name)
    if legend:
        p.add_legend(
            [[LABELS[n], _rgb(COLOURS[n])] for n in COLOURS],
            bcolor=_rgb(background),
            border=False,
            size=(0.2, 0.14),
            face="rectangle",
            loc="lower right",
        )
    return d.summary()


def summary_text(summary: dict[str, float]) -> str:
    """One line of the amounts shown, for the image's label.

    >>> summary_text({"lost_pct": 4.94, "formed_pct": 1.2, "perforated_pct": 0.31})
    'lost 4.9 %, formed 1.2 %, perforated 0.31 % of day-0 bone'
    """
    return (
        f"lost {summary['lost_pct']:.2g} %, formed {summary['formed_pct']:.2g} %, "
        f"perforated {summary['perforated_pct']:.2g} % of day-0 bone"
    )
