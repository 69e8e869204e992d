"""Cortical and trabecular compartments of a segmented bone, by morphology.

A simple morphological method (bonesim's own, stated as such) in the spirit of
the dual-threshold approach of Buie et al. (2007) [memory], which works on the
grey image; this one needs only the binary bone:

1. *Periosteal envelope* (the whole bone): the bone is closed with a ball of
   radius ``pore_um`` (bridging cortical pores and gaps), then the holes of
   every slice across ``axis`` (the bone's long axis) are filled, as the
   periosteal contour of a cross-section is drawn slice by slice.
2. *Cortex*: the closed bone is opened with a ball of radius
   ``trabecular_max_um / 2``: trabeculae, thinner than ``trabecular_max_um``,
   vanish; the cortex, thicker, survives. Of what survives, the parts that
   touch the periosteal surface are the cortex (a thick trabecular node
   inside does not count).
3. Compartments: ``CORTICAL`` = the cortex (its pores included),
   ``TRABECULAR`` = the rest of the envelope (the marrow cavity with its
   trabeculae), ``OUTSIDE`` = everything else.

Both radii are in µm, so the defaults hold across voxel sizes: cortices of
HR-pQCT and human micro-CT (0.5-2 mm) against trabeculae of 100-250 µm. For
mouse bone (cortex ~200 µm, trabeculae ~50 µm) pass ``trabecular_max_um``
~120. The cortex must be thicker than ``trabecular_max_um`` everywhere to be
found whole.

References
----------
Buie HR, Campbell GM, Klinck RJ, MacNeil JA, Boyd SK (2007). Automatic
segmentation of cortical and trabecular compartments based on a dual
threshold technique for in vivo micro-CT bone analysis. Bone 41:505-515
[memory] (the published method; not implemented here).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from bonesim._validation import check_positive
from bonesim.errors import InputError
from bonesim.volume import BONE_LEVEL

OUTSIDE, CORTICAL, TRABECULAR = 0, 1, 2
NAMES = {OUTSIDE: "outside", CORTICAL: "cortical", TRABECULAR: "trabecular"}
#: Regions of interest that :func:`region` understands.
REGIONS = ("cortical", "trabecular", "bone")
PORE_UM = 60.0
TRABECULAR_MAX_UM = 300.0


def _edt(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (voxels) of every ``mask`` voxel to the nearest non-mask voxel."""
    try:
        import edt

        return edt.edt(np.ascontiguousarray(mask, dtype=np.uint8), parallel=1)
    except ImportError:  # pragma: no cover - edt is a core dependency
        return ndimage.distance_transform_edt(mask)


def _dilate(mask: np.ndarray, r: float) -> np.ndarray:
    return _edt(~mask) <= r if mask.any() else mask.copy()


def _erode(mask: np.ndarray, r: float) -> np.ndarray:
    return _edt(mask) > r


def _pad_free(mask: np.ndarray, r: float, fn, axis: int) -> np.ndarray:
    """Apply a dilation/erosion pair ``fn`` so the volume's faces do not act.

    Across the faces the bone continues along ``axis`` (the long axis: the
    bone is cut there, not ended) and is marrow along the others.
    """
    p = int(np.ceil(r)) + 1
    along = [(0, 0)] * 3
    along[axis] = (p, p)
    padded = np.pad(np.pad(mask, along, mode="edge"), [(0, 0) if a == axis else (p, p) for a in range(3)])
    return fn(padded)[p:-p, p:-p, p:-p]


def compartments(
    bone: np.ndarray,
    voxel_size_um: float,
    *,
    axis: int = 0,
    pore_um: float = PORE_UM,
    trabecular_max_um: float = TRABECULAR_MAX_UM,
) -> np.ndarray:
    """uint8 labels (0 outside, 1 cortical, 2 trabecular) of a bone-fraction volume; see the module docstring.

    >>> z, y, x = np.ogrid[:4, :40, :40]
    >>> r = np.hypot(y - 19.5, x - 19.5)
    >>> tube = np.broadcast_to((r < 18) & (r >= 10), (4, 40, 40)).astype(np.uint8) * 255
    >>> lab = compartments(tube, 20.0, trabecular_max_um=100)
    >>> [int(lab[2, 20, c]) for c in (0, 5, 15)]   # outside, in the cortex, in the cavity
    [0, 1, 2]
    """
    bone = np.asarray(bone)
    if bone.ndim != 3:
        raise InputError(f"the bone must be 3-D, got shape {bone.shape}")
    check_positive(voxel_size_um, name="voxel_size_um")
    check_positive(pore_um, name="pore_um")
    check_positive(trabecular_max_um, name="trabecular_max_um")
    if axis not in (0, 1, 2):
        raise InputError(f"`axis` must be 0, 1 or 2 (z, y, x), got {axis!r}")
    mask = bone > BONE_LEVEL if bone.dtype != bool else bone
    labels = np.zeros(mask.shape, np.uint8)
    if not mask.any():
        return labels
    r_close = pore_um / voxel_size_um
    r_open = trabecular_max_um / 2.0 / voxel_size_um
    closed = _pad_free(mask, r_close, lambda m: _erode(_dilate(m, r_close), r_close), axis) | mask
    envelope = np.moveaxis(closed, axis, 0).copy()
    for i in range(envelope.shape[0]):
        envelope[i] = ndimage.binary_fill_holes(envelope[i])
    envelope = np.moveaxis(envelope, 0, axis)
    thick = _pad_free(closed, r_open, lambda m: _dilate(_erode(m, r_open), r_open), axis) & closed
    # the periosteal surface: envelope voxels next to the outside
    shell = envelope & ~_pad_free(envelope, 1.0, lambda m: _erode(m, 1.0), axis)
    lab, n = ndimage.label(thick)
    if n:
        touching = np.unique(lab[shell & thick])
        cortex = np.isin(lab, touching[touching > 0])
    else:
        cortex = np.zeros_like(thick)
    labels[envelope] = TRABECULAR
    labels[cortex & envelope] = CORTICAL
    return labels


def region(labels: np.ndarray, name: str) -> np.ndarray:
    """Boolean mask of region ``name``: 'cortical', 'trabecular' or 'bone' (both).

    >>> region(np.array([0, 1, 2], np.uint8), "bone").tolist()
    [False, True, True]
    """
    if name not in REGIONS:
        raise InputError(f"`roi` must be one of {', '.join(REGIONS)}, got {name!r}")
    if name == "bone":
        return labels > OUTSIDE
    return labels == (CORTICAL if name == "cortical" else TRABECULAR)


def summary(labels: np.ndarray, bone: np.ndarray, voxel_size_um: float) -> dict[str, Any]:
    """Volumes (mm³) and BV/TV of each compartment, and the mean cortical thickness Ct.Th (µm).

    Ct.Th is the mean local thickness (Hildebrand & Rüegsegger 1997, as Tb.Th)
    of the cortical compartment, its pores filled.
    """
    from bonesim.morphometry.thickness import local_thickness

    mask = np.asarray(bone) > BONE_LEVEL
    v = (voxel_size_um / 1000.0) ** 3
    out: dict[str, Any] = {}
    for code, name in ((CORTICAL, "cortical"), (TRABECULAR, "trabecular")):
        m = labels == code
        n = int(m.sum())
        out[f"{name}_tv_mm3"] = n * v
        out[f"{name}_bv_tv"] = float(mask[m].mean()) if n else float("nan")
    ct = labels == CORTICAL
    out["ct_th_um"] = (
        float(local_thickness(ct, voxel_size_um=voxel_size_um)[ct].mean()) if ct.any() else float("nan")
    )
    return out
