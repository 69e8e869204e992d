"""CuPy versions of the indices that pay on a GPU: BV/TV and local thickness (Tb.Th, Tb.Sp).

The algorithm is the CPU one of :mod:`bonesim.morphometry.thickness`:
squared EDT (:func:`cupyx.scipy.ndimage.distance_transform_edt`, exact),
lattice-exact distance ridge and ball painting as RawKernels
(``bonesim/morphometry/kernels/morphometry.cu``: one thread per voxel for the ridge, one warp per
ridge centre for the painting, ``atomicMax`` into an int32 map). All
arithmetic after the EDT is in integers, so the thickness map equals the CPU
map exactly once the squared distances agree (they are rounded to the
nearest integer; float64 distances keep that exact up to radii of ~10⁶).

CuPy is imported inside the functions only; inputs may be NumPy or CuPy
arrays, results are NumPy unless ``as_cupy=True``.

References
----------
Hildebrand T, Rüegsegger P (1997). J Microsc 185:67-75.
Cao T-T, Tang K, Mohamed A, Tan T-S (2010). Parallel banding algorithm to
compute exact distance transform with the GPU. Proc ACM I3D:83-90 (the EDT
behind ``cupyx.scipy.ndimage.distance_transform_edt``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from bonesim.errors import InputError
from bonesim.volume import BONE_FULL

_THREADS = 256


def _cupy() -> Any:
    from bonesim._optional import require

    return require("cupy", "the GPU morphometry")


@functools.cache
def _module(device_id: int) -> Any:
    """The compiled ``bonesim/morphometry/kernels/morphometry.cu`` for one device (CuPy caches the binary on disk)."""
    cp = _cupy()
    from bonesim._resources import kernel_dir

    src = (kernel_dir("morphometry") / "morphometry.cu").read_text()
    with cp.cuda.Device(device_id):
        return cp.RawModule(code=src, options=("--std=c++17",))


def _kernel(name: str) -> Any:
    cp = _cupy()
    return _module(cp.cuda.Device().id).get_function(name)


def bone_volume_fraction(data: Any) -> float:
    """BV/TV on the device: mean bone fraction of a uint8 volume (NumPy or CuPy input)."""
    cp = _cupy()
    d = cp.asarray(data)
    return float(d.sum(dtype=cp.int64).item() / (BONE_FULL * d.size))


def local_thickness_squared(mask: Any, *, as_cupy: bool = False) -> Any:
    """Squared local radius map (int32) of the True phase; equals the CPU version exactly."""
    cp = _cupy()
    from cupyx.scipy import ndimage as cnd

    from bonesim.morphometry.thickness import _need_table

    m = cp.ascontiguousarray(cp.asarray(mask, dtype=cp.bool_))
    if bool(m.all()):
        raise InputError("the distance transform needs at least one background voxel")
    dist = cnd.distance_transform_edt(m, float64_distances=True)
    d2 = cp.rint(dist * dist).astype(cp.int32)
    del dist
    nz, ny, nx = m.shape
    n = m.size
    dmax = int(d2.max())
    need = cp.asarray(_need_table(dmax).astype(np.int32))
    keep = cp.empty(m.shape, cp.uint8)
    blocks = (n + _THREADS - 1) // _THREADS
    _kernel("bonesim_morph_ridge_n26")(
        (blocks,), (_THREADS,), (d2, need, keep, np.int32(nz), np.int32(ny), np.int32(nx), np.int32(dmax))
    )
    flat = cp.nonzero(keep.ravel())[0]
    cd = d2.ravel()[flat]
    order = cp.argsort(-cd)  # big balls first: later small ones mostly read, rarely write
    flat, cd = flat[order], cd[order].astype(cp.int32)
    cz = (flat // (ny * nx)).astype(cp.int32)
    cy = ((flat // nx) % ny).astype(cp.int32)
    cx = (flat % nx).astype(cp.int32)
    out = cp.zeros(m.shape, cp.int32)
    nc = int(flat.size)
    if nc:
        blocks = (nc * 32 + _THREADS - 1) // _THREADS
        _kernel("bonesim_morph_paint_balls_warp")(
            (blocks,),
            (_THREADS,),
            (cz, cy, cx, cd, np.int64(nc), out, np.int32(nz), np.int32(ny), np.int32(nx)),
        )
    out[~m] = 0
    return out if as_cupy else cp.asnumpy(out)


def local_thickness(mask: Any, *, voxel_size_um: float = 1.0, as_cupy: bool = False) -> Any:
    """Local thickness map (float32, µm) of the True phase, computed on the device."""
    cp = _cupy()
    r2 = local_thickness_squared(mask, as_cupy=True)
    t = (2.0 * cp.sqrt(r2.astype(cp.float32)) * cp.float32(voxel_size_um)).astype(cp.float32)
    return t if as_cupy else cp.asnumpy(t)
