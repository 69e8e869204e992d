"""Remodeling labels between two frames, in the time-lapse HR-pQCT convention.

Each voxel of a pair of bone-fraction frames (before, after), binarised at the
127.5 level, gets a label:

====  ============  ===================================
  0   marrow        marrow in both frames
  1   resorption    bone before, marrow after
  2   quiescent     bone in both frames
  3   formation     marrow before, bone after
====  ============  ===================================

Resorption and formation clusters smaller than ``min_cluster`` voxels
(default 12, 6-connected) are treated as noise and dropped: a dropped
resorption voxel counts as quiescent (it was bone and is taken as unchanged),
a dropped formation voxel as marrow. This is the convention of the
time-lapse HR-pQCT studies and the ``timelapsed-hrpqct`` tools, so tools made
for measured time-lapse data (e.g. ``bone-mechanoregulation``) read simulated
labels too.

References
----------
Christen P, Ito K, Ellouz R, et al. (2014). Bone remodelling in humans is
load-driven but not lazy. Nat Commun 5:4855.
Brunet SC, Kuczynski MT, Bhatla JL, et al. (2020). The utility of
multi-stage registration in time-lapse HR-pQCT: reproducibility of bone
remodeling. Bone 135:115315 (cluster threshold, label convention).
"""

from __future__ import annotations

import numpy as np

from bonesim._validation import check_positive
from bonesim.errors import InputError
from bonesim.volume import BONE_LEVEL

MARROW, RESORPTION, QUIESCENT, FORMATION = 0, 1, 2, 3
LABEL_NAMES = {MARROW: "marrow", RESORPTION: "resorption", QUIESCENT: "quiescent", FORMATION: "formation"}
MIN_CLUSTER = 12


def _drop_small(mask: np.ndarray, min_cluster: int) -> np.ndarray:
    """``mask`` without its 6-connected clusters of fewer than ``min_cluster`` voxels."""
    if min_cluster <= 1 or not mask.any():
        return mask
    try:
        import cc3d

        return cc3d.dust(mask, threshold=min_cluster, connectivity=6, in_place=False).astype(bool)
    except ImportError:  # pragma: no cover - cc3d is a core dependency
        from scipy import ndimage

        from bonesim._optional import warn_fallback

        warn_fallback("cc3d", "connected-component labelling (scipy)")

        lab, _ = ndimage.label(mask)
        sizes = np.bincount(lab.ravel())
        keep = sizes >= min_cluster
        keep[0] = False
        return keep[lab]


def remodeling_labels(before: np.ndarray, after: np.ndarray, *, min_cluster: int = MIN_CLUSTER) -> np.ndarray:
    """uint8 label volume (0 marrow, 1 resorption, 2 quiescent, 3 formation) between two frames.

    >>> a = np.zeros((1, 1, 30), np.uint8); a[..., :20] = 255
    >>> b = np.zeros_like(a); b[..., 5:25] = 255
    >>> remodeling_labels(a, b, min_cluster=1)[0, 0].tolist()[::5]
    [1, 2, 2, 2, 3, 0]
    >>> np.bincount(remodeling_labels(a, b).ravel(), minlength=4).tolist()  # 5-voxel clusters dropped
    [10, 0, 20, 0]
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise InputError(f"frames differ in shape: {before.shape} vs {after.shape}")
    if int(min_cluster) != min_cluster or min_cluster < 0:
        raise InputError(f"`min_cluster` must be an integer >= 0, got {min_cluster!r}")
    b0, b1 = before > BONE_LEVEL, after > BONE_LEVEL
    res = _drop_small(b0 & ~b1, int(min_cluster))
    frm = _drop_small(~b0 & b1, int(min_cluster))
    out = np.zeros(before.shape, np.uint8)
    out[b0] = QUIESCENT  # includes dropped resorption noise
    out[res] = RESORPTION
    out[frm] = FORMATION
    return out


def remodeling_summary(labels: np.ndarray, voxel_size_um: float) -> dict[str, float]:
    """Volumes (mm³), surfaces (mm²) and fractions of the labels of :func:`remodeling_labels`.

    ``*_volume_mm3`` counts voxels; ``*_surface_mm2`` is the marching-cubes
    area of each label's region; ``resorbed_fraction`` and ``formed_fraction``
    are RV/BV0 and FV/BV0 with BV0 the baseline bone (resorption + quiescent).

    >>> lab = np.zeros((4, 4, 4), np.uint8); lab[1:3, 1:3, 1:3] = 2; lab[1, 1, 1] = 1
    >>> s = remodeling_summary(lab, 1000.0)   # 1 mm voxels
    >>> s["resorbed_volume_mm3"], s["quiescent_volume_mm3"], s["resorbed_fraction"]
    (1.0, 7.0, 0.125)
    """
    from bonesim.morphometry.basic import mesh_area, surface_mesh

    h = check_positive(voxel_size_um, name="voxel_size_um")
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=4)
    vox_mm3 = (h / 1000.0) ** 3
    out: dict[str, float] = {}
    for lab in (RESORPTION, QUIESCENT, FORMATION):
        name = {RESORPTION: "resorbed", QUIESCENT: "quiescent", FORMATION: "formed"}[lab]
        out[f"{name}_volume_mm3"] = float(counts[lab] * vox_mm3)
        mask = np.pad(labels == lab, 1).astype(np.float32)  # closed regions: count all their faces
        out[f"{name}_surface_mm2"] = mesh_area(*surface_mesh(mask, h / 1000.0, level=0.5))
    bv0 = counts[RESORPTION] + counts[QUIESCENT]
    out["resorbed_fraction"] = float(counts[RESORPTION] / bv0) if bv0 else float("nan")
    out["formed_fraction"] = float(counts[FORMATION] / bv0) if bv0 else float("nan")
    return out
