"""Compiled element-by-element product ``K u`` (Numba), used by the NumPy backend when Numba is installed.

One pass over the elements gathers the 24 corner displacements of
:data:`WIDTH` elements at a time, forms ``K₁ (s_e uₑ)`` for all of them in one
(24×24)·(24×WIDTH) product whose inner loop over the WIDTH elements the
compiler turns into SIMD, and adds the forces straight onto the nodes: no
element-force buffer, no degree-of-freedom index array.

Order and threads: the elements are cut into z-slabs of :data:`SLAB_LAYERS`
whole layers (contiguous element ranges, since elements are in C order). The
product visits the even slabs, then the odd ones; two slabs of one parity
share no node, so the even (then the odd) slabs run in parallel on Numba's
threads without atomics, and every node receives its forces in the same order
whatever the number of threads: the threaded and the serial kernel give the
**same bits** (tested), so a result does not depend on the machine's core
count. The Galerkin coarse levels (explicit matrices) use the same scheme.
Threads are on when Numba has more than one (``NUMBA_NUM_THREADS``);
``BONESIM_NUMBA_PARALLEL=0`` runs the serial kernel. Measured on the real
200³ sample (2 cores, idle host, warm cache): 58.9 and 67.1 s threaded against
68.0 s serial (docs/mechanics.md). Numba is a core dependency; the kernels
live in :mod:`bonesim.mechanics._fast_kernels` (module level, so that
Numba's disk cache loads them in every process); without Numba, or with
``BONESIM_NUMBA=0`` in the environment, :class:`~bonesim.mechanics.operator.ElementOperator`
uses the NumPy gather/GEMM/``bincount`` product, which gives the same result
to rounding (tested).
"""

from __future__ import annotations

import functools
import os

import numpy as np

#: z-layers of elements per slab (the unit of work of a thread; fixed, so the bits do not depend on
#: the thread count). 4 layers give 50 slabs at 200³ (25 per parity) for load balance on 16 threads.
SLAB_LAYERS = 4


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
    """Whether the threaded kernels run: Numba has more than one thread and ``BONESIM_NUMBA_PARALLEL`` is not 0."""
    nb = _numba()
    if nb is None or os.environ.get("BONESIM_NUMBA_PARALLEL", "1") == "0":
        return False
    return nb.get_num_threads() > 1


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
    """The compiled voxel-operator kernel, or None when Numba is missing or off (``BONESIM_NUMBA=0``).

    ``kernel(threaded)(u, conn, scale, ke, slabs, out)`` with the element ranges
    of :func:`slabs`; elements are multiplied :data:`WIDTH` at a time. The
    serial and the threaded kernel give the same bits (module docstring).
    """
    if _numba() is None:
        return None
    from bonesim.mechanics import _fast_kernels as k

    return k.hex8_matvec if threaded else k.hex8_matvec_serial


@functools.lru_cache(maxsize=2)
def kernel_packed(threaded: bool = False):
    """Compiled product with one stored symmetric matrix per element, or None.

    ``kernel_packed(threaded)(u, conn, packed, slabs, out)`` with ``packed``
    (n_el, 300) the row-major upper triangles (float32 or float64,
    :func:`bonesim.mechanics.operator.pack`); every stored entry is read once
    and used twice; accumulates in float64; serial and threaded give the same bits.
    """
    if _numba() is None:
        return None
    from bonesim.mechanics import _fast_kernels as k

    return k.hex8_matvec_packed if threaded else k.hex8_matvec_packed_serial


def slabs(shape: tuple[int, int, int], elements: np.ndarray, layers: int = SLAB_LAYERS) -> np.ndarray:
    """Element ranges ``[slabs[i], slabs[i+1])`` of z-slabs of ``layers`` whole layers (the last may be thinner).

    Elements are in C (z-major) order, so a slab of whole z-layers is a
    contiguous range. Every slab is at least one layer thick, so two slabs of
    the same parity are separated by another and share no node. The partition
    depends on the shape only, never on the number of threads.
    """
    nz = shape[0]
    bounds = np.append(np.arange(0, nz, max(1, int(layers))), nz).astype(np.int64)
    return np.searchsorted(elements, bounds * shape[1] * shape[2]).astype(np.int64)
