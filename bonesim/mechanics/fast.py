"""Compiled element-by-element product ``K u`` (Numba), used by the NumPy backend when Numba is installed.

One pass over the elements gathers the 24 corner displacements, forms
``s_e · K₁ uₑ`` (24 multiply-adds of a 24-vector, which the compiler turns into
SIMD) and adds the 24 forces straight onto the nodes: no element-force buffer,
no degree-of-freedom index array. It runs on one thread in element order
(deterministic). ``BONESIM_NUMBA_PARALLEL=1`` switches to a threaded variant:
elements in 8 colours (the parities of their z, y, x indices; two elements of
one colour share no node), the blocks of a colour in parallel without atomics,
still deterministic. It is off by default because on a host shared with other
jobs the 8 barriers per product cost more than the second thread gains
(measured: 96³ crop, load average 7 on 2 cores, 406 ms per fine product
threaded vs ≈ 60 ms CPU time single-threaded). Numba is optional
(``pip install numba``, also in the ``morph`` extra); without it, or with
``BONESIM_NUMBA=0`` in the environment, :class:`~bonesim.mechanics.operator.ElementOperator`
uses the NumPy gather/GEMM/``bincount`` product, which gives the same result
to rounding (tested).
"""

from __future__ import annotations

import functools
import os

import numpy as np

#: Elements per parallel block of one colour.
BLOCK = 2048


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
    """Whether the threaded colour-block kernel is asked for (``BONESIM_NUMBA_PARALLEL=1``)."""
    return os.environ.get("BONESIM_NUMBA_PARALLEL", "0") == "1"


@functools.lru_cache(maxsize=2)
def kernel(threaded: bool = False):
    """The compiled kernel, or None when Numba is missing or switched off (``BONESIM_NUMBA=0``).

    Serial: ``kernel()(u, conn, scale, ke, out)``; threaded: ``kernel(True)(u, conn,
    scale, ke, order, starts, colour_blocks, out)`` with the arrays of :func:`colour_blocks`.
    """
    if os.environ.get("BONESIM_NUMBA", "1") == "0":
        return None
    try:
        import numba as nb
    except ImportError:
        return None

    @nb.njit(cache=True, boundscheck=False, inline="always")
    def element_product(e, u, conn, scale, ke, ue, fe, out):  # pragma: no cover - compiled
        """out += s_e K_e u_e for element e (ue, fe: 24-entry scratch)."""
        for a in range(8):
            nd = conn[e, a]
            ue[3 * a] = u[nd, 0]
            ue[3 * a + 1] = u[nd, 1]
            ue[3 * a + 2] = u[nd, 2]
        fe[:] = 0.0
        s = scale[e]
        for j in range(24):
            v = ue[j] * s
            for i in range(24):
                fe[i] += ke[j, i] * v
        for a in range(8):
            nd = conn[e, a]
            out[nd, 0] += fe[3 * a]
            out[nd, 1] += fe[3 * a + 1]
            out[nd, 2] += fe[3 * a + 2]

    if not threaded:

        @nb.njit(cache=True, boundscheck=False)
        def hex8_matvec_serial(u, conn, scale, ke, out):  # pragma: no cover - compiled
            out[:] = 0.0
            ue = np.empty(24)
            fe = np.empty(24)
            for e in range(conn.shape[0]):
                element_product(e, u, conn, scale, ke, ue, fe, out)

        return hex8_matvec_serial

    @nb.njit(parallel=True, cache=True, boundscheck=False)
    def hex8_matvec(u, conn, scale, ke, order, starts, colour_blocks, out):  # pragma: no cover - compiled
        out[:] = 0.0
        for colour in range(8):
            for blk in nb.prange(colour_blocks[colour], colour_blocks[colour + 1]):
                ue = np.empty(24)
                fe = np.empty(24)
                for k in range(starts[blk], starts[blk + 1]):
                    element_product(order[k], u, conn, scale, ke, ue, fe, out)

    return hex8_matvec


@functools.lru_cache(maxsize=1)
def kernel_packed():
    """Compiled product with one stored symmetric matrix per element, or None.

    ``kernel_packed()(u, conn, packed, out)`` with ``packed`` (n_el, 300) the row-major
    upper triangles (float32 or float64, :func:`bonesim.mechanics.operator.pack`);
    every stored entry is read once and used twice; accumulates in float64.
    """
    if os.environ.get("BONESIM_NUMBA", "1") == "0":
        return None
    try:
        import numba as nb
    except ImportError:
        return None

    @nb.njit(cache=True, boundscheck=False)
    def hex8_matvec_packed(u, conn, packed, out):  # pragma: no cover - compiled
        out[:] = 0.0
        ue = np.empty(24)
        fe = np.empty(24)
        for e in range(conn.shape[0]):
            for a in range(8):
                nd = conn[e, a]
                ue[3 * a] = u[nd, 0]
                ue[3 * a + 1] = u[nd, 1]
                ue[3 * a + 2] = u[nd, 2]
            fe[:] = 0.0
            k = 0
            for j in range(24):
                v = ue[j]
                acc = fe[j] + packed[e, k] * v
                k += 1
                for i in range(j + 1, 24):
                    kji = packed[e, k]
                    k += 1
                    fe[i] += kji * v
                    acc += kji * ue[i]
                fe[j] = acc
            for a in range(8):
                nd = conn[e, a]
                out[nd, 0] += fe[3 * a]
                out[nd, 1] += fe[3 * a + 1]
                out[nd, 2] += fe[3 * a + 2]

    return hex8_matvec_packed


def colour_blocks(
    shape: tuple[int, int, int], elements: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, block starts, first block of every colour) of the elements, for :func:`kernel`."""
    ez, ey, ex = np.unravel_index(elements, shape)
    colour = ((ez & 1) << 2 | (ey & 1) << 1 | (ex & 1)).astype(np.int64)
    order = np.argsort(colour, kind="stable").astype(np.int64)
    bounds = np.searchsorted(colour[order], np.arange(9))
    starts, first = [], [0]
    for c in range(8):
        lo, hi = int(bounds[c]), int(bounds[c + 1])
        starts += list(range(lo, hi, BLOCK))
        first.append(len(starts))
    starts.append(int(elements.size))
    return order, np.asarray(starts, dtype=np.int64), np.asarray(first, dtype=np.int64)
