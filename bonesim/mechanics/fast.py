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
against 0.12–0.17 s per product, wall clock). Numba is optional
(``pip install numba``, also in the ``morph`` extra); without it, or with
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


@functools.lru_cache(maxsize=1)
def _helpers():
    """Compiled gather / scatter of one element's 24 nodal values (shared by every kernel)."""
    nb = _numba()

    @nb.njit(cache=True, boundscheck=False, inline="always")
    def gather(u, conn, e, s, dst, col):  # pragma: no cover - compiled
        """dst[:, col] = s · u_e (the 24 displacements of element e, scaled by s)."""
        for a in range(8):
            nd = conn[e, a]
            dst[3 * a, col] = s * u[nd, 0]
            dst[3 * a + 1, col] = s * u[nd, 1]
            dst[3 * a + 2, col] = s * u[nd, 2]

    @nb.njit(cache=True, boundscheck=False, inline="always")
    def scatter(src, col, conn, e, out):  # pragma: no cover - compiled
        """out[nodes of e] += src[:, col]."""
        for a in range(8):
            nd = conn[e, a]
            out[nd, 0] += src[3 * a, col]
            out[nd, 1] += src[3 * a + 1, col]
            out[nd, 2] += src[3 * a + 2, col]

    @nb.njit(cache=True, boundscheck=False, inline="always")
    def product(els, m, u, conn, scale, ke, ub, fb, out):  # pragma: no cover - compiled
        """out += s_e K₁ u_e for the m ≤ WIDTH elements els[:m] (ub, fb: (24, WIDTH) scratch)."""
        for w in range(m):
            gather(u, conn, els[w], scale[els[w]], ub, w)
        for w in range(m, WIDTH):
            for i in range(24):
                ub[i, w] = 0.0
        fb[:] = 0.0
        for j in range(24):
            for i in range(24):
                k = ke[j, i]
                for w in range(WIDTH):
                    fb[i, w] += k * ub[j, w]
        for w in range(m):
            scatter(fb, w, conn, els[w], out)

    return gather, scatter, product


@functools.lru_cache(maxsize=2)
def kernel(threaded: bool = False):
    """The compiled kernel, or None when Numba is missing or switched off (``BONESIM_NUMBA=0``).

    Serial: ``kernel()(u, conn, scale, ke, out)``; threaded: ``kernel(True)(u, conn,
    scale, ke, slabs, out)`` with the element ranges of :func:`slabs`.
    Elements are multiplied :data:`WIDTH` at a time. Both are deterministic; they
    differ from each other in the last bits, because a node shared by two slabs
    receives its forces in a different order.
    """
    nb = _numba()
    if nb is None:
        return None
    _, _, product = _helpers()

    @nb.njit(cache=True, boundscheck=False)
    def element_range(u, conn, scale, ke, lo, hi, out):  # pragma: no cover - compiled
        """out += Σ s_e K₁ u_e over the elements lo … hi−1, WIDTH at a time."""
        ub = np.empty((24, WIDTH))
        fb = np.empty((24, WIDTH))
        els = np.empty(WIDTH, dtype=np.int64)
        for e0 in range(lo, hi, WIDTH):
            m = min(WIDTH, hi - e0)
            for w in range(m):
                els[w] = e0 + w
            product(els, m, u, conn, scale, ke, ub, fb, out)

    if not threaded:

        @nb.njit(cache=True, boundscheck=False)
        def hex8_matvec_serial(u, conn, scale, ke, out):  # pragma: no cover - compiled
            out[:] = 0.0
            element_range(u, conn, scale, ke, 0, conn.shape[0], out)

        return hex8_matvec_serial

    @nb.njit(parallel=True, cache=True, boundscheck=False)
    def hex8_matvec(u, conn, scale, ke, slabs, out):  # pragma: no cover - compiled
        out[:] = 0.0
        n_slabs = slabs.size - 1
        for parity in range(2):  # slabs of one parity share no node
            for q in nb.prange((n_slabs - parity + 1) // 2):
                sl = 2 * q + parity
                element_range(u, conn, scale, ke, slabs[sl], slabs[sl + 1], out)

    return hex8_matvec


@functools.lru_cache(maxsize=1)
def kernel_packed():
    """Compiled product with one stored symmetric matrix per element, or None.

    ``kernel_packed()(u, conn, packed, out)`` with ``packed`` (n_el, 300) the row-major
    upper triangles (float32 or float64, :func:`bonesim.mechanics.operator.pack`);
    every stored entry is read once and used twice; accumulates in float64.
    """
    nb = _numba()
    if nb is None:
        return None
    gather, scatter, _ = _helpers()

    @nb.njit(cache=True, boundscheck=False)
    def hex8_matvec_packed(u, conn, packed, out):  # pragma: no cover - compiled
        out[:] = 0.0
        ue = np.empty((24, 1))
        fe = np.empty((24, 1))
        for e in range(conn.shape[0]):
            gather(u, conn, e, 1.0, ue, 0)
            fe[:] = 0.0
            k = 0
            for j in range(24):
                v = ue[j, 0]
                acc = fe[j, 0] + packed[e, k] * v
                k += 1
                for i in range(j + 1, 24):
                    kji = packed[e, k]
                    k += 1
                    fe[i, 0] += kji * v
                    acc += kji * ue[i, 0]
                fe[j, 0] = acc
            scatter(fe, 0, conn, e, out)

    return hex8_matvec_packed


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
