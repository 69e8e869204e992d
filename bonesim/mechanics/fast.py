"""Compiled element-by-element product ``K u`` (Numba), used by the NumPy backend when Numba is installed.

One pass over the elements gathers the 24 corner displacements of
:data:`WIDTH` elements at a time, forms ``K₁ (s_e uₑ)`` for all of them in one
(24×24)·(24×WIDTH) product whose inner loop over the WIDTH elements the
compiler turns into SIMD, and adds the forces straight onto the nodes: no
element-force buffer, no degree-of-freedom index array. It runs on one thread
in element order (deterministic). ``BONESIM_NUMBA_PARALLEL=1`` switches to a
threaded variant: z-slabs of whole layers (contiguous element ranges, since
elements are in C order), the even slabs in parallel, then the odd ones (two
slabs of one parity share no node), without atomics, still deterministic. It
is off by default: on this 2-core host, shared with other jobs during the
measurement, it was slower than the serial kernel (128³ crop: 0.20–0.25 s
against 0.12–0.17 s per product, wall clock). Numba is a core dependency; the
kernels live in :mod:`bonesim.mechanics._fast_kernels` (module level, so that
Numba's disk cache loads them in every process); without Numba, or with
``BONESIM_NUMBA=0`` in the environment, :class:`~bonesim.mechanics.operator.ElementOperator`
uses the NumPy gather/GEMM/``bincount`` product, which gives the same result
to rounding (tested).
"""

from __future__ import annotations

import functools
import os

import numpy as np

#: z-slabs per thread of the threaded kernel (load balance).
SLABS_PER_THREAD = 8


def fine_product() -> str:
    """``BONESIM_FINE_PRODUCT``: 'compiled' (default) or 'numpy' for the voxel operator ``s_e·K₁``.

    'numpy' keeps the compiled product for the Galerkin coarse levels but uses
    the NumPy gather / GEMM / ``bincount`` for the fine (and re-discretised)
    levels, whose GEMM runs on all BLAS threads: faster on an idle multi-core
    host (128³ crop, 2 cores, load ≈ 1.3: 21.9 s vs 26.9 s per solve), slower on a
    shared one, and 384 B per element more memory (see docs/mechanics.md).
    """
    return "numpy" if os.environ.get("BONESIM_FINE_PRODUCT", "compiled") == "numpy" else "compiled"


def parallel() -> bool:
    """Whether the threaded slab kernel is asked for (``BONESIM_NUMBA_PARALLEL=1``)."""
    return os.environ.get("BONESIM_NUMBA_PARALLEL", "0") == "1"


def n_slabs() -> int:
    """z-slabs of the threaded kernel: :data:`SLABS_PER_THREAD` per Numba thread."""
    import numba

    return SLABS_PER_THREAD * numba.get_num_threads()


#: Elements multiplied together: ``F (24×W) = K₁ (24×24) · U (24×W)`` keeps W products in one SIMD
#: register row (W = 4 float64 = one AVX2 register). Measured on the real 128³ crop (552 355
#: elements, 2-core EPYC): 0.257 s per product one element at a time, 0.122 s with W = 4, 0.138 s
#: with W = 8, 0.159 s with W = 16.
WIDTH = 4


def _numba():
    """The ``numba`` module, or None when it is missing or switched off (``BONESIM_NUMBA=0``)."""
    if os.environ.get("BONESIM_NUMBA", "1") == "0":
        return None
    try:
        import numba as nb
    except ImportError:
        return None
    return nb


@functools.lru_cache(maxsize=2)
def kernel(threaded: bool = False):
    """The compiled kernel, or None when Numba is missing or switched off (``BONESIM_NUMBA=0``).

    Serial: ``kernel()(u, conn, scale, ke, out)``; threaded: ``kernel(True)(u, conn,
    scale, ke, slabs, out)`` with the element ranges of :func:`slabs`.
    Elements are multiplied :data:`WIDTH` at a time. Both are deterministic; they
    differ from each other in the last bits, because a node shared by two slabs
    receives its forces in a different order.
    """
    if _numba() is None:
        return None
    from bonesim.mechanics import _fast_kernels as k

    return k.hex8_matvec if threaded else k.hex8_matvec_serial


@functools.lru_cache(maxsize=1)
def kernel_packed():
    """Compiled product with one stored symmetric matrix per element, or None.

    ``kernel_packed()(u, conn, packed, out)`` with ``packed`` (n_el, 300) the row-major
    upper triangles (float32 or float64, :func:`bonesim.mechanics.operator.pack`);
    every stored entry is read once and used twice; accumulates in float64.
    """
    if _numba() is None:
        return None
    from bonesim.mechanics import _fast_kernels as k

    return k.hex8_matvec_packed


def slabs(shape: tuple[int, int, int], elements: np.ndarray, n_slabs: int) -> np.ndarray:
    """Element ranges ``[slabs[i], slabs[i+1])`` of ``n_slabs`` z-slabs, for the threaded :func:`kernel`.

    Elements are in C (z-major) order, so a slab of whole z-layers is a
    contiguous range. Every slab is at least one layer thick, so two slabs of
    the same parity are separated by another and share no node.
    """
    nz = shape[0]
    n_slabs = max(1, min(int(n_slabs), nz))
    layers = np.linspace(0, nz, n_slabs + 1).round().astype(np.int64)
    return np.searchsorted(elements, layers * shape[1] * shape[2]).astype(np.int64)
