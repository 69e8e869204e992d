"""Issue 15, item 6: the faster local thickness gives the maps of the previous implementation.

The previous implementation is kept as ``thickness._reference_thickness_squared`` (its own
EDT, the whole 7³ second ridge pass, a comparison sort); the brute force
(:func:`brute_force_thickness_squared`, every phase voxel's ball, no pruning) checks both on
small volumes. Also here: the one-pass EDT of both phases, the octant ``need`` table, the
histogram kernel, and a test that fails if the painting let a smaller ball win.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonesim import phantom
from bonesim.errors import InputError
from bonesim.morphometry import morphometry
from bonesim.morphometry import thickness as th

numba = pytest.importorskip("numba")


def _blobs(shape, seed, sigma, frac=0.5):
    f = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return f > np.quantile(f, 1 - frac)


def _random_spheres(shape, n, rmin, rmax, seed):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    m = np.zeros(shape, bool)
    for _ in range(n):
        c = rng.uniform(0, shape)
        r = rng.uniform(rmin, rmax)
        m |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r
    return m


def _anisotropic(shape, seed):
    # blobs smoothed 6x more along x than along z: elongated, flattened structures
    f = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), (1.0, 2.5, 6.0))
    return f > np.median(f)


def _plates_and_rods(shape):
    m = phantom.plate(shape, 5, axis=0) > 0
    m |= phantom.plate(shape, 3, axis=2) > 0
    m |= phantom.rod(shape, 7.5, axis=1) > 0
    return m


PHANTOMS = {
    "spheres": lambda: _random_spheres((40, 44, 48), 18, 3.0, 11.0, 0),
    "spheres_dense": lambda: _random_spheres((36, 36, 36), 40, 2.0, 7.0, 1),
    "plates_rods": lambda: _plates_and_rods((33, 38, 41)),
    "anisotropic": lambda: _anisotropic((30, 50, 70), 2),
    "blobs_odd": lambda: _blobs((29, 37, 45), 3, 3.0, 0.35),
}


@pytest.mark.parametrize("name", sorted(PHANTOMS))
def test_fast_equals_previous_implementation_on_phantoms(name):
    m = PHANTOMS[name]()
    both = th.edt_squared_phases(m)
    for phase in (m, ~m):
        ref = th._reference_thickness_squared(phase)
        np.testing.assert_array_equal(th.local_thickness_squared(phase), ref)
        np.testing.assert_array_equal(th.local_thickness_squared(phase, edt2=both), ref)


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_equals_brute_force_small(seed):
    m = _random_spheres((20, 23, 26), 6, 2.0, 7.0, 10 + seed)
    for phase in (m, ~m):
        np.testing.assert_array_equal(
            th.local_thickness_squared(phase), th.brute_force_thickness_squared(phase)
        )


def test_numpy_fallback_equals_numba_and_reference():
    m = _random_spheres((16, 18, 20), 30, 1.5, 4.0, 4)
    for phase in (m, ~m):
        got = th.local_thickness_squared(phase, engine="numpy")
        np.testing.assert_array_equal(got, th.local_thickness_squared(phase, engine="numba"))
        np.testing.assert_array_equal(got, th._reference_thickness_squared(phase, engine="numpy"))


def test_fast_equals_previous_implementation_on_real_crop():
    from bonesim.io.sample import real_sample_mask, shipped_path

    if not shipped_path().is_file():
        pytest.skip("real sample not present")
    m = real_sample_mask()[40:104, 30:102, 20:100]
    both = th.edt_squared_phases(m)
    for phase in (m, ~m):
        ref = th._reference_thickness_squared(phase)
        np.testing.assert_array_equal(th.local_thickness_squared(phase), ref)
        np.testing.assert_array_equal(th.local_thickness_squared(phase, edt2=both), ref)


# ----------------------------------------------------------------- early termination ----
def _two_balls():
    # a small ball (radius 4) first in C order, a large one (radius 9) overlapping it: a painter
    # that let the first ball to arrive win, or painted in increasing size, would leave the
    # overlap at the small radius
    shape = (30, 30, 30)
    zz, yy, xx = np.indices(shape)
    small = (zz - 8) ** 2 + (yy - 9) ** 2 + (xx - 9) ** 2 < 16
    big = (zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2 < 81
    return small | big, small, big


def _paint_in_order(mask, order_fn):
    d2 = th.edt_squared(mask)
    cz, cy, cx = np.nonzero(th.distance_ridge(d2, reach=1))
    cd = d2[cz, cy, cx].astype(np.int64)
    order = order_fn(cd)
    block_masks, paint, _ = th._numba_kernel()
    nb = tuple(-(-n // 4) for n in mask.shape)
    bits = block_masks(mask, np.zeros(nb, np.uint64))
    bnxt = np.empty((nb[0], nb[1], nb[2] + 1), np.int32)
    bnxt[...] = np.arange(nb[2] + 1, dtype=np.int32)
    bnxt[:, :, : nb[2]] += bits == 0
    out = np.zeros(mask.shape, np.int32)
    paint(out, bits, bnxt, cz[order], cy[order], cx[order], cd[order], 1)
    out[~mask] = 0
    return out


def test_overlap_takes_the_largest_covering_ball():
    m, small, big = _two_balls()
    got = th.local_thickness_squared(m)
    ref = th.brute_force_thickness_squared(m)
    np.testing.assert_array_equal(got, ref)
    overlap = small & big
    assert overlap.sum() > 10
    d2 = th.edt_squared(m)
    d_big = d2[15, 15, 15]
    assert d_big == d2.max() >= 81
    assert (got[overlap] == d_big).all()
    assert (got[small] < d_big).any()  # the small ball's own voxels keep the small radius
    # the test can fail: the same painter fed the balls smallest first (its early
    # termination then keeps the first, smaller radius) gives a different map
    wrong = _paint_in_order(m, lambda cd: np.argsort(cd, kind="stable"))
    assert (wrong[overlap] < d_big).any()
    assert not np.array_equal(wrong, ref)
    np.testing.assert_array_equal(_paint_in_order(m, th._descending), ref)


def test_descending_order_is_the_stable_argsort():
    rng = np.random.default_rng(3)
    for top in (5, 1000, 70000):
        cd = rng.integers(1, top, 5000).astype(np.int64)
        np.testing.assert_array_equal(th._descending(cd), np.argsort(-cd, kind="stable"))
    assert th._descending(np.zeros(0, np.int64)).size == 0


# ---------------------------------------------------------------- building blocks ----
def _need_table_full_grid(dmax, offsets):
    # the previous construction: every lattice point of the cube, signed offsets as given
    reach = max((max(abs(c) for c in o) for o in offsets), default=1)
    r = int(np.ceil(np.sqrt(max(dmax, 1)))) + reach
    g = np.arange(-r, r + 1)
    qz, qy, qx = (a.ravel() for a in np.meshgrid(g, g, g, indexing="ij"))
    n2 = qz * qz + qy * qy + qx * qx
    order = np.argsort(n2, kind="stable")
    n2s, qz, qy, qx = n2[order], qz[order], qy[order], qx[order]
    k = np.searchsorted(n2s, np.arange(dmax + 1), side="left")
    need = np.zeros((len(offsets), dmax + 1), np.int64)
    for i, o in enumerate(offsets):
        run = np.maximum.accumulate(n2s - 2 * (qz * o[0] + qy * o[1] + qx * o[2]))
        need[i] = np.where(k > 0, run[np.maximum(k - 1, 0)] + o[0] ** 2 + o[1] ** 2 + o[2] ** 2 + 1, 0)
    return need


@pytest.mark.parametrize("dmax", [0, 1, 3, 17, 260, 1400])
def test_octant_need_table_equals_full_grid(dmax):
    near = [(0, 0, 1), (0, 1, 1), (1, 1, 1)]
    np.testing.assert_array_equal(th._need_table(dmax, near), _need_table_full_grid(dmax, near))
    far = th._far_offsets(3)  # signed offsets, all of them
    np.testing.assert_array_equal(th._need_table(dmax, far), _need_table_full_grid(dmax, far))


@pytest.mark.parametrize(
    ("shape", "seed"),
    [((24, 26, 28), 0), ((1, 30, 17), 1), ((9, 1, 40), 2), ((5, 6, 7), 3), ((40, 40, 40), 4)],
)
def test_edt_of_both_phases_in_one_pass(shape, seed):
    m = _blobs(shape, seed, 2.0, 0.4)
    both = th.edt_squared_phases(m)
    assert both.dtype == np.int32
    np.testing.assert_array_equal(both, np.where(m, th.edt_squared(m), th.edt_squared(~m)))


def test_edt_of_both_phases_needs_both_and_edt2_must_match():
    with pytest.raises(InputError):
        th.edt_squared_phases(np.ones((4, 4, 4), bool))
    with pytest.raises(InputError):
        th.edt_squared_phases(np.zeros((4, 4, 4), bool))
    m = _blobs((12, 12, 12), 0, 1.5)
    with pytest.raises(InputError, match="shape"):
        th.local_thickness_squared(m, edt2=np.zeros((12, 12, 11), np.int32))


def test_shortened_far_pass_drops_exactly_the_contained_centres():
    m = _blobs((26, 28, 30), 5, 4.0)
    offs = th._far_offsets(2, th.LT_FAR_LEN2)
    dropped = 0
    assert offs and max(o[0] ** 2 + o[1] ** 2 + o[2] ** 2 for o in offs) == th.LT_FAR_LEN2
    for phase in (m, ~m):
        d2 = th.edt_squared(phase)
        keep = th.distance_ridge(d2, reach=2, max_len2=th.LT_FAR_LEN2)
        near = th.distance_ridge(d2, reach=1)
        need = th._need_table(int(d2.max()), offs)
        ref = near.copy()
        for c in zip(*np.nonzero(near), strict=True):
            for j, o in enumerate(offs):
                n = tuple(a + b for a, b in zip(c, o, strict=True))
                if all(0 <= n[k] < d2.shape[k] for k in range(3)) and d2[n] >= need[j, d2[c]]:
                    ref[c] = False
                    break
        np.testing.assert_array_equal(keep, ref)
        dropped += int(near.sum() - keep.sum())
    assert dropped > 0


def test_histogram_kernel_equals_numpy(monkeypatch):
    rng = np.random.default_rng(0)
    for _ in range(50):
        h = rng.uniform(0.1, 40.0)
        nb = int(rng.integers(1, 60))
        edges = np.arange(nb + 1) * h
        v = np.concatenate(
            [
                rng.uniform(-h, (nb + 1) * h, 500),
                edges,
                np.nextafter(edges, -np.inf),
                np.nextafter(edges, np.inf),
                (2 * np.sqrt(rng.integers(0, 4000, 300).astype(np.float32)) * np.float32(h)).astype(
                    np.float64
                ),
                [np.nan],
            ]
        )
        np.testing.assert_array_equal(
            th._histogram(v, edges, h), np.histogram(v[~np.isnan(v)], bins=edges)[0]
        )
    lt = th.local_thickness(_blobs((30, 30, 30), 1, 2.5), voxel_size_um=19.5)
    fast = th.thickness_stats(lt[lt > 0], 19.5)
    monkeypatch.setattr(th, "_NUMBA_KERNEL", False)  # the NumPy path
    slow = th.thickness_stats(lt[lt > 0], 19.5)
    np.testing.assert_array_equal(fast.hist_counts, slow.hist_counts)
    assert (fast.mean_um, fast.sd_um, fast.max_um) == (slow.mean_um, slow.sd_um, slow.max_um)


def test_morphometry_with_the_shared_transform_equals_separate_indices():
    vol = np.where(_random_spheres((36, 38, 40), 14, 3.0, 9.0, 7), 255, 0).astype(np.uint8)
    maps: dict = {}
    both = morphometry(vol, voxel_size_um=20.0, indices=["tb_th", "tb_sp"], maps=maps)
    # the map path of each index alone (without maps the statistics come from the squared radii,
    # equal up to the summation order of the mean and SD)
    one = morphometry(vol, voxel_size_um=20.0, indices=["tb_th"], maps={})
    other = morphometry(vol, voxel_size_um=20.0, indices=["tb_sp"], maps={})
    for key in ("tb_th_um", "tb_th_sd_um", "tb_th_max_um"):
        assert both[key] == one[key]
    for key in ("tb_sp_um", "tb_sp_sd_um", "tb_sp_max_um"):
        assert both[key] == other[key]
    bone = vol > 127
    ref = (2.0 * np.sqrt(th._reference_thickness_squared(~bone), dtype=np.float32) * np.float32(20.0)).astype(
        np.float32
    )
    np.testing.assert_array_equal(maps["tb_sp"], ref)
