"""Shared helpers of the morphometry rooms: input checks, binarisation, NaN warnings."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from bonesim._validation import check_ndim, check_positive
from bonesim.errors import InputError, InputTypeError
from bonesim.volume import BONE_FULL, BONE_LEVEL, Volume

log = logging.getLogger(__name__)


class MorphometryWarning(UserWarning):
    """An index is undefined for this volume (no bone, no marrow, ...) and is returned as NaN."""


def as_fraction_volume(volume: Volume | np.ndarray, voxel_size_um: float | None = None) -> Volume:
    """Return ``volume`` as a uint8 bone-fraction :class:`Volume`.

    Accepts a :class:`Volume`, a boolean array (True = bone), a uint8 array
    (0..255) or a float array in [0, 1] (bone fraction). A plain array needs
    ``voxel_size_um``.

    >>> as_fraction_volume(np.ones((2, 2, 2), bool), 10).data.max()
    np.uint8(255)
    """
    if voxel_size_um is not None and np.ndim(voxel_size_um) > 0:
        sizes = np.ravel(voxel_size_um)
        if sizes.size and np.all(sizes == sizes[0]):
            voxel_size_um = float(sizes[0])
        else:
            raise InputError(
                f"anisotropic voxels are not supported (`voxel_size_um` = {tuple(sizes.tolist())}); "
                "resample the volume to isotropic voxels first"
            )
    if isinstance(volume, Volume):
        if voxel_size_um is not None and float(voxel_size_um) != volume.voxel_size_um:
            raise InputError(
                f"`voxel_size_um` {voxel_size_um!r} contradicts the volume's own {volume.voxel_size_um}"
            )
        vol = volume
    else:
        if voxel_size_um is None:
            raise InputError("`voxel_size_um` is required when `volume` is a plain array")
        check_positive(voxel_size_um, name="voxel_size_um")
        arr = np.asarray(volume)
        check_ndim(arr, 3, name="volume")
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise InputError("`volume` contains NaN or infinite values")
            if arr.size and (arr.min() < 0 or arr.max() > 1):
                raise InputError(
                    f"a float `volume` must hold bone fractions in [0, 1], got [{arr.min():g}, {arr.max():g}]"
                )
            arr = np.rint(arr * BONE_FULL).astype(np.uint8)
        vol = Volume(arr, voxel_size_um)
    if not vol.is_bone_fraction:
        raise InputTypeError(
            f"morphometry needs a uint8 bone-fraction volume (or bool / float in [0, 1]), "
            f"got dtype {vol.data.dtype}; segment it first (bonesim.io.segment)"
        )
    if 0 in vol.shape:
        raise InputError(f"`volume` is empty, got shape {vol.shape}")
    return vol


def binarise(data: np.ndarray) -> np.ndarray:
    """Bone mask of a bone-fraction array: voxels above the 127.5 surface level."""
    return data > BONE_LEVEL


def undefined(name: str, why: str) -> float:
    """Warn that index ``name`` is undefined and return NaN."""
    warnings.warn(f"{name} is undefined: {why}; returning NaN", MorphometryWarning, stacklevel=3)
    return float("nan")
