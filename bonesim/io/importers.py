"""Import grey-value micro-CT volumes from common file formats.

:func:`import_volume` reads a 3-D image and returns a :class:`~bonesim.volume.Volume`
of grey values (the file's own dtype, or float32 after downsampling) in ``zyx``
order. Segment it with :func:`bonesim.io.segment.segment` to get a bone volume.

Formats (picked from the path, or forced with ``fmt=``):

=========  ======================================  ===============================  =================
``fmt``    path                                    reader                           voxel size
=========  ======================================  ===============================  =================
tiff       ``.tif/.tiff`` multi-page, or a folder  tifffile                         ImageJ/resolution
           of 2-D slices (sorted by name)                                           tags, else needed
npy        ``.npy``                                numpy (memory-mapped)            needed
mhd        ``.mhd`` (+ ``.raw``), ``.mha``         SimpleITK                        ElementSpacing (mm)
nifti      ``.nii``, ``.nii.gz``                   nibabel                          pixdim + xyzt_units
dicom      a folder of DICOM slices                pydicom                          PixelSpacing,
                                                                                    slice positions
scanco     ``.aim``, ``.isq``                      aimio-py (``py_aimio``)          element size (mm)
=========  ======================================  ===============================  =================

A voxel size given by the caller wins over the file's; a file without one
needs it. bonesim volumes are isotropic: an anisotropic spacing is refused
unless ``resample_um`` asks for trilinear resampling onto cubic voxels
(:func:`resample`; ``'auto'``: the smallest spacing), or ``voxel_size_um``
overrides it knowingly.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bonesim._validation import check_choice, check_positive
from bonesim.errors import BonesimError
from bonesim.volume import Volume

log = logging.getLogger(__name__)

FORMATS = ("tiff", "npy", "mhd", "nifti", "dicom", "scanco")
_TIFF_SUFFIXES = (".tif", ".tiff")
#: relative tolerance for calling a spacing isotropic
_ISO_RTOL = 1e-3

Crop = Sequence[tuple[int | None, int | None] | slice]


# ------------------------------------------------------------ dispatch ----
def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of ``path`` from its suffix (files) or its contents (folders).

    >>> detect_format("scan.nii.gz"), detect_format("a/b.MHD"), detect_format("x.aim")
    ('nifti', 'mhd', 'scanco')
    """
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        files = [f for f in sorted(p.iterdir()) if f.is_file() and not f.name.startswith(".")]
        if any(f.suffix.lower() in _TIFF_SUFFIXES for f in files):
            return "tiff"
        if any(f.suffix.lower() == ".dcm" or _is_dicom(f) for f in files[:5]):
            return "dicom"
        raise BonesimError(f"folder {p} holds no TIFF slices or DICOM files")
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    suffix = p.suffix.lower()
    table = {".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".mhd": "mhd", ".mha": "mhd"}
    table.update({".aim": "scanco", ".isq": "scanco", ".dcm": "dicom"})
    if suffix in table:
        return table[suffix]
    if re.fullmatch(r"\.(aim|isq);\d+", suffix):  # OpenVMS versioned Scanco names
        return "scanco"
    raise BonesimError(
        f"cannot tell the format of {p} from its name; use one of .tif/.tiff, .npy, .mhd/.mha, "
        ".nii/.nii.gz, .aim/.isq, or a folder of TIFF/DICOM slices"
    )


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def import_volume(
    path: str | os.PathLike,
    *,
    voxel_size_um: float | None = None,
    fmt: str | None = None,
    crop: Crop | None = None,
    downsample: int = 1,
    resample_um: float | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Volume:
    """Read a 3-D grey-value image into a :class:`Volume`.

    Parameters
    ----------
    path : path-like
        A file, or a folder of TIFF or DICOM slices.
    voxel_size_um : float, optional
        Isotropic voxel size in µm. Overrides the file's; required when the
        format carries none (``.npy``, plain TIFF).
    fmt : {'tiff', 'npy', 'mhd', 'nifti', 'dicom', 'scanco'}, optional
        Force a reader instead of guessing from ``path``.
    crop : sequence of three (start, stop) pairs or slices, optional
        Region to keep along ``z, y, x`` in voxels of the file (before
        downsampling); ``None`` bounds mean the edge.
    downsample : int
        Average blocks of ``downsample``³ voxels (the remainder at the far
        edges is dropped); the voxel size grows by the same factor.
    resample_um : float or 'auto', optional
        Resample the (cropped) grey values trilinearly onto cubic voxels of
        this edge in µm before downsampling (:func:`resample`); ``'auto'``
        picks the smallest spacing of the file, so no axis loses resolution.
        This is how an anisotropic file is imported; ``metadata['resample']``
        records the original spacing.
    progress : callable(done, total), optional
        Called after each slice of a folder is read.

    Returns
    -------
    Volume
        Grey values in ``zyx`` order; ``metadata`` records the source, the
        format, the original shape, crop, resampling, downsampling and where
        the voxel size came from.

    Raises
    ------
    BonesimError
        Missing path, unknown format, a 2-D or 4-D image, NaN/inf values, a
        missing voxel size, an anisotropic one without ``resample_um``, a bad
        crop or ``resample_um``.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "v.npy")
    >>> np.save(p, np.arange(64, dtype=np.uint8).reshape(4, 4, 4))
    >>> v = import_volume(p, voxel_size_um=10, downsample=2)
    >>> v.shape, v.voxel_size_um, float(v.data[0, 0, 0])
    ((2, 2, 2), 20.0, 10.5)
    """
    from bonesim.preflight import check_memory

    p = Path(path)
    if not p.exists():
        raise BonesimError(f"input not found: {p}")
    if voxel_size_um is not None:
        voxel_size_um = check_positive(voxel_size_um, name="voxel_size_um")
    if not isinstance(downsample, (int, np.integer)) or isinstance(downsample, bool) or downsample < 1:
        raise BonesimError(f"`downsample` must be an integer >= 1, got {downsample!r}")
    fmt = detect_format(p) if fmt is None else check_choice(fmt, FORMATS, name="fmt")
    if p.is_dir() and fmt not in ("tiff", "dicom"):
        raise BonesimError(f"expected a {fmt} file but {p} is a directory")
    if not p.is_dir() and fmt == "dicom":
        raise BonesimError(f"a DICOM series is read from a folder of slices, got the file {p}")

    reader = _READERS[fmt]
    data, spacing_um, extra = reader(p, progress)
    data = np.asarray(data) if not isinstance(data, np.memmap) else data
    shape = tuple(int(n) for n in data.shape)
    if data.ndim != 3:
        raise BonesimError(f"{p} holds a {data.ndim}-D image of shape {shape}; bonesim needs a 3-D volume")
    if data.dtype.kind not in "uifb":
        raise BonesimError(f"{p} holds values of dtype {data.dtype}; bonesim needs real grey values")

    target_um = _check_resample(resample_um)
    if target_um is None:
        vs, vs_source = _resolve_voxel_size(p, spacing_um, voxel_size_um)
        spacing = (vs, vs, vs)
    else:
        spacing, vs_source = _resolve_spacing(p, spacing_um, voxel_size_um)
        vs = min(spacing) if target_um == "auto" else target_um
    region = _crop_slices(crop, shape)
    data = data[region]
    resampled: dict[str, Any] | None = None
    if target_um is not None:
        out_shape = resampled_shape(data.shape, spacing, vs)
        check_memory(4 * (data.size + int(np.prod(out_shape))), what=f"resampling {p.name} to {vs:g} um")
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise BonesimError(f"{p} contains NaN or infinite grey values; clean the image before importing")
        resampled = {
            "from_spacing_um": [float(s) for s in spacing],
            "to_um": float(vs),
            "requested": "auto" if target_um == "auto" else float(vs),
            "shape_before": [int(n) for n in data.shape],
            "order": 1,
        }
        data = resample(data, spacing, vs)
    # the cropped grey values, a float copy for smoothing/segmentation and the uint8 result
    check_memory(
        data.size * (data.dtype.itemsize + 8 + 1), what=f"importing {tuple(data.shape)} voxels of {p.name}"
    )
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise BonesimError(f"{p} contains NaN or infinite grey values; clean the image before importing")
    if downsample > 1:
        data = block_mean(data, downsample)
        vs *= downsample
    else:
        data = np.ascontiguousarray(data)
    if min(data.shape) < 1:
        raise BonesimError(f"nothing left of {p} after crop/downsample (shape {data.shape})")
    meta: dict[str, Any] = {
        "source": str(p),
        "format": fmt,
        "source_shape": list(shape),
        "voxel_size_source": vs_source,
        "crop": [[s.start, s.stop] for s in region],
        "downsample": int(downsample),
        **extra,
    }
    if resampled is not None:
        meta["resample"] = resampled
    log.info("imported %s (%s) shape %s at %.4g um", p, fmt, data.shape, vs)
    return Volume(data, vs, meta)


def import_roi(path: str | os.PathLike, grey: Volume, *, fmt: str | None = None) -> np.ndarray:
    """Read a region-of-interest mask for ``grey`` (a volume from :func:`import_volume`).

    The mask file (any format :func:`import_volume` reads; nonzero = inside)
    must have the shape of the *input* image. It goes through the same crop,
    resampling and downsampling as the image, recorded in ``grey.metadata``
    (linear interpolation / block means of 0 and 1, inside where ≥ 0.5),
    so it lands on the same voxels. Returns a boolean array of
    ``grey.shape``. Its voxel size, if any, is not used.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p, m = os.path.join(d, "g.npy"), os.path.join(d, "m.npy")
    >>> np.save(p, np.zeros((4, 4, 4), np.uint8)); roi = np.zeros((4, 4, 4), bool); roi[:2] = True
    >>> np.save(m, roi)
    >>> g = import_volume(p, voxel_size_um=10, downsample=2)
    >>> import_roi(m, g)[:, 0, 0].tolist()
    [True, False]
    """
    p = Path(path)
    if not p.exists():
        raise BonesimError(f"mask not found: {p}")
    fmt = detect_format(p) if fmt is None else check_choice(fmt, FORMATS, name="fmt")
    data, _spacing, _extra = _READERS[fmt](p, None)
    data = np.asarray(data)
    meta = grey.metadata
    want = tuple(meta.get("source_shape", grey.shape))
    if data.shape != want:
        raise BonesimError(
            f"mask {p} has shape {tuple(data.shape)} but the image has {want}; the mask needs the input's "
            "shape (before crop, resampling and downsampling)"
        )
    if data.dtype.kind not in "uifb":
        raise BonesimError(f"mask {p} holds values of dtype {data.dtype}; expected 0/1 or bool")
    region = tuple(slice(a, b) for a, b in meta.get("crop", [[0, n] for n in want]))
    inside = (data[region] != 0).astype(np.float32)
    res = meta.get("resample")
    if res is not None:
        inside = resample(inside, res["from_spacing_um"], res["to_um"])
    if int(meta.get("downsample", 1)) > 1:
        inside = block_mean(inside, int(meta["downsample"]))
    roi = inside >= 0.5
    if roi.shape != grey.shape:  # pragma: no cover - the same steps give the same shape
        raise BonesimError(f"mask {p} became {roi.shape} after crop/resample/downsample, not {grey.shape}")
    if not roi.any():
        raise BonesimError(f"mask {p} selects no voxel of the (cropped) image")
    return roi


def _resolve_voxel_size(
    p: Path, spacing_um: tuple[float, float, float] | None, given: float | None
) -> tuple[float, str]:
    if given is not None:
        if spacing_um is not None and not np.allclose(spacing_um, given, rtol=_ISO_RTOL):
            log.warning("%s: file spacing %s um overridden by voxel_size_um=%g", p, spacing_um, given)
        return given, "argument"
    if spacing_um is None or not all(np.isfinite(s) and s > 0 for s in spacing_um):
        what = f"{p} carries no voxel size; give it with"
        raise BonesimError(f"{what} voxel_size_um=", cli=f"{what} --voxel-size UM")
    if not np.allclose(spacing_um, spacing_um[0], rtol=_ISO_RTOL):
        zyx = ", ".join(f"{s:.4g}" for s in spacing_um)
        what = (
            f"{p} has anisotropic voxels (z, y, x = {zyx} um); bonesim needs isotropic voxels: "
            "resample them with"
        )
        raise BonesimError(
            f"{what} resample_um='auto' (or a size in um), or force a size with voxel_size_um=",
            cli=f"{what} --resample-um auto (or a size in um), or force a size with --voxel-size UM",
        )
    return float(np.mean(spacing_um)), "file"


def _check_resample(value: float | str | None) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BonesimError(
            f"resample_um must be 'auto' or a size in um, got {value!r}",
            cli=f"--resample-um must be 'auto' or a size in um, got {value!r}",
        ) from None
    if not (np.isfinite(v) and v > 0):
        raise BonesimError(
            f"resample_um must be a size > 0 in um, got {value!r}",
            cli=f"--resample-um must be a size > 0 in um, got {value!r}",
        )
    return v


def _resolve_spacing(
    p: Path, spacing_um: tuple[float, float, float] | None, given: float | None
) -> tuple[tuple[float, float, float], str]:
    """The (z, y, x) spacing to resample from: the caller's isotropic size, else the file's."""
    if given is not None:
        return (given, given, given), "argument"
    if spacing_um is None or not all(np.isfinite(s) and s > 0 for s in spacing_um):
        what = f"{p} carries no voxel size; give it with"
        raise BonesimError(f"{what} voxel_size_um=", cli=f"{what} --voxel-size UM")
    return tuple(float(s) for s in spacing_um), "file"  # type: ignore[return-value]


def resampled_shape(
    shape: Sequence[int], spacing_um: Sequence[float], target_um: float
) -> tuple[int, int, int]:
    """Voxels per axis after resampling: as many ``target_um`` voxels as fit in the extent (at least 1).

    >>> resampled_shape((10, 20, 20), (30.0, 10.0, 10.0), 10.0)
    (30, 20, 20)
    """
    # the small tolerance keeps 10 x 30 / 10 = 30 voxels despite rounding of the spacings
    return tuple(
        max(1, int(np.floor(n * s / target_um + 1e-6))) for n, s in zip(shape, spacing_um, strict=True)
    )  # type: ignore[return-value]


def resample(data: np.ndarray, spacing_um: Sequence[float], target_um: float) -> np.ndarray:
    """Trilinear resampling of grey values from ``spacing_um`` (z, y, x) onto cubic ``target_um`` voxels.

    Voxel ``i`` of the result is centred at ``(i + 1/2) · target_um`` from the
    first face of the image, as voxel ``j`` of the input is at
    ``(j + 1/2) · spacing``: the result covers the input's extent with exactly
    ``target_um`` voxels (the far remainder, less than one voxel, is dropped),
    so lengths and volumes in µm carry over. Values are interpolated linearly
    (``scipy.ndimage.affine_transform``, ``order=1``, the interpolation of
    ``scipy.ndimage.zoom(order=1)`` with the exact scale instead of a rounded
    one) and taken from the nearest voxel outside the outermost centres.
    Returns float32.

    >>> g = np.zeros((2, 1, 1), np.float32); g[1] = 90
    >>> resample(g, (30.0, 10.0, 10.0), 10.0).ravel().tolist()
    [0.0, 0.0, 30.0, 60.0, 90.0, 90.0]
    """
    from scipy import ndimage

    scale = np.asarray([target_um / float(s) for s in spacing_um])
    out_shape = resampled_shape(data.shape, spacing_um, target_um)
    return ndimage.affine_transform(
        np.asarray(data, np.float32),
        scale,
        offset=0.5 * scale - 0.5,
        output_shape=out_shape,
        output=np.float32,
        order=1,
        mode="nearest",
    )


def _crop_slices(crop: Crop | None, shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    if crop is None:
        return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
    if len(crop) != 3:
        raise BonesimError(f"`crop` needs three ranges (z, y, x), got {crop!r}")
    out = []
    for axis, (c, n) in enumerate(zip(crop, shape, strict=True)):
        start, stop = (c.start, c.stop) if isinstance(c, slice) else c
        start = 0 if start is None else int(start)
        stop = n if stop is None else int(stop)
        if start < 0:
            start += n
        if stop < 0:
            stop += n
        if not 0 <= start < stop <= n:
            raise BonesimError(f"`crop` range {c!r} along {'zyx'[axis]} is empty or outside 0..{n}")
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def parse_crop(text: str) -> list[tuple[int | None, int | None]]:
    """Parse ``"z0:z1,y0:y1,x0:x1"`` (bounds may be empty) into three pairs.

    >>> parse_crop("10:74,:,0:64")
    [(10, 74), (None, None), (0, 64)]
    """
    parts = text.split(",")
    if len(parts) != 3:
        raise BonesimError(f"a crop needs three ranges z0:z1,y0:y1,x0:x1, got {text!r}")
    out = []
    for part in parts:
        m = re.fullmatch(r"\s*(-?\d*)\s*:\s*(-?\d*)\s*", part)
        if not m:
            raise BonesimError(f"crop range {part!r} is not of the form start:stop")
        out.append(tuple(int(g) if g else None for g in m.groups()))
    return out  # type: ignore[return-value]


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor``³ blocks, as float32 (far remainder dropped).

    >>> block_mean(np.arange(8.0).reshape(2, 2, 2), 2).ravel().tolist()
    [3.5]
    """
    z, y, x = (n // factor for n in data.shape)
    if min(z, y, x) == 0:
        raise BonesimError(f"cannot downsample shape {data.shape} by {factor}")
    out = np.empty((z, y, x), np.float32)
    for k in range(z):  # slab by slab keeps memory at one slab of float64
        slab = np.asarray(data[k * factor : (k + 1) * factor, : y * factor, : x * factor], np.float64)
        out[k] = slab.reshape(factor, y, factor, x, factor).mean(axis=(0, 2, 4))
    return out


# ------------------------------------------------------------- readers ----
def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _need(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BonesimError(
            f"reading this format needs the {package} package: pip install {package} "
            "(or pip install 'bonesim[io]')"
        ) from None


def _read_tiff(p: Path, progress: Any) -> tuple[np.ndarray, Any, dict]:
    tifffile = _need("tifffile", "tifffile")
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.suffix.lower() in _TIFF_SUFFIXES), key=_natural_key)
        if not files:
            raise BonesimError(f"folder {p} holds no .tif/.tiff slices")
        first = tifffile.imread(files[0])
        if first.ndim != 2:
            raise BonesimError(
                f"{files[0]} is not a 2-D slice (shape {first.shape}); a folder must hold one slice per file"
            )
        data = np.empty((len(files), *first.shape), first.dtype)
        for i, f in enumerate(files):
            img = first if i == 0 else tifffile.imread(f)
            if img.shape != first.shape:
                raise BonesimError(f"slice {f.name} has shape {img.shape}, the first slice {first.shape}")
            data[i] = img
            if progress:
                progress(i + 1, len(files))
        spacing = _tiff_spacing(files[0], tifffile, z_from_spacing=True)
        return data, spacing, {"slices": len(files)}
    data = tifffile.imread(p)
    return data, _tiff_spacing(p, tifffile), {}


_UNIT_UM = {"um": 1.0, "µm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0, "mm": 1e3, "nm": 1e-3}


def _tiff_spacing(
    path: Path, tifffile: Any, z_from_spacing: bool = True
) -> tuple[float, float, float] | None:
    """Voxel size from ImageJ metadata (unit, spacing) and resolution tags; None if absent."""
    with tifffile.TiffFile(path) as tif:
        ij = tif.imagej_metadata or {}
        page = tif.pages[0]
        unit = str(ij.get("unit", "")).strip().lower()
        xres = page.tags.get("XResolution")
        yres = page.tags.get("YResolution")
        if unit not in _UNIT_UM or xres is None or yres is None:
            return None
        scale = _UNIT_UM[unit]

        def size(tag: Any) -> float:
            num, den = tag.value
            return scale * den / num if num else float("nan")

        x, y = size(xres), size(yres)
        z = float(ij["spacing"]) * scale if "spacing" in ij else (x if x == y else float("nan"))
        return (z, y, x)


def _read_npy(p: Path, progress: Any) -> tuple[np.ndarray, Any, dict]:
    try:
        data = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise BonesimError(f"{p} is not a plain .npy array ({exc})") from None
    return data, None, {}


def _read_mhd(p: Path, progress: Any) -> tuple[np.ndarray, Any, dict]:
    sitk = _need("SimpleITK", "SimpleITK")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise BonesimError(f"cannot read MetaImage {p}: {str(exc).strip().splitlines()[-1]}") from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise BonesimError(f"{p} has {img.GetNumberOfComponentsPerPixel()} components per voxel; need grey")
    data = sitk.GetArrayFromImage(img)  # zyx
    sx, sy, sz = (s * 1000.0 for s in img.GetSpacing()[:3]) if img.GetDimension() >= 3 else (0, 0, 0)
    return data, (sz, sy, sx) if data.ndim == 3 else None, {}


def _read_nifti(p: Path, progress: Any) -> tuple[np.ndarray, Any, dict]:
    nib = _need("nibabel", "nibabel")
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj)  # applies scl_slope/inter; index order x, y, z
    except Exception as exc:
        raise BonesimError(f"cannot read NIfTI {p}: {exc}") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        return data, None, {}
    zooms = img.header.get_zooms()[:3]
    space_unit = img.header.get_xyzt_units()[0]
    scale = {"meter": 1e6, "mm": 1e3, "micron": 1.0}.get(space_unit, 1e3)  # NIfTI default is mm
    sx, sy, sz = (float(z) * scale for z in zooms)
    return np.transpose(data, (2, 1, 0)), (sz, sy, sx), {"nifti_space_unit": space_unit}


def _read_dicom(p: Path, progress: Any) -> tuple[np.ndarray, Any, dict]:
    pydicom = _need("pydicom", "pydicom")
    files = [f for f in sorted(p.iterdir(), key=_natural_key) if f.is_file() and not f.name.startswith(".")]
    slices = []
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except Exception:
            log.debug("skipping non-DICOM file %s", f)
            continue
        if "PixelData" in ds:
            slices.append(ds)
    if not slices:
        raise BonesimError(f"folder {p} holds no DICOM images")
    series = {str(getattr(s, "SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise BonesimError(f"folder {p} mixes {len(series)} DICOM series; put one series per folder")

    def position(ds: Any) -> float:
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            o = np.asarray(ds.ImageOrientationPatient, float)
            return float(np.dot(np.cross(o[:3], o[3:]), np.asarray(ds.ImagePositionPatient, float)))
        return float(getattr(ds, "InstanceNumber", 0))

    slices.sort(key=position)
    planes = []
    for i, ds in enumerate(slices):
        arr = ds.pixel_array.astype(np.float64)
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
        planes.append(arr * slope + inter if (slope, inter) != (1.0, 0.0) else ds.pixel_array)
        if progress:
            progress(i + 1, len(slices))
    if len({pl.shape for pl in planes}) > 1:
        raise BonesimError(f"the DICOM slices in {p} differ in size")
    data = np.stack(planes)
    if data.dtype == np.float64 and np.array_equal(data, np.round(data)) and data.min() >= -(2**31):
        data = data.astype(np.int32)
    spacing = None
    first = slices[0]
    if "PixelSpacing" in first:
        sy, sx = (float(v) * 1000.0 for v in first.PixelSpacing)
        if len(slices) > 1 and "ImagePositionPatient" in first:
            dz = np.diff([position(s) for s in slices])
            sz = float(np.median(dz)) * 1000.0
        else:
            sz = (
                float(getattr(first, "SpacingBetweenSlices", getattr(first, "SliceThickness", 0)) or 0) * 1000
            )
        spacing = (sz, sy, sx)
    return data, spacing, {"slices": len(slices)}


def _read_scanco(p: Path, progress: Any) -> tuple[np.ndarray, Any, dict]:
    aim = _need("py_aimio", "aimio-py")
    is_isq = p.suffix.lower().startswith(".isq")
    try:
        data, meta = aim.read_isq(str(p)) if is_isq else aim.read_aim(str(p))
    except Exception as exc:
        raise BonesimError(f"cannot read Scanco file {p}: {exc}") from None
    size = meta.get("element_size") or meta.get("spacing")
    spacing = None
    if size is not None and len(size) >= 3:
        # element size is in mm, order x y z, stored as float32: round to 6 digits
        sx, sy, sz = (float(f"{float(s) * 1000.0:.6g}") for s in size[:3])
        spacing = (sz, sy, sx)
    return np.asarray(data), spacing, {"scanco_kind": "isq" if is_isq else "aim"}


_READERS: dict[str, Callable[[Path, Any], tuple[np.ndarray, Any, dict]]] = {
    "tiff": _read_tiff,
    "npy": _read_npy,
    "mhd": _read_mhd,
    "nifti": _read_nifti,
    "dicom": _read_dicom,
    "scanco": _read_scanco,
}
