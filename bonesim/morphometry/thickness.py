"""Direct 3-D local thickness (maximal inscribed spheres): Tb.Th and Tb.Sp.

Definition (Hildebrand & Rüegsegger 1997): the local thickness at a point p
of a structure Ω is the diameter of the largest sphere that contains p and
lies inside Ω. On the voxel lattice we use the discrete version of BoneJ's
*Local Thickness* and PoreSpy: a sphere centred on voxel c has squared
radius ``D(c)``, the squared Euclidean distance from c to the nearest voxel
*outside* Ω, and holds the voxels p with ``|p - c|² < D(c)`` (exactly the
largest lattice ball around c containing only Ω voxels). Then

    τ(p) = 2 · sqrt( max { D(c) : |p - c|² < D(c) } ).

Exact and fast:

1. squared EDT with the ``edt`` package (multi-threaded, exact integers);
   ``morphometry`` computes Tb.Th and Tb.Sp from one two-phase transform
   (:func:`edt_squared_phases`: each voxel's distance to the other phase,
   the cost of one transform);
2. drop every centre whose lattice ball lies inside the lattice ball of a
   centre n nearby: ``D(n) >= need(D(c), n - c)`` with ``need`` tabulated
   once for all D (:func:`_need_table`, from one octant of lattice points),
   first for the 26 neighbours, then (Numba path) for the offsets with
   ``max|o_i| = 2`` and ``|o|² <= 8`` (:data:`LT_FAR_LEN2`). Such an n has
   ``D(n) > D(c)``, so the pruning is exact: no value changes. BoneJ's
   continuous test ``sqrt D(n) >= sqrt D(c) + |n - c|`` keeps 81 % of the
   bone voxels of the real sample; this one keeps 20 % (and 14 % of the
   marrow voxels: 1.22 M centres after the 26 neighbours, 0.87 M after the
   second pass; testing all offsets up to 3 voxels away, as before issue 15,
   left 0.81 M but cost more than painting the 0.05 M balls it dropped);
3. paint the ridge balls in decreasing D (integer arithmetic): the first
   ball to reach a voxel holds its maximum, so each voxel is written once.
   The still-unpainted voxels are kept as one 64-bit mask per 4×4×4 block;
   a ball visits only the blocks its extent meets whose mask is not empty
   (per row of blocks, "next non-empty block" pointers, union-find with path
   halving, skip the painted ones), builds the block's ball mask from 12
   squared offsets, paints ``unpainted & ball`` and clears those bits. Most
   ridge balls (77 % on the real marrow) find nothing left to paint; this
   makes each such visit a few mask operations instead of a walk over rows.
   z-slabs of blocks run in parallel in a Numba kernel without write races.
   Without Numba a vectorised NumPy version paints one radius class at a
   time (exact, slow);
4. the centres are sorted by a stable radix sort on 16-bit keys, and the
   histogram of :func:`thickness_stats` is one Numba pass (NumPy sorts
   every block of values for explicit bin edges).

Steps 1, 2 and 4 were made cheaper for issue 15 (item 6); the maps are
bit-identical to those of the previous implementation, kept as
:func:`_reference_thickness_squared` (tested on phantoms and the real sample).

The outside of the volume counts as neither structure nor background (the
EDT ignores the border), so a plate cut by the volume faces keeps its
thickness up to the faces.

References
----------
Hildebrand T, Rüegsegger P (1997). A new method for the model-independent
assessment of thickness in three-dimensional images. J Microsc 185:67-75.
Dougherty R, Kunzelmann K-H (2007). Computing local thickness of 3D
structures with ImageJ. Microsc Microanal 13 (S02):1678-1679.
Felzenszwalb P, Huttenlocher D (2012). Distance transforms of sampled
functions. Theory of Computing 8:415-428 (the separable EDT used by ``edt``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from bonesim.errors import InputError

log = logging.getLogger(__name__)

# the 13 "forward" neighbour offsets; with their negatives, all 26
_HALF26 = [
    (dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) > (0, 0, 0)
]


def edt_squared(mask: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Squared Euclidean distance (in voxels²) from each True voxel to the nearest False voxel.

    The volume border is not background. Returns int32 (0 outside ``mask``);
    where ``mask`` has no False voxel at all the distance is undefined and a
    ``ValueError`` is raised.

    >>> edt_squared(np.array([[[0, 1, 1, 1, 0]]], bool)).tolist()
    [[[0, 1, 4, 1, 0]]]
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    if mask.all():
        raise InputError("the distance transform needs at least one background voxel")
    threads = threads or os.cpu_count() or 1
    try:
        import edt

        d2 = edt.edtsq(mask, black_border=False, parallel=threads)
    except ImportError:  # pragma: no cover - edt is a core dependency
        from scipy import ndimage

        from bonesim._optional import warn_fallback

        warn_fallback("edt", "the distance transform (scipy, single-threaded)")

        d2 = ndimage.distance_transform_edt(mask) ** 2
    return np.rint(d2).astype(np.int32)


def edt_squared_phases(mask: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Both phases' squared EDT in one pass: for a True voxel the squared distance to the nearest
    False voxel, for a False voxel to the nearest True voxel (int32).

    Equals ``np.where(mask, edt_squared(mask), edt_squared(~mask))`` (tested) at the cost of one
    transform: the ``edt`` package's multi-label mode measures each voxel's distance to the
    nearest voxel of another label, here bone 1 and marrow 2 (no label-0 voxel, so the volume
    border is still not background). Both phases must be present.

    >>> edt_squared_phases(np.array([[[0, 1, 1, 1, 0, 0]]], bool)).tolist()
    [[[1, 1, 4, 1, 1, 4]]]
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    if mask.all() or not mask.any():
        raise InputError("the distance transform needs voxels of both phases")
    threads = threads or os.cpu_count() or 1
    try:
        import edt

        labels = np.where(mask, np.uint8(1), np.uint8(2))
        d2 = edt.edtsq(labels, black_border=False, parallel=threads)
    except ImportError:  # pragma: no cover - edt is a core dependency
        return np.where(mask, edt_squared(mask), edt_squared(~mask))
    return np.rint(d2).astype(np.int32)


def _need_table(dmax: int, offsets: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """``need[k, D]``: the smallest squared radius a centre at offset ``offsets[k]`` needs for its
    lattice ball to hold the whole lattice ball ``{q : |q|² < D}``.

    need = max over the ball of |q - o|², plus 1 (strict inequality). Computed for all D at
    once: lattice points sorted by |q|², a running max of |q|² - 2 q·o. The ball is symmetric
    under sign flips of each axis, so the offset is taken as ``|o|`` (componentwise) and only
    the octant ``q <= 0`` is searched (flipping a component of q to the sign opposite to o's
    keeps |q|² and does not lower -2 q·o): the same maxima from an eighth of the points.
    Without ``offsets`` the rows are indexed by the squared length 1, 2, 3 of a 26-neighbour
    offset (by the ball's cubic symmetry one offset per class suffices).
    """
    if offsets is None:
        table = _need_table(dmax, [(0, 0, 1), (0, 1, 1), (1, 1, 1)])
        return np.concatenate([np.zeros((1, dmax + 1), np.int64), table])
    r = int(np.ceil(np.sqrt(max(dmax, 1))))
    g = np.arange(-r, 1)
    qz, qy, qx = (a.ravel() for a in np.meshgrid(g, g, g, indexing="ij"))
    n2 = qz * qz + qy * qy + qx * qx
    order = np.argsort(n2, kind="stable")
    n2s, qz, qy, qx = n2[order], qz[order], qy[order], qx[order]
    k = np.searchsorted(n2s, np.arange(dmax + 1), side="left")  # points with |q|² < D
    need = np.zeros((len(offsets), dmax + 1), np.int64)
    for i, o in enumerate(offsets):
        a = [abs(int(c)) for c in o]
        run = np.maximum.accumulate(n2s - 2 * (qz * a[0] + qy * a[1] + qx * a[2]))
        need[i] = np.where(k > 0, run[np.maximum(k - 1, 0)] + a[0] ** 2 + a[1] ** 2 + a[2] ** 2 + 1, 0)
    return need


#: Reach (in voxels, Chebyshev) of the second, wider containment test of the Numba ridge.
RIDGE_REACH = 3


#: Squared length of the longest offset of the second pass in :func:`local_thickness_squared`.
#: On the marrow of the real sample the offsets up to (2, 2, 0) find 87 % of the centres that
#: the whole 7³ test drops, at a fifth of its cost; the rest cost more to find than to paint.
LT_FAR_LEN2 = 8


def _far_offsets(reach: int = RIDGE_REACH, max_len2: int | None = None) -> list[tuple[int, int, int]]:
    """Offsets with 2 <= max|o_i| <= reach (and |o|² <= ``max_len2``), nearest first (one per
    symmetry class is not enough here: the test reads the neighbour's own D, so every offset
    is listed)."""
    offs = [
        (dz, dy, dx)
        for dz in range(-reach, reach + 1)
        for dy in range(-reach, reach + 1)
        for dx in range(-reach, reach + 1)
        if max(abs(dz), abs(dy), abs(dx)) >= 2
    ]
    if max_len2 is not None:
        offs = [o for o in offs if o[0] ** 2 + o[1] ** 2 + o[2] ** 2 <= max_len2]
    return sorted(offs, key=lambda o: (o[0] ** 2 + o[1] ** 2 + o[2] ** 2, o))


def _ridge_numpy(d2: np.ndarray, need: np.ndarray) -> np.ndarray:
    keep = d2 > 0
    nz, ny, nx = d2.shape
    req = {cls: need[cls][d2] for cls in (1, 2, 3)}
    for off in _HALF26:
        cls = sum(o * o for o in off)
        sc, sn = [], []
        for o, n in zip(off, (nz, ny, nx), strict=True):
            sc.append(slice(0, n - o) if o >= 0 else slice(-o, n))
            sn.append(slice(o, n) if o >= 0 else slice(0, n + o))
        sc, sn = tuple(sc), tuple(sn)
        keep[sc] &= ~(d2[sn] >= req[cls][sc])
        keep[sn] &= ~(d2[sc] >= req[cls][sn])
    return keep


_NUMBA_RIDGE = None


def _numba_ridge():
    global _NUMBA_RIDGE
    if _NUMBA_RIDGE is not None:
        return _NUMBA_RIDGE or None
    try:
        import numba  # noqa: F401  (missing: the NumPy fallback)
    except ImportError:
        from bonesim._optional import warn_fallback

        warn_fallback("numba", "local thickness (Tb.Th, Tb.Sp; NumPy, ~20x slower)")
        _NUMBA_RIDGE = False
        return None

    from bonesim.morphometry import _thickness_kernels as k

    _NUMBA_RIDGE = (k.ridge, k.ridge_far)
    return _NUMBA_RIDGE


def distance_ridge(
    d2: np.ndarray, *, engine: str = "auto", reach: int = RIDGE_REACH, max_len2: int | None = None
) -> np.ndarray:
    """Mask of the centres whose lattice ball is not inside a neighbour's lattice ball.

    ``d2`` is a squared EDT (:func:`edt_squared`). The test is exact on the
    lattice: c is dropped when a 26-neighbour n holds every voxel of c's ball
    (``D(n) >= need(D(c), n - c)``, see :func:`_need_table`); such an n has
    ``D(n) > D(c)``, so dropping c changes no local-thickness value. With
    Numba and ``reach >= 2`` a second pass tests the centres 2..``reach``
    voxels away (Chebyshev; only offsets with ``|o|² <= max_len2`` when
    given) as well; :func:`local_thickness_squared` uses ``reach=2,
    max_len2=LT_FAR_LEN2``.

    >>> distance_ridge(np.array([[[0, 1, 4, 1, 0]]], np.int32)).astype(int).tolist()
    [[[0, 0, 1, 0, 0]]]
    """
    d2 = np.ascontiguousarray(d2, dtype=np.int32)
    need = _need_table(int(d2.max()))  # rows 1, 2, 3: squared length of a 26-neighbour offset
    kernels = _numba_ridge() if engine in ("auto", "numba") else None
    if kernels is None:
        return _ridge_numpy(d2, need)
    ridge, ridge_far = kernels
    keep = ridge(d2, need, np.zeros(d2.shape, bool))
    if reach >= 2 and keep.any():
        offs = _far_offsets(reach, max_len2)
        # need depends on the offset only through its sorted absolute components
        classes = sorted({tuple(sorted(abs(c) for c in o)) for o in offs})
        index = {c: i for i, c in enumerate(classes)}
        cls = np.array([index[tuple(sorted(abs(c) for c in o))] for o in offs], np.int64)
        need_t = np.ascontiguousarray(_need_table(int(d2.max()), classes).T)
        _, ny, nx = d2.shape
        offs_a = np.array(offs, np.int64)
        lin = (offs_a[:, 0] * ny + offs_a[:, 1]) * nx + offs_a[:, 2]
        idx = np.flatnonzero(keep)
        keep = ridge_far(d2, keep, idx, offs_a, lin, cls, need_t, reach)
    return keep


# ------------------------------------------------------------------ painting ----
_NUMBA_KERNEL = None


def _numba_kernel():
    """Compile (once, cached on disk by Numba) the parallel ball painter; None without Numba.

    Returns ``(block_masks, paint, histogram)``.
    """
    global _NUMBA_KERNEL
    if _NUMBA_KERNEL is not None:
        return _NUMBA_KERNEL or None
    try:
        import numba  # noqa: F401  (missing: the NumPy fallback)
    except ImportError:
        from bonesim._optional import warn_fallback

        warn_fallback("numba", "local thickness (Tb.Th, Tb.Sp; NumPy, ~20x slower)")
        _NUMBA_KERNEL = False
        return None

    from bonesim.morphometry import _thickness_kernels as k

    _NUMBA_KERNEL = (k.block_masks, k.paint, k.histogram)
    return _NUMBA_KERNEL


def _paint_numpy(shape: tuple[int, int, int], centres: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Vectorised fallback: for each radius class, shift all its centres by each ball offset."""
    out = np.zeros(shape, np.int32)
    flat = out.reshape(-1)
    dims = np.array(shape)
    for dval in np.unique(d)[::-1]:
        sel = centres[d == dval]
        r = int(np.floor(np.sqrt(dval)))
        rng = np.arange(-r, r + 1)
        oz, oy, ox = np.meshgrid(rng, rng, rng, indexing="ij")
        inside = oz**2 + oy**2 + ox**2 < dval
        for off in np.stack([oz[inside], oy[inside], ox[inside]], axis=1):
            p = sel + off
            ok = np.all((p >= 0) & (p < dims), axis=1)
            idx = np.ravel_multi_index(p[ok].T, shape)
            np.maximum.at(flat, idx, np.int32(dval))
    return out


def _descending(cd: np.ndarray) -> np.ndarray:
    """``np.argsort(-cd, kind="stable")``, as a radix sort on 16-bit keys when the values allow."""
    top = int(cd.max()) if cd.size else 0
    key = (top - cd).astype(np.uint16 if top < 1 << 16 else np.int64)
    return np.argsort(key, kind="stable")


def local_thickness_squared(
    mask: np.ndarray, *, engine: str = "auto", edt2: np.ndarray | None = None
) -> np.ndarray:
    """Squared local radius ``max{D(c) : |p-c|² < D(c)}`` of every True voxel (0 elsewhere), int32.

    ``engine`` is 'numba', 'numpy' or 'auto' (Numba when installed). ``edt2``, optional, is
    the squared EDT of ``mask`` already computed by the caller (:func:`edt_squared`, or
    :func:`edt_squared_phases` so that Tb.Th and Tb.Sp share one transform); its values
    outside ``mask`` are ignored.
    """
    from bonesim._validation import check_choice

    check_choice(engine, ("auto", "numba", "numpy"), name="engine")
    mask = np.ascontiguousarray(mask, dtype=bool)
    if edt2 is None:
        d2 = edt_squared(mask)
    else:
        if np.shape(edt2) != mask.shape:
            raise InputError(f"edt2 has shape {np.shape(edt2)}, the mask {mask.shape}")
        d2 = np.where(mask, np.asarray(edt2, dtype=np.int32), np.int32(0))
    ridge = distance_ridge(d2, engine=engine, reach=2, max_len2=LT_FAR_LEN2)
    cz, cy, cx = np.nonzero(ridge)  # C order: sorted by z
    cd = d2[cz, cy, cx].astype(np.int64)
    log.debug("local thickness: %d ridge centres of %d voxels", cz.size, int(mask.sum()))
    kernel = _numba_kernel() if engine in ("auto", "numba") else None
    if engine == "numba" and kernel is None:
        from bonesim._optional import MissingDependencyError

        raise MissingDependencyError("numba", "engine='numba'")
    if kernel is not None:
        block_masks, paint, _ = kernel
        order = _descending(cd)
        nz, ny, nx = mask.shape
        nb = (-(-nz // 4), -(-ny // 4), -(-nx // 4))
        bits = block_masks(mask, np.zeros(nb, np.uint64))
        bnxt = np.empty((nb[0], nb[1], nb[2] + 1), np.int32)
        bnxt[...] = np.arange(nb[2] + 1, dtype=np.int32)
        bnxt[:, :, : nb[2]] += bits == 0  # blocks with nothing to paint are skipped from the start
        out = np.zeros(mask.shape, np.int32)
        slab_blocks = max(1, nb[0] // (4 * (os.cpu_count() or 1)))
        paint(out, bits, bnxt, cz[order], cy[order], cx[order], cd[order], slab_blocks)
    else:
        out = _paint_numpy(mask.shape, np.stack([cz, cy, cx], axis=1), cd)
    out[~mask] = 0
    return out


def _reference_thickness_squared(mask: np.ndarray, *, engine: str = "auto") -> np.ndarray:
    """:func:`local_thickness_squared` as it was before issue 15 (item 6), kept as the tests'
    reference: its own EDT, the whole 7³ second ridge pass, a comparison sort. The same
    painters, so the same maps (tested). Tests only."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    d2 = edt_squared(mask)
    cz, cy, cx = np.nonzero(distance_ridge(d2, engine=engine))
    cd = d2[cz, cy, cx].astype(np.int64)
    kernel = _numba_kernel() if engine in ("auto", "numba") else None
    if kernel is None:
        out = _paint_numpy(mask.shape, np.stack([cz, cy, cx], axis=1), cd)
    else:
        block_masks, paint, _ = kernel
        order = np.argsort(-cd, kind="stable")
        nz, ny, nx = mask.shape
        nb = (-(-nz // 4), -(-ny // 4), -(-nx // 4))
        bits = block_masks(mask, np.zeros(nb, np.uint64))
        bnxt = np.empty((nb[0], nb[1], nb[2] + 1), np.int32)
        bnxt[...] = np.arange(nb[2] + 1, dtype=np.int32)
        bnxt[:, :, : nb[2]] += bits == 0
        out = np.zeros(mask.shape, np.int32)
        slab_blocks = max(1, nb[0] // (4 * (os.cpu_count() or 1)))
        paint(out, bits, bnxt, cz[order], cy[order], cx[order], cd[order], slab_blocks)
    out[~mask] = 0
    return out


def local_thickness(
    mask: np.ndarray, *, voxel_size_um: float = 1.0, engine: str = "auto", edt2: np.ndarray | None = None
) -> np.ndarray:
    """Local thickness map τ (float32, µm; 0 outside ``mask``) of the True phase.

    >>> from bonesim.phantom import plate
    >>> t = local_thickness(plate((9, 8, 8), 5) > 0, voxel_size_um=10)
    >>> float(t.max()), float(t[4].min())
    (60.0, 60.0)
    """
    r2 = local_thickness_squared(mask, engine=engine, edt2=edt2)
    return (2.0 * np.sqrt(r2, dtype=np.float32) * np.float32(voxel_size_um)).astype(np.float32)


@dataclass(frozen=True)
class ThicknessStats:
    """Voxel-weighted statistics of a local-thickness map (µm)."""

    mean_um: float
    sd_um: float
    max_um: float
    hist_edges_um: np.ndarray
    hist_counts: np.ndarray

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_um": self.mean_um, f"{prefix}_sd_um": self.sd_um, f"{prefix}_max_um": self.max_um}


def thickness_stats(values_um: np.ndarray, voxel_size_um: float) -> ThicknessStats:
    """Mean, SD, max and a histogram (bins one voxel of diameter wide) of thickness values."""
    v = np.asarray(values_um, np.float64)
    if v.size == 0:
        nan = float("nan")
        return ThicknessStats(nan, nan, nan, np.zeros(1), np.zeros(0, np.int64))
    top = float(v.max())
    nb = max(1, int(np.ceil(top / voxel_size_um)) + 1)
    edges = np.arange(nb + 1) * voxel_size_um
    return ThicknessStats(float(v.mean()), float(v.std()), top, edges, _histogram(v, edges, voxel_size_um))


def _histogram(v: np.ndarray, edges: np.ndarray, step: float) -> np.ndarray:
    """``np.histogram(v, bins=edges)[0]`` (edges about ``step`` apart): one Numba pass instead of
    NumPy's sort of every block of values for explicit edges (0.5 s for the 6 M marrow voxels
    of the real sample); the same counts (tested)."""
    kernels = _numba_kernel()
    if kernels is None:
        return np.histogram(v, bins=edges)[0]
    counts = np.zeros(edges.size - 1, np.int64)
    return kernels[2](np.ascontiguousarray(v, np.float64), np.asarray(edges, np.float64), 1.0 / step, counts)


def brute_force_thickness_squared(mask: np.ndarray) -> np.ndarray:
    """Reference: paint the ball of *every* structure voxel (no pruning), O(N·r³). Tests only."""
    mask = np.asarray(mask, bool)
    d2 = edt_squared(mask)
    out = np.zeros(mask.shape, np.int32)
    zz, yy, xx = np.indices(mask.shape)
    for c in zip(*np.nonzero(mask), strict=True):
        dc = d2[c]
        ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < dc
        np.maximum(out, np.where(ball, dc, 0).astype(np.int32), out=out)
    out[~mask] = 0
    return out
