"""The bone fraction as a micro-CT scanner would image it: a Gaussian point-spread function.

The CA stores bone as a fraction per voxel (0-255). Where a remodeling cycle
leaves less bone than it removed (f < 1), the deficit sits as sub-voxel bone
at the tops of the refilled columns, and neighbouring columns cross the
binarisation level (half a voxel of bone) at different cycles: a binarised
frame then shows one-voxel pits, enclosed pockets and tunnels that no scanner
would resolve. A scanner sees the mineral through its point-spread function
and a segmentation usually smooths before it thresholds (the real sample of
this repository was segmented after a Gaussian of σ = 1 voxel, 19.5 µm).

:func:`scanner_view` blurs the bone fraction with a Gaussian of σ = ``psf_um``
(in µm, so the same physical blur at every voxel size) and returns it as
bone fractions again, which :func:`bonesim.morphometry.morphometry` then
binarises at half a voxel as usual. ``psf_um = 0`` returns the frame as it is.
The blur conserves the mean bone fraction away from the faces (reflecting
boundary: exactly, ``scipy.ndimage.gaussian_filter`` with ``mode='reflect'``)
up to the rounding to 0-255.
"""

from __future__ import annotations

import numpy as np

from bonesim.errors import InputError


def scanner_view(bone: np.ndarray, voxel_size_um: float, psf_um: float) -> np.ndarray:
    """``bone`` (uint8 fractions, zyx) blurred by a Gaussian PSF of σ = ``psf_um`` µm, as uint8.

    >>> b = np.zeros((1, 1, 9), np.uint8); b[..., 4] = 100       # a sub-voxel speck below half a voxel
    >>> scanner_view(b, 20.0, 0.0) is b
    True
    >>> v = scanner_view(b, 20.0, 20.0); int(v.max()) < 100, abs(int(v.sum()) - 100) <= 4
    (True, True)
    """
    psf = float(psf_um)
    if not np.isfinite(psf) or psf < 0:
        raise InputError(f"`psf_um` must be a finite number >= 0 (µm), got {psf_um!r}")
    if not float(voxel_size_um) > 0:
        raise InputError(f"`voxel_size_um` must be positive, got {voxel_size_um!r}")
    if psf == 0.0:
        return bone
    from scipy import ndimage

    sigma = psf / float(voxel_size_um)
    out = ndimage.gaussian_filter(np.asarray(bone, np.float32), sigma, mode="reflect", output=np.float32)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)
