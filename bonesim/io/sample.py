"""The real human trabecular sample of the repository, segmented the documented way.

``data/lhdl_3155_D_4_bc/slices`` (200 TIFF slices at 19.5 µm; provenance in its
README): Gaussian σ = 1 voxel, threshold 63, largest 26-connected bone
component. The benchmarks, the ParOSol comparison and the morphometry
cross-check all use this one function.

The slices (7.9 MB of noisy grey values, ≈ 5.3 MB even losslessly compressed)
are not in the wheel. The wheel ships the *segmented* sample instead:
``lhdl_3155_D_4_bc/bone_sigma1_t63.npz`` (the σ = 1, threshold 63 mask as
packed bits, zlib-compressed) beside the sample's ``README.md`` and
``LICENSE``, written by ``scripts/make_sample_npz.py`` from the slices and
bit-identical to them (``tests/io/test_sample.py``). :func:`real_sample_mask`
reads that copy for the default settings and needs the slices (a source
checkout and ``tifffile``) only for other settings or the grey values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from bonesim._resources import data_dir
from bonesim.errors import BonesimError

VOXEL_UM = 19.5
N_SLICES = 200
SIGMA = 1.0
THRESHOLD = 63.0
NAME = "lhdl_3155_D_4_bc"
#: the segmented sample that ships in the wheel (see the module docstring)
SHIPPED = "bone_sigma1_t63.npz"
SOURCES = ("auto", "shipped", "slices")


def sample_dir() -> Path:
    """The folder of the sample (its README, LICENSE, the shipped mask and, in a checkout, the slices)."""
    return data_dir() / NAME


def sample_slices() -> list[Path]:
    """The TIFF slices of the real sample ([] when the checkout lacks them)."""
    folder = sample_dir() / "slices"
    return sorted(folder.glob("*.tif")) if folder.is_dir() else []


def shipped_path() -> Path:
    """Where the segmented copy of the sample lives (it may be missing in a partial checkout)."""
    return sample_dir() / SHIPPED


def sample_grey() -> np.ndarray:
    """The raw uint8 grey values (z, y, x) from the slices; needs a source checkout and tifffile."""
    files = sample_slices()
    if len(files) != N_SLICES:
        raise BonesimError(
            f"the real sample's grey values need the {N_SLICES} slices of a source checkout in "
            f"data/{NAME}/slices (found {len(files)}); the installed package ships only the segmented sample"
        )
    try:
        import tifffile
    except ImportError:
        raise BonesimError("reading the real sample needs tifffile: pip install 'bonesim[io]'") from None
    return np.stack([tifffile.imread(f) for f in files])


def mask_from_slices(sigma: float = SIGMA, threshold: float = THRESHOLD) -> np.ndarray:
    """Segment the slices: Gaussian ``sigma`` (voxels), ``> threshold``, largest 26-connected component."""
    from scipy import ndimage

    grey = sample_grey().astype(np.float32)
    mask = ndimage.gaussian_filter(grey, sigma) > threshold
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


def mask_digest(mask: np.ndarray) -> str:
    """SHA-256 of a mask's packed bits and shape (the shipped copy stores the one of its mask)."""
    h = hashlib.sha256(repr(tuple(int(n) for n in mask.shape)).encode())
    h.update(np.packbits(np.asarray(mask, bool)).tobytes())
    return h.hexdigest()


def save_shipped(mask: np.ndarray, path: str | Path) -> Path:
    """Write ``mask`` as the shipped copy: packed bits, shape, settings and a SHA-256 (``np.savez_compressed``)."""
    mask = np.asarray(mask, bool)
    path = Path(path)
    np.savez_compressed(
        path,
        bits=np.packbits(mask),
        shape=np.asarray(mask.shape, np.int64),
        voxel_size_um=np.float64(VOXEL_UM),
        sigma=np.float64(SIGMA),
        threshold=np.float64(THRESHOLD),
        sha256=np.asarray(mask_digest(mask)),
    )
    return path


def load_shipped(path: str | Path | None = None) -> np.ndarray:
    """Read the shipped segmented sample as a boolean mask; a damaged file is refused."""
    p = shipped_path() if path is None else Path(path)
    if not p.is_file():
        raise BonesimError(f"the segmented real sample {p} is missing; reinstall bonesim")
    try:
        with np.load(p, allow_pickle=False) as z:
            shape = tuple(int(n) for n in z["shape"])
            mask = np.unpackbits(z["bits"], count=int(np.prod(shape))).astype(bool).reshape(shape)
            digest = str(z["sha256"])
    except (OSError, KeyError, ValueError) as exc:
        raise BonesimError(f"cannot read the segmented real sample {p} ({exc}); reinstall bonesim") from None
    if mask_digest(mask) != digest:
        raise BonesimError(f"the segmented real sample {p} is damaged (checksum mismatch); reinstall bonesim")
    return mask


def real_sample_mask(
    sigma: float = SIGMA, threshold: float = THRESHOLD, *, source: str = "auto"
) -> np.ndarray:
    """Boolean bone mask (z, y, x) of the real sample: smoothed, thresholded, largest component.

    ``source='auto'`` reads the shipped copy for the default σ = 1, threshold 63
    (bit-identical to the slices, and works from the wheel) and segments the
    slices for any other setting; ``'shipped'`` or ``'slices'`` forces one.
    """
    from bonesim._validation import check_choice

    check_choice(source, SOURCES, name="source")
    default = float(sigma) == SIGMA and float(threshold) == THRESHOLD
    if source == "shipped" and not default:
        raise BonesimError(
            f"the shipped real sample is segmented at sigma {SIGMA:g}, threshold {THRESHOLD:g}; "
            "other settings need the slices of a source checkout"
        )
    if source == "shipped" or (source == "auto" and default and shipped_path().is_file()):
        return load_shipped()
    return mask_from_slices(sigma, threshold)


def real_sample(sigma: float = SIGMA, threshold: float = THRESHOLD, *, source: str = "auto") -> np.ndarray:
    """The same as :func:`real_sample_mask`, as uint8 bone fractions (255 bone, 0 marrow)."""
    return np.where(real_sample_mask(sigma, threshold, source=source), 255, 0).astype(np.uint8)


def provenance() -> dict[str, Any]:
    """Name, voxel size, licence and the full README/LICENSE texts of the sample (for file metadata)."""
    folder = sample_dir()
    texts = {}
    for key, fname in (("readme", "README.md"), ("license_text", "LICENSE")):
        f = folder / fname
        texts[key] = f.read_text(encoding="utf-8") if f.is_file() else ""
    return {
        "name": f"LHDL {NAME.removeprefix('lhdl_')}: human trabecular bone micro-CT",
        "voxel_size_um": VOXEL_UM,
        "origin": (
            "Living Human Digital Library (LHDL, EU FP6-IST 026932; Laboratorio di Tecnologia Medica, "
            "IOR Bologna), as redistributed in ciclope (Iori et al., doi 10.5281/zenodo.7716943)"
        ),
        "license": "MIT (of the distributing project; the original LHDL terms are not stated)",
        **texts,
    }
