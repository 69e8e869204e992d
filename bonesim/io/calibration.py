"""Density calibration of imported micro-CT: grey values to mg HA/cm³.

A scanner's hydroxyapatite (HA) phantom gives a linear calibration
``density = slope · grey + intercept`` in mg HA/cm³. :func:`calibrate`
records it in a bone volume's metadata together with two densities measured
on the grey values that were segmented (after crop, resampling and
downsampling, before smoothing):

- ``tmd_mg_ha_cm3``: tissue mineral density, the mean calibrated density of
  the bone voxels (bone fraction ≥ 50 %, i.e. > 127 of 255);
- ``vbmd_mg_ha_cm3``: volumetric BMD, the mean over all voxels of the
  region (the whole box, or the region of interest when one was used).

Both are means of a linear function of the grey values, so they equal the
calibration applied to the mean grey value (stored too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bonesim.errors import BonesimError
from bonesim.volume import Volume

UNIT = "mg HA/cm3"


def check_calibration(slope: float | None, intercept: float | None) -> tuple[float, float] | None:
    """Both or neither; a finite slope > 0 (bone is the bright phase) and a finite intercept."""
    if slope is None and intercept is None:
        return None
    if slope is None or intercept is None:
        raise BonesimError(
            "a density calibration needs both slope= and intercept= (mg HA/cm3 = slope * grey + intercept)",
            cli="a density calibration needs both --calibration-slope and --calibration-intercept "
            "(mg HA/cm3 = S * grey + I)",
        )
    s, i = float(slope), float(intercept)
    if not (np.isfinite(s) and s > 0):
        raise BonesimError(
            f"the calibration slope must be a finite number > 0 (bone is brighter), got {slope!r}",
            cli=f"--calibration-slope must be a finite number > 0 (bone is brighter), got {slope!r}",
        )
    if not np.isfinite(i):
        raise BonesimError(
            f"the calibration intercept must be a finite number, got {intercept!r}",
            cli=f"--calibration-intercept must be a finite number, got {intercept!r}",
        )
    return s, i


def calibrate(
    bone: Volume, grey: np.ndarray, slope: float, intercept: float, *, roi: np.ndarray | None = None
) -> Volume:
    """Return ``bone`` with ``metadata['calibration']``: the calibration, TMD and vBMD in mg HA/cm³.

    ``grey`` are the grey values ``bone`` was segmented from (same shape);
    ``roi`` (optional, boolean, same shape) restricts vBMD to a region.

    >>> g = np.zeros((4, 4, 4), np.float32); g[:2] = 100
    >>> b = Volume(np.where(g > 50, 255, 0).astype(np.uint8), 20)
    >>> c = calibrate(b, g, slope=8.0, intercept=-50.0).metadata["calibration"]
    >>> c["tmd_mg_ha_cm3"], c["vbmd_mg_ha_cm3"]
    (750.0, 350.0)
    """
    cal = check_calibration(slope, intercept)
    assert cal is not None
    s, i = cal
    grey = np.asarray(grey)
    if grey.shape != bone.shape:
        raise BonesimError(f"grey values of shape {grey.shape} do not match the bone volume {bone.shape}")
    region = np.ones(bone.shape, bool) if roi is None else np.asarray(roi, bool)
    is_bone = (np.asarray(bone.data) > 127) & region
    n_bone = int(is_bone.sum())
    mean_all = float(grey[region].mean(dtype=np.float64)) if region.any() else float("nan")
    mean_bone = float(grey[is_bone].mean(dtype=np.float64)) if n_bone else float("nan")
    info: dict[str, Any] = {
        "slope": s,
        "intercept": i,
        "unit": UNIT,
        "formula": "density = slope * grey + intercept",
        "bone_voxels": n_bone,
        "mean_grey_bone": mean_bone,
        "mean_grey_all": mean_all,
        "tmd_mg_ha_cm3": s * mean_bone + i if n_bone else None,
        "vbmd_mg_ha_cm3": s * mean_all + i,
    }
    return bone.with_data(bone.data, calibration=info)
