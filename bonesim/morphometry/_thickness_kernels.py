"""Numba kernels of :mod:`bonesim.morphometry.thickness` (imported only when Numba is installed).

They live at module level, not inside a function: Numba's on-disk cache
(``cache=True``) keys a closure by its free variables, which differ in every
process, so kernels defined inside a function (``paint`` calling the inner
``_find``) were compiled again by every ``analyze`` process. At module level
every process loads them from ``__pycache__`` (or ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def ridge(d2, need, keep):  # pragma: no cover - compiled
    nz, ny, nx = d2.shape
    for z in numba.prange(nz):
        for y in range(ny):
            for x in range(nx):
                d = d2[z, y, x]
                if d == 0:
                    continue
                ok = True
                for dz in range(-1, 2):
                    zz = z + dz
                    if zz < 0 or zz >= nz or not ok:
                        continue
                    for dy in range(-1, 2):
                        yy = y + dy
                        if yy < 0 or yy >= ny or not ok:
                            continue
                        for dx in range(-1, 2):
                            xx = x + dx
                            if xx < 0 or xx >= nx:
                                continue
                            cls = dz * dz + dy * dy + dx * dx
                            if cls > 0 and d2[zz, yy, xx] >= need[cls, d]:
                                ok = False
                                break
                keep[z, y, x] = ok
    return keep


@numba.njit(parallel=True, cache=True, nogil=True)
def ridge_far(d2, keep, idx, offs, lin, cls, need_t, reach):  # pragma: no cover - compiled
    # second pass over the survivors of the 26-neighbour test (flat indices `idx`): the balls
    # of centres 2..reach voxels away (offs sorted nearest first, lin their flat offsets,
    # cls their row of need, stored transposed: need_t[D, class])
    nz, ny, nx = d2.shape
    flat = d2.reshape(-1)
    kflat = keep.reshape(-1)
    for ii in numba.prange(idx.shape[0]):
        p = idx[ii]
        z = p // (ny * nx)
        y = (p // nx) % ny
        x = p % nx
        row = need_t[flat[p]]
        if reach <= z < nz - reach and reach <= y < ny - reach and reach <= x < nx - reach:
            for j in range(lin.shape[0]):
                if flat[p + lin[j]] >= row[cls[j]]:
                    kflat[p] = False
                    break
        else:
            for j in range(offs.shape[0]):
                zz = z + offs[j, 0]
                yy = y + offs[j, 1]
                xx = x + offs[j, 2]
                if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                    continue
                if d2[zz, yy, xx] >= row[cls[j]]:
                    kflat[p] = False
                    break
    return keep


@numba.njit(cache=True, nogil=True, inline="always")
def _find(nxt, z, y, x):  # pragma: no cover - compiled
    # next x' >= x in row (z, y) with nxt[z, y, x'] == x' (path halving)
    while nxt[z, y, x] != x:
        nxt[z, y, x] = nxt[z, y, nxt[z, y, x]]
        x = nxt[z, y, x]
    return x


@numba.njit(cache=True, nogil=True, inline="always")
def _isqrt_below(v):  # pragma: no cover - compiled
    # largest r >= 0 with r*r < v (v >= 1)
    r = int(np.sqrt(float(v)))
    while r * r >= v:
        r -= 1
    while (r + 1) * (r + 1) < v:
        r += 1
    return r


@numba.njit(parallel=True, cache=True, nogil=True)
def block_masks(mask, bits):  # pragma: no cover - compiled
    # bit (lz*16 + ly*4 + lx) of bits[bz, by, bx]: voxel (4bz+lz, 4by+ly, 4bx+lx) is in the phase
    nz, ny, nx = mask.shape
    nbz, nby, nbx = bits.shape
    for bz in numba.prange(nbz):
        for by in range(nby):
            for bx in range(nbx):
                u = np.uint64(0)
                for lz in range(min(4, nz - 4 * bz)):
                    for ly in range(min(4, ny - 4 * by)):
                        for lx in range(min(4, nx - 4 * bx)):
                            if mask[4 * bz + lz, 4 * by + ly, 4 * bx + lx]:
                                u |= np.uint64(1) << np.uint64(lz * 16 + ly * 4 + lx)
                bits[bz, by, bx] = u
    return bits


@numba.njit(parallel=True, cache=True, nogil=True)
def paint(out, bits, bnxt, cz, cy, cx, cd, slab_blocks):  # pragma: no cover - compiled
    # Centres come in decreasing cd: the first ball to reach a voxel holds its maximum, so
    # every voxel is written once. `bits` holds the unpainted phase voxels of each 4x4x4
    # block; `bnxt[bz, by, bx]` is the next block >= bx of that row of blocks whose mask
    # may be non-empty. Slabs of `slab_blocks` block layers are independent: no races.
    nz, ny, nx = out.shape
    nbz = bits.shape[0]
    nslab = (nbz + slab_blocks - 1) // slab_blocks
    full = ~np.uint64(0)
    one = np.uint64(1)
    for s in numba.prange(nslab):
        z0 = 4 * s * slab_blocks
        z1 = min(nz, z0 + 4 * slab_blocks)
        sq = np.empty(12, np.int64)  # squared offsets of the block's 4 z, 4 y, 4 x from the centre
        for i in range(cz.shape[0]):
            d = cd[i]
            zc = cz[i]
            r = _isqrt_below(d)
            za = max(z0, zc - r)
            zb = min(z1 - 1, zc + r)
            if za > zb:
                continue
            yc = cy[i]
            xc = cx[i]
            for bz in range(za // 4, zb // 4 + 1):
                lo = 4 * bz
                dz = lo - zc if zc < lo else (zc - lo - 3 if zc > lo + 3 else 0)
                fz = max(zc - lo, lo + 3 - zc)
                for k in range(4):
                    sq[k] = (lo + k - zc) * (lo + k - zc)
                for by in range(max(0, yc - r) // 4, min(ny - 1, yc + r) // 4 + 1):
                    lo2 = 4 * by
                    dy = lo2 - yc if yc < lo2 else (yc - lo2 - 3 if yc > lo2 + 3 else 0)
                    rem = d - dz * dz - dy * dy
                    if rem <= 0:
                        continue
                    rx = _isqrt_below(rem)  # x reach of the ball at the row's nearest point
                    fy = max(yc - lo2, lo2 + 3 - yc)
                    for k in range(4):
                        sq[4 + k] = (lo2 + k - yc) * (lo2 + k - yc)
                    bxe = min(nx - 1, xc + rx) // 4
                    bx = _find(bnxt, bz, by, max(0, xc - rx) // 4)
                    while bx <= bxe:
                        lo3 = 4 * bx
                        fx = max(xc - lo3, lo3 + 3 - xc)
                        if fz * fz + fy * fy + fx * fx < d:  # the whole block is in the ball
                            m = full
                        else:
                            for k in range(4):
                                sq[8 + k] = (lo3 + k - xc) * (lo3 + k - xc)
                            m = np.uint64(0)
                            for lz in range(4):
                                if sq[lz] >= d:
                                    continue
                                for ly in range(4):
                                    syz = sq[lz] + sq[4 + ly]
                                    if syz >= d:
                                        continue
                                    for lx in range(4):
                                        if syz + sq[8 + lx] < d:
                                            m |= one << np.uint64(lz * 16 + ly * 4 + lx)
                        u = bits[bz, by, bx]
                        hit = u & m
                        if hit != 0:
                            for k in range(64):
                                if (hit >> np.uint64(k)) & one:
                                    out[lo + (k >> 4), lo2 + ((k >> 2) & 3), lo3 + (k & 3)] = d
                            u &= ~m
                            bits[bz, by, bx] = u
                            if u == 0:
                                bnxt[bz, by, bx] = bx + 1
                        bx = _find(bnxt, bz, by, bx + 1)
    return out


@numba.njit(cache=True, nogil=True)
def histogram(v, edges, scale, counts):  # pragma: no cover - compiled
    # np.histogram(v, bins=edges) for ascending edges: bins [e_i, e_i+1), the last one closed,
    # values outside [e_0, e_n] (and NaN) dropped. i = (x - e_0) * scale is only the first
    # guess (exact for equally spaced edges up to rounding); the two loops make it exact.
    n = edges.shape[0] - 1
    e0 = edges[0]
    en = edges[n]
    for j in range(v.shape[0]):
        x = v[j]
        if not (x >= e0 and x <= en):
            continue
        i = min(max(int((x - e0) * scale), 0), n - 1)
        while i > 0 and x < edges[i]:
            i -= 1
        while i < n - 1 and x >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return counts
