"""The block-mask ball painter equals the previous row painter bit for bit.

``_row_painter`` below is the painter of ``bonesim.morphometry.thickness`` before the
4×4×4 block masks (descending balls, one "next unpainted voxel" pointer per row and
one "next unfinished row" pointer per plane), kept here as the slow reference. It is
fed the same ridge centres; a second reference paints every phase voxel's ball
(:func:`brute_force_thickness_squared`, no pruning at all) on small volumes.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonesim.morphometry import thickness as th

numba = pytest.importorskip("numba")


@numba.njit(cache=False)
def _isqrt_below(v):
    r = int(np.sqrt(float(v)))
    while r * r >= v:
        r -= 1
    while (r + 1) * (r + 1) < v:
        r += 1
    return r


@numba.njit(cache=False)
def _find(nxt, z, y, x):
    while nxt[z, y, x] != x:
        nxt[z, y, x] = nxt[z, y, nxt[z, y, x]]
        x = nxt[z, y, x]
    return x


@numba.njit(cache=False)
def _find_row(rnxt, z, y):
    while rnxt[z, y] != y:
        rnxt[z, y] = rnxt[z, rnxt[z, y]]
        y = rnxt[z, y]
    return y


@numba.njit(cache=False)
def _paint_rows(out, nxt, rcnt, rnxt, cz, cy, cx, cd):
    nz, ny, nx = out.shape
    for i in range(cz.shape[0]):
        d = cd[i]
        zc, yc, xc = cz[i], cy[i], cx[i]
        r = _isqrt_below(d)
        for z in range(max(0, zc - r), min(nz - 1, zc + r) + 1):
            rem = d - (z - zc) * (z - zc)
            ry = _isqrt_below(rem)
            yb = min(ny - 1, yc + ry)
            y = _find_row(rnxt, z, max(0, yc - ry))
            while y <= yb:
                rx = _isqrt_below(rem - (y - yc) * (y - yc))
                xb = min(nx - 1, xc + rx)
                x = _find(nxt, z, y, max(0, xc - rx))
                while x <= xb:
                    out[z, y, x] = d
                    nxt[z, y, x] = x + 1
                    rcnt[z, y] -= 1
                    x = _find(nxt, z, y, x + 1)
                if rcnt[z, y] == 0:
                    rnxt[z, y] = y + 1
                y = _find_row(rnxt, z, y + 1)
    return out


def _row_painter(mask: np.ndarray) -> np.ndarray:
    """The previous implementation's local_thickness_squared (same EDT and ridge)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    d2 = th.edt_squared(mask)
    cz, cy, cx = np.nonzero(th.distance_ridge(d2))
    cd = d2[cz, cy, cx].astype(np.int64)
    order = np.argsort(-cd, kind="stable")
    nz, ny, nx = mask.shape
    nxt = np.empty((nz, ny, nx + 1), np.int32)
    nxt[...] = np.arange(nx + 1, dtype=np.int32)
    nxt[:, :, :nx] += ~mask
    rcnt = np.count_nonzero(mask, axis=2).astype(np.int32)
    rnxt = np.empty((nz, ny + 1), np.int32)
    rnxt[...] = np.arange(ny + 1, dtype=np.int32)
    rnxt[:, :ny] += rcnt == 0
    out = np.zeros(mask.shape, np.int32)
    _paint_rows(out, nxt, rcnt, rnxt, cz[order], cy[order], cx[order], cd[order])
    out[~mask] = 0
    return out


def _blobs(shape, seed, sigma, frac=0.5):
    f = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return f > np.quantile(f, 1 - frac)


@pytest.mark.parametrize(
    ("shape", "seed"),
    [((13, 17, 22), 0), ((9, 31, 5), 1), ((21, 16, 8), 2), ((4, 4, 4), 3), ((1, 12, 33), 4)],
)
def test_block_painter_equals_brute_force_small_odd_shapes(shape, seed):
    # shapes that are not multiples of the 4-voxel block, thin ones, one block only
    m = _blobs(shape, seed, 1.5)
    for phase in (m, ~m):
        if phase.all() or not phase.any():
            continue
        got = th.local_thickness_squared(phase, engine="numba")
        np.testing.assert_array_equal(got, th.brute_force_thickness_squared(phase))


@pytest.mark.parametrize(("sigma", "frac"), [(2.0, 0.5), (4.0, 0.3)])
def test_block_painter_equals_row_painter_random_64(sigma, frac):
    m = _blobs((64, 64, 64), 7, sigma, frac)
    for phase in (m, ~m):
        np.testing.assert_array_equal(th.local_thickness_squared(phase, engine="numba"), _row_painter(phase))


def test_block_painter_equals_row_painter_real_sample_crop():
    pytest.importorskip("tifffile")
    from bonesim.io.sample import real_sample_mask, sample_slices

    if len(sample_slices()) != 200:
        pytest.skip("real sample not present")
    m = real_sample_mask()[:96, :100, :104]
    for phase in (m, ~m):
        np.testing.assert_array_equal(th.local_thickness_squared(phase, engine="numba"), _row_painter(phase))


def test_ridge_is_unchanged_by_the_flat_far_pass():
    # the far containment pass works on flat indices; it must drop exactly the centres of the
    # straightforward test "some centre 2..RIDGE_REACH voxels away holds c's lattice ball"
    m = _blobs((20, 22, 24), 3, 2.5)
    for phase in (m, ~m):
        d2 = th.edt_squared(phase)
        keep = th.distance_ridge(d2)
        near = th._ridge_numpy(d2, th._need_table(int(d2.max())))
        offs = th._far_offsets()
        need = th._need_table(int(d2.max()), offs)  # one row per offset
        ref = near.copy()
        for c in zip(*np.nonzero(near), strict=True):
            for j, o in enumerate(offs):
                n = tuple(a + b for a, b in zip(c, o, strict=True))
                if all(0 <= n[k] < d2.shape[k] for k in range(3)):
                    if d2[n] >= need[j, d2[c]]:
                        ref[c] = False
                        break
        np.testing.assert_array_equal(keep, ref)
