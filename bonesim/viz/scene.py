"""Remodeling state of a frame relative to the first one, as surface meshes (no OpenGL).

The bone surface is the 127.5 iso-level of the bone fraction (flying edges).
Each point of the current surface gets a state by looking at the same place
in earlier frames:

* ``formed`` (green) — the point lies where the first frame had marrow (its
  bone fraction there is below the surface level by more than ``tol``): the
  surface has advanced, bone was gained. With ``history`` the test uses the
  running minimum over every saved frame up to now instead of the first
  frame, so cavities refilled to their original surface count as formed too;
* ``resorbed`` (red) — the point lies inside the first frame's bone by more than
  ``tol``: the surface has receded (a cavity floor or a thinned trabecula);
* ``quiescent`` (ivory) otherwise.

The first frame's surface is drawn as a translucent grey ghost, so the bone
lost since the start shows as the gap between ghost and current surface.
A ghost point whose bone is gone *through the whole initial structure* (a ray
from it along the inward normal of the first frame crosses the first frame's
bone without meeting current bone) is a *perforation* and is drawn in magenta.

References
----------
.. [1] Lorensen & Cline (1987), "Marching cubes", SIGGRAPH 21(4):163-169;
   Schroeder, Maynard & Geveci (2015), "Flying edges: a high-performance
   scalable isocontouring algorithm", IEEE LDAV, doi:10.1109/LDAV.2015.7348069.
.. [2] Christen et al. (2014), "Bone remodelling in humans is load-driven but
   not lazy", Nat. Commun. 5:4855 — formation/resorption/quiescence labels of
   time-lapse micro-CT, shown in green/red/grey by convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bonesim.errors import InputError
from bonesim.volume import BONE_LEVEL

#: State codes of surface points.
QUIESCENT, RESORBED, FORMED = 0, 1, 2
STATE_NAMES = ("quiescent", "resorbed", "formed")
#: RGB colours (0-255) of the states, the ghost and perforations.
COLOURS = {
    "quiescent": (235, 225, 200),
    "resorbed": (215, 35, 35),
    "formed": (40, 185, 70),
    "perforation": (235, 0, 235),
    "initial": (160, 160, 160),
}
#: Default tolerance on the bone fraction (0-255) before a change counts.
TOLERANCE = 48.0


@dataclass
class FrameGrids:
    """Cropped, downsampled, zero-padded float32 arrays of one frame (zyx).

    ``origin_mm`` and ``spacing_mm`` place voxel centres in VTK ``xyz`` order.
    """

    b0: np.ndarray
    bt: np.ndarray
    bmin: np.ndarray
    origin_mm: tuple[float, float, float]
    spacing_mm: float


def auto_downsample(shape: Sequence[int], max_edge: int = 256) -> int:
    """The smallest integer factor that brings the longest edge to <= ``max_edge``.

    >>> auto_downsample((512, 300, 200)), auto_downsample((64, 64, 64))
    (2, 1)
    """
    return max(1, math.ceil(max(shape) / max_edge))


def block_mean(arr: np.ndarray, k: int) -> np.ndarray:
    """Mean over ``k``-voxel blocks (edges cropped to a multiple of ``k``), as float32.

    >>> block_mean(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), 2)
    array([[[3.5]]], dtype=float32)
    """
    if k == 1:
        return np.asarray(arr, dtype=np.float32)
    a = np.asarray(arr)
    z, y, x = (n // k for n in a.shape)
    a = a[: z * k, : y * k, : x * k]  # a view: no full-size float copy of large volumes
    return a.reshape(z, k, y, k, x, k).mean(axis=(1, 3, 5), dtype=np.float32)


def clip_slices(
    clip: Sequence[float] | None, shape: Sequence[int], voxel_mm: float
) -> tuple[slice, slice, slice]:
    """Voxel slices (zyx) of the box ``clip = (x0, x1, y0, y1, z0, z1)`` in mm.

    >>> clip_slices((0, 0.2, 0, 1, 0.1, 0.3), (32, 32, 32), 0.02)
    (slice(5, 15, None), slice(0, 32, None), slice(0, 10, None))
    """
    if clip is None:
        return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
    c = [float(v) for v in clip]
    if len(c) != 6:
        raise InputError(f"`clip` must be (x0, x1, y0, y1, z0, z1) in mm, got {clip!r}")
    out = []
    for axis, (lo, hi) in zip((2, 1, 0), ((c[0], c[1]), (c[2], c[3]), (c[4], c[5])), strict=True):
        n = shape[axis]
        i0 = max(0, math.floor(lo / voxel_mm))
        i1 = min(n, math.ceil(hi / voxel_mm))
        if i1 - i0 < 2:
            raise InputError(f"`clip` box {clip!r} leaves less than 2 voxels along axis {'xyz'[2 - axis]}")
        out.append((axis, slice(i0, i1)))
    out.sort()
    return tuple(s for _, s in out)  # type: ignore[return-value]


def prepare(
    b0: np.ndarray,
    bt: np.ndarray,
    bmin: np.ndarray,
    voxel_size_um: float,
    *,
    downsample: int = 1,
    clip: Sequence[float] | None = None,
    smooth: float = 0.0,
) -> FrameGrids:
    """Crop to ``clip``, block-average by ``downsample``, pad with marrow, smooth.

    The padding closes the surface where bone meets the edge of the volume (or
    of the clipping box), so cut faces look solid. ``smooth`` is the sigma (in
    output voxels) of a Gaussian filter that takes the staircase off binary
    voxel data before contouring; 0 turns it off.
    """
    h = voxel_size_um / 1000.0
    sl = clip_slices(clip, b0.shape, h)
    k = int(downsample)
    done: dict[int, np.ndarray] = {}
    arrays = []
    for a in (b0, bt, bmin):
        if id(a) not in done:
            out = np.pad(block_mean(a[sl], k), 1)
            if smooth > 0:
                out = ndimage.gaussian_filter(out, smooth, mode="constant", truncate=3.0)
            done[id(a)] = out
        arrays.append(done[id(a)])
    offset = [s.start for s in sl]  # zyx, voxels
    origin_zyx = [(o - k / 2.0) * h for o in offset]
    return FrameGrids(*arrays, origin_mm=tuple(origin_zyx[::-1]), spacing_mm=k * h)  # type: ignore[arg-type]


def _sample(arr: np.ndarray, pts_ijk: np.ndarray) -> np.ndarray:
    """Trilinear samples of a zyx array at points given as (N, 3) xyz voxel indices."""
    coords = pts_ijk[:, ::-1].T
    return ndimage.map_coordinates(arr, coords, order=1, mode="nearest", output=np.float32)


def _to_index(points_mm: np.ndarray, g: FrameGrids) -> np.ndarray:
    return (np.asarray(points_mm, dtype=np.float64) - np.asarray(g.origin_mm)) / g.spacing_mm


def point_states(points_mm: np.ndarray, g: FrameGrids, tol: float = TOLERANCE) -> np.ndarray:
    """State code (QUIESCENT/RESORBED/FORMED) of current-surface points (uint8)."""
    ijk = _to_index(points_mm, g)
    out = np.zeros(len(ijk), np.uint8)
    if len(ijk) == 0:
        return out
    out[_sample(g.b0, ijk) > BONE_LEVEL + tol] = RESORBED
    out[_sample(g.bmin, ijk) < BONE_LEVEL - tol] = FORMED
    return out


def perforated_points(
    points_mm: np.ndarray, g: FrameGrids, *, tol: float = TOLERANCE, max_depth_vox: float = 32.0
) -> np.ndarray:
    """Boolean mask of first-frame surface points whose bone is gone all the way through.

    From each candidate point (current bone fraction there below the level by
    ``tol``) a ray runs along the inward normal of the first frame (the
    gradient of the first frame's bone fraction) in half-voxel steps until it
    leaves the first frame's bone; the point is perforated when the ray left
    within ``max_depth_vox`` voxels and met no current bone on the way.
    """
    ijk = _to_index(points_mm, g)
    mask = np.zeros(len(ijk), bool)
    if len(ijk) == 0:
        return mask
    cand = np.flatnonzero(_sample(g.bt, ijk) < BONE_LEVEL - tol)
    if cand.size == 0:
        return mask
    p = ijk[cand]
    grad = np.empty_like(p)
    for ax in range(3):
        e = np.zeros(3)
        e[ax] = 0.5
        grad[:, ax] = _sample(g.b0, p + e) - _sample(g.b0, p - e)
    norm = np.linalg.norm(grad, axis=1)
    ok = norm > 0
    n = np.zeros_like(grad)
    n[ok] = grad[ok] / norm[ok, None]
    steps = np.arange(1, int(2 * max_depth_vox) + 1) * 0.5
    inside = np.empty((steps.size, p.shape[0]), bool)
    bone_now = np.empty_like(inside)
    for i, s in enumerate(steps):
        q = p + s * n
        inside[i] = _sample(g.b0, q) >= BONE_LEVEL
        bone_now[i] = _sample(g.bt, q) >= BONE_LEVEL
    exited = (~inside).any(axis=0)
    first_out = np.argmax(~inside, axis=0)
    before_exit = np.arange(steps.size)[:, None] < first_out[None, :]
    hit = (bone_now & before_exit).any(axis=0)
    mask[cand] = ok & exited & ~hit
    return mask


def field_grid(
    values: np.ndarray,
    bone: np.ndarray,
    voxel_size_um: float,
    *,
    downsample: int = 1,
    clip: Sequence[float] | None = None,
) -> np.ndarray:
    """A per-voxel field of the bone (e.g. SED) on the grid of :func:`prepare`, for sampling at the surface.

    Cropped to ``clip`` and averaged over the bone voxels (``bone > 0``) of
    each ``downsample`` block like the bone itself; marrow blocks (and the
    one-voxel padding) take the value of the nearest bone block, so a
    trilinear sample at the bone surface (which lies between bone and marrow
    voxels) sees the adjacent bone, not a mix with marrow's 0. Float32,
    aligned with the arrays of :func:`prepare` (same origin and spacing).

    >>> v = np.zeros((4, 4, 4), np.float32); b = np.zeros((4, 4, 4), np.uint8)
    >>> v[1:3, 1:3, 1:3], b[1:3, 1:3, 1:3] = 2.0, 255
    >>> g = field_grid(v, b, 20.0)
    >>> g.shape, float(g.min()), float(g.max())
    ((6, 6, 6), 2.0, 2.0)
    """
    if values.shape != bone.shape:
        raise InputError(f"the field is {values.shape} but the bone {bone.shape}")
    h = voxel_size_um / 1000.0
    sl = clip_slices(clip, bone.shape, h)
    k = int(downsample)
    mask = (bone[sl] > 0).astype(np.float32)
    num = block_mean(np.asarray(values[sl], dtype=np.float32) * mask, k)
    den = block_mean(mask, k)
    has = den > 0
    out = np.zeros(num.shape, np.float32)
    out[has] = num[has] / den[has]
    if has.any() and not has.all():
        idx = ndimage.distance_transform_edt(~has, return_distances=False, return_indices=True)
        out = out[tuple(idx)]
    return np.pad(out, 1, mode="edge")


def sample_field(points_mm: np.ndarray, grid: np.ndarray, g: FrameGrids) -> np.ndarray:
    """Trilinear samples of a :func:`field_grid` at surface points (mm, xyz)."""
    if len(points_mm) == 0:
        return np.zeros(0, np.float32)
    return _sample(grid, _to_index(points_mm, g))


def log_range(values: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> tuple[float, float]:
    """Colour range of a positive field on a log scale: the percentiles of its positive values.

    >>> log_range(np.array([0.0, 1.0, 10.0, 100.0]), (0, 100))
    (1.0, 100.0)
    """
    pos = np.asarray(values, dtype=np.float64)
    pos = pos[np.isfinite(pos) & (pos > 0)]
    if pos.size == 0:
        raise InputError("the field is zero everywhere: nothing to colour")
    lo, hi = (float(v) for v in np.percentile(pos, percentiles))
    if not hi > lo:  # a uniform field: one decade around it
        lo, hi = lo / np.sqrt(10.0), hi * np.sqrt(10.0)
    return lo, hi
