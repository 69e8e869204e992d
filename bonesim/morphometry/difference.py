"""Bone lost and gained between day 0 and a later frame, as voxel masks, and the elements cut.

The *difference view* of ``bonesim render --diff`` draws these masks as
smoothed solid surfaces: the current bone in grey, the bone present on day 0
and gone now (``lost``) in red, new bone (``formed``) in green and the lost
bone that went *through a whole element* (``perforated``) in magenta, so that
a few per cent of bone loss shows as coloured volume, not as a thin gap
between two surfaces.

Both frames are binarised at the 127.5 level of the bone fraction
(:data:`bonesim.volume.BONE_LEVEL`):

* ``current``  = bone now;
* ``lost``     = bone on day 0, marrow now;
* ``formed``   = marrow on day 0, bone now;
* ``perforated`` ⊆ ``lost``: a lost voxel whose day-0 bone is gone all the way
  through along at least one axis — the run of day-0 bone voxels through it
  along x, y or z (the local thickness of the element in that direction) is
  lost entirely and ends inside the volume at both ends (runs cut by the
  volume's faces are not known to be whole and never count). A hole through a
  plate or a cut rod is perforated; a resorption pit on a thick plate is not.
  Clusters of perforated voxels smaller than ``min_cluster`` (6-connected)
  are dropped as noise, the cluster threshold of the time-lapse HR-pQCT
  labels (:mod:`bonesim.morphometry.labels`).

The elements cut since day 0 (``bonesim analyze``'s ``cut_elements``) are the
6-connected clusters of ``perforated`` (:func:`cut_elements`): one hole through a
plate, or one cut rod, is one element whatever its size in voxels.

The difference view (``bonesim render --diff``, :mod:`bonesim.viz.diffview`)
draws these masks. The volume ``scene`` of the surface view (:mod:`bonesim.viz.scene`) marks the
same perforations on the day-0 surface by casting rays along its normals;
this voxel test needs no surface and gives a volume to draw and count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bonesim.errors import InputError
from bonesim.morphometry.labels import MIN_CLUSTER, _drop_small
from bonesim.volume import BONE_LEVEL

#: The masks of a :class:`Difference`, in drawing order.
MASKS = ("current", "lost", "formed", "perforated")


@dataclass(frozen=True)
class Difference:
    """Boolean voxel masks (zyx) of one frame against day 0; see the module docstring."""

    current: np.ndarray
    lost: np.ndarray
    formed: np.ndarray
    perforated: np.ndarray

    def summary(self, day0_bone_voxels: int | None = None) -> dict[str, float]:
        """Voxel counts, and each as a percentage of the day-0 bone volume.

        >>> b0 = np.zeros((1, 1, 8), np.uint8); b0[..., 2:6] = 255
        >>> bt = np.zeros_like(b0); bt[..., 4:7] = 255
        >>> difference_masks(b0, bt, min_cluster=0).summary()
        {'current_vox': 3, 'lost_vox': 2, 'formed_vox': 1, 'perforated_vox': 0, 'lost_pct': 50.0, 'formed_pct': 25.0, 'perforated_pct': 0.0}
        """
        n0 = int(self.current.sum() + self.lost.sum() - self.formed.sum())
        n0 = n0 if day0_bone_voxels is None else int(day0_bone_voxels)
        out: dict[str, float] = {f"{k}_vox": int(getattr(self, k).sum()) for k in MASKS}
        for k in ("lost", "formed", "perforated"):
            out[f"{k}_pct"] = 100.0 * out[f"{k}_vox"] / n0 if n0 else 0.0
        return out


def _through_lost(b0: np.ndarray, kept: np.ndarray, axis: int) -> np.ndarray:
    """Voxels of ``b0`` whose run of ``b0`` along ``axis`` holds no ``kept`` voxel and ends inside.

    >>> b0 = np.array([[0, 1, 1, 1, 0, 1, 1, 0, 1, 1]], bool)
    >>> kept = np.array([[0, 0, 0, 0, 0, 0, 1, 0, 0, 0]], bool)
    >>> _through_lost(b0, kept, 1).astype(int).tolist()
    [[0, 1, 1, 1, 0, 0, 0, 0, 0, 0]]
    """
    a = np.moveaxis(b0, axis, -1)
    k = np.moveaxis(kept, axis, -1)
    n = a.shape[-1]
    idx = np.arange(n, dtype=np.int16 if n < 32767 else np.int32)  # half the memory of int32

    def has_kept_before(a: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prev = np.zeros_like(a)
        prev[..., 1:] = a[..., :-1]
        start = np.maximum.accumulate(np.where(a & ~prev, idx, -1), axis=-1)
        last_kept = np.maximum.accumulate(np.where(k, idx, -1), axis=-1)
        return last_kept >= start, start  # start == 0 on a bone voxel: its run touches the face

    before, start = has_kept_before(a, k)
    after, start_r = has_kept_before(a[..., ::-1], k[..., ::-1])
    after, start_r = after[..., ::-1], start_r[..., ::-1]
    inside = (start > 0) & (start_r > 0)
    return np.moveaxis(a & ~before & ~after & inside, -1, axis)


def difference_masks(b0: np.ndarray, bt: np.ndarray, *, min_cluster: int = MIN_CLUSTER) -> Difference:
    """The :class:`Difference` of frame ``bt`` against the day-0 frame ``b0`` (bone fractions, 0-255).

    >>> b0 = np.zeros((5, 5, 5), np.uint8); b0[2] = 255          # a plate one voxel thick
    >>> bt = b0.copy(); bt[2, 1:3, 1:3] = 0                       # a 2x2 hole through it
    >>> d = difference_masks(b0, bt, min_cluster=0)
    >>> int(d.lost.sum()), int(d.perforated.sum()), int(d.formed.sum()), int(d.current.sum())
    (4, 4, 0, 21)
    """
    b0, bt = np.asarray(b0), np.asarray(bt)
    if b0.shape != bt.shape or b0.ndim != 3:
        raise InputError(f"frames must be 3-D and of one shape, got {b0.shape} and {bt.shape}")
    if int(min_cluster) != min_cluster or min_cluster < 0:
        raise InputError(f"`min_cluster` must be an integer >= 0, got {min_cluster!r}")
    was, now = b0 > BONE_LEVEL, bt > BONE_LEVEL
    lost = was & ~now
    kept = was & now
    perf = np.zeros_like(lost)
    if lost.any():
        for axis in range(3):
            perf |= _through_lost(was, kept, axis)
        perf = _drop_small(perf, int(min_cluster))
    return Difference(current=now, lost=lost, formed=now & ~was, perforated=perf)


def cut_elements(perforated: np.ndarray) -> int:
    """Number of elements cut through: 6-connected clusters of a ``perforated`` mask.

    >>> b0 = np.zeros((5, 9, 9), np.uint8); b0[2] = 255            # a plate one voxel thick
    >>> bt = b0.copy(); bt[2, 1:3, 1:3] = 0; bt[2, 5:7, 5:8] = 0   # two holes through it
    >>> cut_elements(difference_masks(b0, bt, min_cluster=0).perforated)
    2
    """
    from scipy import ndimage

    return int(ndimage.label(np.asarray(perforated, bool))[1])
