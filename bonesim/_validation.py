"""Small argument checks whose messages name the parameter and echo the value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bonesim.errors import InputError


def check_ndim(arr: Any, ndim: int, /, *, name: str) -> None:
    """Raise ``ValueError`` unless ``arr`` has ``ndim`` dimensions.

    >>> check_ndim(np.zeros((2, 2)), 3, name="volume")
    Traceback (most recent call last):
    ...
    bonesim.errors.InputError: `volume` must be 3-dimensional, got shape (2, 2)
    """
    shape = tuple(np.shape(arr))
    if len(shape) != ndim:
        raise InputError(f"`{name}` must be {ndim}-dimensional, got shape {shape}")


def check_positive(value: Any, /, *, name: str) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless finite and > 0.

    >>> check_positive(-1, name="voxel_size_um")
    Traceback (most recent call last):
    ...
    bonesim.errors.InputError: `voxel_size_um` must be a finite number > 0, got -1
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"`{name}` must be a finite number > 0, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"`{name}` must be a finite number > 0, got {value!r}")
    return v


def check_in_range(value: Any, lo: float, hi: float, /, *, name: str) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless lo <= value <= hi.

    >>> check_in_range(2.0, 0, 1, name="bvtv")
    Traceback (most recent call last):
    ...
    bonesim.errors.InputError: `bvtv` must be in [0, 1], got 2.0
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"`{name}` must be in [{lo:g}, {hi:g}], got {value!r}") from None
    if not (lo <= v <= hi):
        raise InputError(f"`{name}` must be in [{lo:g}, {hi:g}], got {value!r}")
    return v


def check_choice(value: str, choices: tuple[str, ...], /, *, name: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``.

    >>> check_choice("gpu", ("numpy", "cupy"), name="backend")
    Traceback (most recent call last):
    ...
    bonesim.errors.InputError: `backend` must be one of 'numpy', 'cupy', got 'gpu'
    """
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise InputError(f"`{name}` must be one of {allowed}, got {value!r}")
    return value
