"""The real human trabecular sample of the repository, segmented the documented way.

``data/lhdl_3155_D_4_bc/slices`` (200 TIFF slices at 19.5 µm; provenance in its
README): Gaussian σ = 1 voxel, threshold 63, largest 26-connected bone
component. The benchmarks, the ParOSol comparison and the morphometry
cross-check all use this one function. Needs ``tifffile`` (the ``[io]`` extra)
and a source checkout (the slices are not in the wheel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bonesim._resources import data_dir
from bonesim.errors import BonesimError

VOXEL_UM = 19.5
N_SLICES = 200


def sample_slices() -> list[Path]:
    """The TIFF slices of the real sample ([] when the checkout lacks them)."""
    folder = data_dir() / "lhdl_3155_D_4_bc" / "slices"
    return sorted(folder.glob("*.tif")) if folder.is_dir() else []


def real_sample_mask(sigma: float = 1.0, threshold: float = 63.0) -> np.ndarray:
    """Boolean bone mask (z, y, x) of the real sample: smoothed, thresholded, largest component."""
    from scipy import ndimage

    files = sample_slices()
    if len(files) != N_SLICES:
        raise BonesimError(
            f"the real sample needs {N_SLICES} slices in data/lhdl_3155_D_4_bc/slices, found {len(files)}"
        )
    try:
        import tifffile
    except ImportError:
        raise BonesimError("reading the real sample needs tifffile: pip install 'bonesim[io]'") from None
    grey = np.stack([tifffile.imread(f) for f in files]).astype(np.float32)
    mask = ndimage.gaussian_filter(grey, sigma) > threshold
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


def real_sample(sigma: float = 1.0, threshold: float = 63.0) -> np.ndarray:
    """The same as :func:`real_sample_mask`, as uint8 bone fractions (255 bone, 0 marrow)."""
    return np.where(real_sample_mask(sigma, threshold), 255, 0).astype(np.uint8)
