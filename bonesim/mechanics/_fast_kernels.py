"""Numba kernels of :mod:`bonesim.mechanics.fast` (imported only when Numba is installed and on).

At module level so that Numba's disk cache (``cache=True``) loads them in
every process: kernels defined inside a function and calling one another
are keyed by per-process closure cells and were compiled again each time.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from bonesim.mechanics.fast import WIDTH


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


@nb.njit(cache=True, boundscheck=False)
def hex8_matvec_serial(u, conn, scale, ke, slabs, out):  # pragma: no cover - compiled
    """out = Σ s_e K₁ u_e: the even slabs in order, then the odd ones (the threaded kernel's order)."""
    out[:] = 0.0
    n_slabs = slabs.size - 1
    for parity in range(2):
        for sl in range(parity, n_slabs, 2):
            element_range(u, conn, scale, ke, slabs[sl], slabs[sl + 1], out)


@nb.njit(parallel=True, cache=True, boundscheck=False)
def hex8_matvec(u, conn, scale, ke, slabs, out):  # pragma: no cover - compiled
    """The threaded :func:`hex8_matvec_serial`: slabs of one parity share no node, so the bits are the same."""
    out[:] = 0.0
    n_slabs = slabs.size - 1
    for parity in range(2):
        for q in nb.prange((n_slabs - parity + 1) // 2):
            sl = 2 * q + parity
            element_range(u, conn, scale, ke, slabs[sl], slabs[sl + 1], out)


@nb.njit(cache=True, boundscheck=False)
def packed_range(u, conn, packed, lo, hi, out):  # pragma: no cover - compiled
    """out += K_e u_e over the elements lo … hi−1 from their stored upper triangles (float64 sums)."""
    ue = np.empty((24, 1))
    fe = np.empty((24, 1))
    for e in range(lo, hi):
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


@nb.njit(cache=True, boundscheck=False)
def hex8_matvec_packed_serial(u, conn, packed, slabs, out):  # pragma: no cover - compiled
    """out = Σ K_e u_e in the slab order of :func:`hex8_matvec_serial`."""
    out[:] = 0.0
    n_slabs = slabs.size - 1
    for parity in range(2):
        for sl in range(parity, n_slabs, 2):
            packed_range(u, conn, packed, slabs[sl], slabs[sl + 1], out)


@nb.njit(parallel=True, cache=True, boundscheck=False)
def hex8_matvec_packed(u, conn, packed, slabs, out):  # pragma: no cover - compiled
    """The threaded :func:`hex8_matvec_packed_serial` (same bits)."""
    out[:] = 0.0
    n_slabs = slabs.size - 1
    for parity in range(2):
        for q in nb.prange((n_slabs - parity + 1) // 2):
            sl = 2 * q + parity
            packed_range(u, conn, packed, slabs[sl], slabs[sl + 1], out)
