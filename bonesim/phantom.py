"""Synthetic bone volumes, reproducible from a seed.

Analytic shapes (plates, rods, spheres, gyroids, wire lattices) have known
answers for tests; :func:`trabecular` builds a realistic trabecular-like
network with a target BV/TV and thickness. Every function returns a
``uint8`` bone-fraction array (255 = bone, 0 = marrow) in ``zyx`` order.
"""

from __future__ import annotations

import numpy as np

from bonesim._validation import check_positive

BONE = np.uint8(255)


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates relative to the volume centre (broadcastable)."""
    z, y, x = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0 for n in shape)
    return z[:, None, None], y[None, :, None], x[None, None, :]


def _as_bone(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, BONE, np.uint8(0)).astype(np.uint8)


def plate(shape: tuple[int, int, int], thickness: int, axis: int = 0) -> np.ndarray:
    """A slab ``thickness`` voxels thick, centred, normal to ``axis``, spanning the volume.

    >>> (plate((8, 4, 4), 2) > 0).sum(axis=(1, 2)).tolist()
    [0, 0, 0, 16, 16, 0, 0, 0]
    """
    if thickness < 1 or thickness > shape[axis]:
        raise ValueError(f"`thickness` must be in [1, {shape[axis]}], got {thickness}")
    n = shape[axis]
    start = (n - thickness) // 2
    idx = np.arange(n)
    sel = (idx >= start) & (idx < start + thickness)
    bshape = [1, 1, 1]
    bshape[axis] = n
    return _as_bone(np.broadcast_to(sel.reshape(bshape), shape))


def rod(shape: tuple[int, int, int], diameter: float, axis: int = 0) -> np.ndarray:
    """A cylinder of ``diameter`` voxels along ``axis``, centred, spanning the volume.

    >>> int((rod((4, 9, 9), 3) > 0).sum()) // 4   # voxels per cross-section
    9
    """
    check_positive(diameter, name="diameter")
    c = _grid(shape)
    others = [c[i] for i in range(3) if i != axis]
    r2 = others[0] ** 2 + others[1] ** 2
    return _as_bone(np.broadcast_to(r2 <= (diameter / 2.0) ** 2, shape))


def sphere(shape: tuple[int, int, int], radius: float) -> np.ndarray:
    """A ball of ``radius`` voxels at the centre of the volume.

    >>> int(sphere((5, 5, 5), 1).sum() // 255)
    7
    """
    check_positive(radius, name="radius")
    z, y, x = _grid(shape)
    return _as_bone(z**2 + y**2 + x**2 <= radius**2)


def gyroid_field(shape: tuple[int, int, int], period: float) -> np.ndarray:
    """The gyroid function sin(kx)cos(ky) + sin(ky)cos(kz) + sin(kz)cos(kx), k = 2π/period."""
    check_positive(period, name="period")
    k = 2 * np.pi / period
    z, y, x = (np.arange(n, dtype=np.float64)[s] * k for n, s in zip(
        shape, [(slice(None), None, None), (None, slice(None), None), (None, None, slice(None))], strict=False
    ))
    return np.sin(x) * np.cos(y) + np.sin(y) * np.cos(z) + np.sin(z) * np.cos(x)


def gyroid(
    shape: tuple[int, int, int], period: float, level: float = 0.0, *, sheet: bool = False
) -> np.ndarray:
    """A gyroid: network solid ``g > level`` or, with ``sheet=True``, the sheet ``|g| < level``.

    The network is rod-like and fully connected; the sheet is plate-like. The
    analytic bone fraction is the fraction of space where the condition holds
    (see :func:`gyroid_fraction`).

    >>> round(float(gyroid((32, 32, 32), 16).mean()) / 255, 2)
    0.5
    """
    g = gyroid_field(shape, period)
    return _as_bone(np.abs(g) < level if sheet else g > level)


def gyroid_fraction(level: float, *, sheet: bool = False, samples: int = 96) -> float:
    """Volume fraction of the gyroid condition over one period, on a fine grid of ``samples``³."""
    g = gyroid_field((samples, samples, samples), samples)
    return float((np.abs(g) < level).mean() if sheet else (g > level).mean())


def gyroid_sheet_level_for(bvtv: float) -> float:
    """The sheet half-width ``level`` whose sheet gyroid has bone fraction ``bvtv``."""
    g = np.abs(gyroid_field((96, 96, 96), 96)).ravel()
    return float(np.quantile(g, bvtv))


def lattice(
    shape: tuple[int, int, int], nodes: int, bar_width: int, margin: int | None = None
) -> np.ndarray:
    """A cubic wire frame of ``nodes``³ nodes joined by square bars ``bar_width`` wide.

    The frame sits inside the volume with ``margin`` voxels of marrow around
    it; its number of independent loops is :func:`lattice_loops` (``nodes``).

    >>> vol = lattice((20, 20, 20), 2, 2)
    >>> vol.shape, vol.dtype
    ((20, 20, 20), dtype('uint8'))
    """
    if nodes < 2:
        raise ValueError(f"`nodes` must be >= 2, got {nodes}")
    margin = bar_width if margin is None else margin
    mask = np.zeros(shape, bool)
    lines = []
    for n in shape:
        span = n - 2 * margin - bar_width
        if span < (nodes - 1) * (bar_width + 1):
            raise ValueError(f"volume {shape} too small for a {nodes}-node lattice of bar width {bar_width}")
        lines.append([margin + round(i * span / (nodes - 1)) for i in range(nodes)])
    lo = [margin] * 3
    hi = [lines[a][-1] + bar_width for a in range(3)]
    for axis in range(3):
        a1, a2 = [a for a in range(3) if a != axis]
        for p in lines[a1]:
            for q in lines[a2]:
                sl = [slice(None)] * 3
                sl[axis] = slice(lo[axis], hi[axis])
                sl[a1] = slice(p, p + bar_width)
                sl[a2] = slice(q, q + bar_width)
                mask[tuple(sl)] = True
    return _as_bone(mask)


def lattice_loops(nodes: int) -> int:
    """Independent loops (first Betti number) of a ``nodes``³ cubic wire frame.

    Edges 3·n²·(n−1), vertices n³, one component: β1 = E − V + 1.

    >>> lattice_loops(2)
    5
    """
    n = nodes
    return 3 * n * n * (n - 1) - n**3 + 1
