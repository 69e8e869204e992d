"""Dynamic histomorphometry of a simulation, in the ASBMR nomenclature (Dempster et al. 2013), in 3-D.

A biopsy measures surfaces as lengths of the bone perimeter in 2-D sections
and assumes they stand for areas; here every surface is an *area* of the same
marching-cubes bone surface BS (the 127.5 iso-surface) that
:func:`bonesim.morphometry.basic.bone_surface_um2` measures for BS/BV. A
triangle of that mesh belongs to a labelled surface (eroded, forming, ...)
when the voxel just inside or just outside it (its centroid ± half a voxel
along its normal, rounded to the nearest voxel) carries that label.

Pure-array functions (NumPy in, floats out):

- :func:`formation_interval` — between two saved frames: MS/BS, MAR, BFR/BS
  (the simulated double label: where and how much bone was laid down);
- :func:`state_surfaces` — at one instant, from the CA phase: ES/BS, OS/BS;
- :func:`histomorphometry_interval` — all of them, plus Ac.f, for one frame
  and the frame before it.

See ``docs/morphometry.md`` (section *Dynamic histomorphometry*) for the
definitions, units and how each maps to the model.

References
----------
Dempster DW, Compston JE, Drezner MK, et al. (2013). Standardized
nomenclature, symbols, and units for bone histomorphometry: a 2012 update of
the report of the ASBMR Histomorphometry Nomenclature Committee. J Bone Miner
Res 28:2-17.
Parfitt AM, Drezner MK, Glorieux FH, et al. (1987). Bone histomorphometry:
standardization of nomenclature, symbols, and units. J Bone Miner Res
2:595-610.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bonesim._validation import check_positive
from bonesim.ca.backends.base import PH_F, PH_R, PH_V
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import InputError
from bonesim.volume import BONE_FULL

#: Columns :func:`histomorphometry_interval` returns (units in the names).
HISTO_COLUMNS = (
    "ms_bs_pct",
    "mar_um_per_day",
    "bfr_bs_um3_um2_yr",
    "es_bs_pct",
    "os_bs_pct",
    "ac_f_per_yr",
    "ac_f_bfr_per_yr",
    "activations_per_mm2_yr",
)


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{what} differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3:
        raise InputError(f"{what} must be 3-D arrays, got {a.ndim}-D")


def labelled_areas(
    bone: np.ndarray, labels: Sequence[np.ndarray], voxel_size_um: float
) -> tuple[float, list[float]]:
    """BS (µm²) of ``bone`` and the part of it on each of ``labels`` (bool masks), exclusive in order.

    A triangle of the marching-cubes surface goes to the first label whose
    mask holds the voxel just inside or just outside it (centroid ± ½ voxel
    along the triangle normal, rounded); earlier labels take precedence.

    >>> b = np.zeros((6, 6, 6), np.uint8); b[:3] = 255            # a slab, top face between z = 2 and 3
    >>> m = np.zeros(b.shape, bool); m[:, :, :3] = True             # label the half x < 3 (x = 0..2)
    >>> bs, (part,) = labelled_areas(b, [m], 1.0)
    >>> bs, part                                                    # 5 x 5 mesh; x in [0, 2.5] of [0, 5]
    (25.0, 12.5)
    """
    from bonesim.morphometry.basic import surface_mesh

    h = check_positive(voxel_size_um, name="voxel_size_um")
    bone = np.asarray(bone)
    for m in labels:
        _check_pair(bone, np.asarray(m), "bone and label mask")
    verts, faces = surface_mesh(bone, 1.0)  # voxel units
    if len(faces) == 0:
        return 0.0, [0.0 for _ in labels]
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1)
    area = 0.5 * norm * h * h
    ok = norm > 0
    n = np.zeros_like(cross)
    n[ok] = cross[ok] / norm[ok, None]
    centroid = (a + b + c) / 3.0
    hi = np.array(bone.shape) - 1
    sides = [np.clip(np.rint(centroid + s * 0.5 * n), 0, hi).astype(np.int64) for s in (1.0, -1.0)]
    free = np.ones(len(faces), bool)
    parts = []
    for m in labels:
        m = np.asarray(m, bool)
        on = np.zeros(len(faces), bool)
        for idx in sides:
            on |= m[idx[:, 0], idx[:, 1], idx[:, 2]]
        on &= free
        parts.append(float(area[on].sum()))
        free &= ~on
    return float(area.sum()), parts


def formation_interval(
    before: np.ndarray, after: np.ndarray, voxel_size_um: float, days: float
) -> dict[str, float]:
    """MS/BS, MAR and BFR/BS of the bone laid down between two frames ``days`` apart.

    - formed bone: the positive increments ``max(after − before, 0)`` of the
      bone fraction, as volume (µm³);
    - MS: the area of the surface of ``after`` next to a voxel that gained
      bone (the simulated double label: surface that mineralised during the
      interval; the model has no labelling escape or lag);
    - MAR = formed volume / (MS · days): the mean apposition thickness per
      day over the forming surface (µm/d);
    - BFR/BS = MAR · MS/BS · 365.25 (µm³/µm²/yr) = formed volume per year per BS.

    >>> b0 = np.zeros((8, 8, 8), np.uint8); b0[:4] = 255; b0[4] = 51       # top layer 20 % full
    >>> b1 = b0.copy(); b1[4] = 204                                         # ... 80 % after 30 days
    >>> r = formation_interval(b0, b1, 20.0, 30.0)
    >>> round(r["ms_bs_pct"], 6), round(r["mar_um_per_day"] * (7 / 8) ** 2, 6)  # 0.6 · 20 µm / 30 d
    (100.0, 0.4)
    """
    h = check_positive(voxel_size_um, name="voxel_size_um")
    days = check_positive(days, name="days")
    before, after = np.asarray(before), np.asarray(after)
    _check_pair(before, after, "frames")
    gain = np.clip(after.astype(np.int32) - before.astype(np.int32), 0, None)
    formed_um3 = float(gain.sum(dtype=np.int64)) / BONE_FULL * h**3
    bs, (ms,) = labelled_areas(after, [gain > 0], h)
    nan = float("nan")
    mar = formed_um3 / (ms * days) if ms > 0 else (0.0 if formed_um3 == 0 else nan)
    return {
        "bs_um2": bs,
        "ms_um2": ms,
        "formed_um3": formed_um3,
        "ms_bs_pct": 100.0 * ms / bs if bs > 0 else nan,
        "mar_um_per_day": mar,
        "bfr_bs_um3_um2_yr": formed_um3 / bs / days * DAYS_PER_YEAR if bs > 0 else nan,
    }


def state_masks(phase: np.ndarray, timer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forming, eroded) voxel masks of a CA state (see ``docs/model.md``).

    forming: phase F with formation budget left (timer > 0) — osteoblasts laying
    bone down; eroded: phase R (resorbing fronts, hand-overs, the emptied
    cavity) or V (reversal), or F with no budget (a perforated column
    returning to marrow, never refilled).
    """
    phase, timer = np.asarray(phase), np.asarray(timer)
    _check_pair(phase, timer, "phase and timer")
    ph = phase & 3
    forming = (ph == PH_F) & (timer > 0)
    eroded = (ph == PH_R) | (ph == PH_V) | ((ph == PH_F) & (timer == 0))
    return forming, eroded


def state_surfaces(
    bone: np.ndarray, phase: np.ndarray, timer: np.ndarray, voxel_size_um: float
) -> dict[str, float]:
    """ES/BS and OS/BS of one CA state (bone, phase, timer of the same instant).

    OS is the surface next to forming voxels; ES the surface next to eroded
    ones (:func:`state_masks`) that is not OS (the two are exclusive, as in
    histology: an eroded surface covered by osteoid counts as OS). The model
    has no osteoid seam: its bone is mineralised as it is laid down, so OS is
    the *forming* surface and equals the instantaneous MS.

    >>> b = np.zeros((8, 8, 8), np.uint8); b[:4] = 255
    >>> ph = np.zeros(b.shape, np.uint8); t = np.zeros(b.shape, np.uint16)
    >>> ph[4, :, :4] = 1                                  # a cavity over the half x < 4 ...
    >>> ph[3, :, 4:] = 3; t[3, :, 4:] = 100              # ... and a forming half x >= 4
    >>> r = state_surfaces(b, ph, t, 1.0)
    >>> r["es_bs_pct"], r["os_bs_pct"]                  # mesh x in [0, 7]: 3.5 / 7 each
    (50.0, 50.0)
    """
    h = check_positive(voxel_size_um, name="voxel_size_um")
    bone = np.asarray(bone)
    forming, eroded = state_masks(phase, timer)
    _check_pair(bone, forming, "bone and phase")
    bs, (os_, es) = labelled_areas(bone, [forming, eroded], h)
    nan = float("nan")
    return {
        "bs_um2": bs,
        "es_um2": es,
        "os_um2": os_,
        "es_bs_pct": 100.0 * es / bs if bs > 0 else nan,
        "os_bs_pct": 100.0 * os_ / bs if bs > 0 else nan,
    }


def histomorphometry_interval(
    before: np.ndarray,
    after: np.ndarray,
    voxel_size_um: float,
    days: float,
    *,
    state: Mapping[str, np.ndarray] | None = None,
    metrics_row: Mapping[str, float] | None = None,
    wall_thickness_um: float | None = None,
) -> dict[str, float]:
    """All columns of :data:`HISTO_COLUMNS` for the frame ``after`` and the frame ``before`` it.

    Parameters
    ----------
    before, after : ndarray of uint8
        Consecutive saved frames (bone fraction, 255 = bone).
    voxel_size_um, days : float
        Voxel edge (µm) and the days between the frames.
    state : dict, optional
        ``phase`` and ``timer`` of the CA at the instant of ``after`` (a
        result stores them for its last frame only): gives ES/BS and OS/BS,
        NaN without.
    metrics_row : dict, optional
        The engine's metrics row of ``after`` (counters summed over the
        interval): ``acf_realised`` gives Ac.f, ``seeds`` the activations per
        area. NaN without.
    wall_thickness_um : float, optional
        W.Th of completed packets (f · E of the daily parameters) for the
        histomorphometric estimate Ac.f = BFR/BS / W.Th. NaN without.
    """
    out = formation_interval(before, after, voxel_size_um, days)
    nan = float("nan")
    if state is not None:
        s = state_surfaces(after, state["phase"], state["timer"], voxel_size_um)
        out.update(es_bs_pct=s["es_bs_pct"], os_bs_pct=s["os_bs_pct"])
    else:
        out.update(es_bs_pct=nan, os_bs_pct=nan)
    row = metrics_row or {}
    out["ac_f_per_yr"] = float(row.get("acf_realised", nan))
    bs_mm2 = out["bs_um2"] * 1e-6
    seeds = float(row.get("seeds", nan))
    out["activations_per_mm2_yr"] = seeds / bs_mm2 / days * DAYS_PER_YEAR if bs_mm2 > 0 else nan
    w = float(wall_thickness_um) if wall_thickness_um is not None else nan
    out["ac_f_bfr_per_yr"] = out["bfr_bs_um3_um2_yr"] / w if w > 0 else nan
    return out
