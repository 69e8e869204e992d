"""`Volume`: the one type every bonesim module passes around.

A volume is a 3-D array in ``zyx`` (C) order plus an isotropic voxel size in
micrometres and free-form metadata. A *bone volume* holds the mineralised bone
fraction of every voxel as ``uint8`` (0 = marrow, 255 = full bone); grey-value
volumes (imported micro-CT) hold any real dtype until they are segmented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bonesim._validation import check_ndim, check_positive
from bonesim.errors import InputError, InputTypeError

#: Value of a fully mineralised voxel in a bone-fraction volume.
BONE_FULL = 255
#: The iso-level of the bone surface (display, morphometry) in bone-fraction units.
BONE_LEVEL = 127.5


@dataclass(frozen=True)
class Volume:
    """A 3-D array with an isotropic voxel size.

    Parameters
    ----------
    data : ndarray
        3-D array, axis order ``zyx``. A bone volume is ``uint8`` with 255 = bone.
    voxel_size_um : float
        Edge length of a (cubic) voxel in micrometres; finite and > 0.
    metadata : dict
        Free-form provenance (source file, segmentation threshold, ...);
        values must be JSON-serialisable to survive an HDF5 round trip.
    compartments : ndarray, optional
        uint8 labels of the same shape (0 outside, 1 cortical, 2 trabecular;
        :mod:`bonesim.morphometry.compartments`), how they were found in
        ``metadata["compartments"]``. Stored as ``/volume/compartments`` and
        carried from an input volume into a simulation's result.

    Examples
    --------
    >>> v = Volume(np.full((4, 4, 4), 255, np.uint8), voxel_size_um=20)
    >>> v.shape, v.voxel_size_um, v.bv_tv
    ((4, 4, 4), 20.0, 1.0)
    >>> Volume(np.zeros((4, 4)), 20)
    Traceback (most recent call last):
    ...
    bonesim.errors.InputError: `volume` must be 3-dimensional, got shape (4, 4)
    """

    data: np.ndarray
    voxel_size_um: float
    metadata: dict[str, Any] = field(default_factory=dict)
    compartments: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        check_ndim(data, 3, name="volume")
        if data.dtype.kind not in "uifb":
            raise InputTypeError(f"`volume` must hold real numbers, got dtype {data.dtype}")
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise InputError("`volume` contains NaN or infinite values")
        if data.dtype == bool:
            data = data.astype(np.uint8) * np.uint8(BONE_FULL)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "voxel_size_um", check_positive(self.voxel_size_um, name="voxel_size_um"))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if self.compartments is not None:
            c = np.asarray(self.compartments)
            if c.shape != data.shape or c.dtype != np.uint8:
                raise InputError(
                    f"`compartments` must be uint8 labels of the volume's shape {data.shape}, "
                    f"got {c.dtype} {c.shape}"
                )
            object.__setattr__(self, "compartments", c)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def is_bone_fraction(self) -> bool:
        """True when ``data`` is a uint8 bone fraction (255 = bone)."""
        return self.data.dtype == np.uint8

    @property
    def bv_tv(self) -> float:
        """Bone volume fraction: the mean bone fraction (sub-voxel bone counts).

        Only defined for bone-fraction volumes.
        """
        if not self.is_bone_fraction:
            raise InputTypeError(
                f"BV/TV needs a uint8 bone-fraction volume, got dtype {self.data.dtype}; "
                "segment it first (bonesim.io.segment)"
            )
        return float(self.data.mean(dtype=np.float64) / BONE_FULL)

    @property
    def size_um(self) -> tuple[float, float, float]:
        """Physical extent along ``z, y, x`` in micrometres."""
        return tuple(n * self.voxel_size_um for n in self.shape)  # type: ignore[return-value]

    def with_data(self, data: np.ndarray, **metadata: Any) -> Volume:
        """Return a volume with new data, the same voxel size and merged metadata."""
        return Volume(data, self.voxel_size_um, {**self.metadata, **metadata})
