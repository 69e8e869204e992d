"""Write 3-D arrays as MetaImage (``.mha``, header and zlib-compressed data in one file).

MetaImage is read by ITK/SimpleITK, VTK/ParaView, 3D Slicer and the
time-lapse HR-pQCT tools, and needs no package to write. The array is zyx
(C order, x fastest), written as ``DimSize = nx ny nz``; ``Offset`` is the
centre of the first voxel, ``(0.5, 0.5, 0.5)`` voxels from the corner, as in
bonesim's renders and the XDMF sidecar; spacing in mm.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from bonesim.errors import InputError

_TYPES = {
    np.dtype(np.uint8): "MET_UCHAR",
    np.dtype(np.int8): "MET_CHAR",
    np.dtype(np.uint16): "MET_USHORT",
    np.dtype(np.int16): "MET_SHORT",
    np.dtype(np.int32): "MET_INT",
    np.dtype(np.float32): "MET_FLOAT",
}


def mha_bytes(array: np.ndarray, spacing_mm: float) -> bytes:
    """The whole ``.mha`` file of a 3-D array (zyx) with cubic voxels of ``spacing_mm``.

    >>> b = mha_bytes(np.zeros((2, 3, 4), np.uint8), 0.02)
    >>> b.split(b"\\n")[7], b.split(b"\\n")[8]
    (b'ElementSpacing = 0.02 0.02 0.02', b'DimSize = 4 3 2')
    """
    a = np.asarray(array)
    if a.ndim != 3:
        raise InputError(f"a MetaImage here is 3-D, got shape {a.shape}")
    if a.dtype.newbyteorder("=") not in _TYPES:
        raise InputError(f"cannot write {a.dtype} as MetaImage (types: {', '.join(map(str, _TYPES))})")
    data = zlib.compress(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes(), 6)
    h = float(spacing_mm)
    nz, ny, nx = a.shape
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = True",
        f"CompressedDataSize = {len(data)}",
        f"Offset = {h / 2:g} {h / 2:g} {h / 2:g}",
        f"ElementSpacing = {h:g} {h:g} {h:g}",
        f"DimSize = {nx} {ny} {nz}",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        "AnatomicalOrientation = RAI",
        f"ElementType = {_TYPES[a.dtype.newbyteorder('=')]}",
        "ElementDataFile = LOCAL",
    ]
    return ("\n".join(header) + "\n").encode("ascii") + data


def write_mha(path: str | os.PathLike, array: np.ndarray, spacing_mm: float) -> Path:
    """Write ``array`` to ``path`` (``.mha``), replacing it atomically."""
    p = Path(path)
    if p.suffix.lower() != ".mha":
        raise InputError(f"a MetaImage file ends in .mha, got {p.name!r}")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(mha_bytes(array, spacing_mm))
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
