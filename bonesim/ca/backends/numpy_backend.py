"""The NumPy reference backend of the remodeling CA.

:func:`step_block` applies one step of the rule of ``kernels/remodel_rules.cuh``
to a block of packed state words, vectorised over the voxels that can change
this step (active BMU voxels, surface voxels whose activation draw succeeded,
bone next to a recruiting neighbour, and with modeling on the marrow voxels
whose modeling draw succeeded); every other voxel provably keeps its word. The result is bit-identical to the CUDA kernel and to the same C++
rule compiled for the host (tests/test_ca_parity.py).

The block may be a chunk of a larger volume: give it with a ``halo`` of at
least one voxel and its ``origin`` and the ``global_shape``; neighbours
outside the global volume read as the inert word.

:class:`NumpyBackend` steps a whole volume with :func:`step_active` instead:
it keeps the surface voxels and the BMU voxels between steps and updates them
from the voxels that changed, so a step costs in proportion to this active
set rather than to the volume, with the same bits as :func:`step_block`
(tests/ca/test_numpy_active_set.py).
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from typing import Any

import numpy as np

from bonesim.ca.backends.base import (
    COUNTERS,
    EV_MODEL,
    EV_PERF,
    EV_RECRUIT,
    EV_SEED,
    EV_SURFACE,
    INERT,
    NEIGH,
    OFFSETS,
    StepInputs,
    field_of,
    pack,
    released_fields,
    take_maps,
    unpack,
)
from bonesim.ca.kernel_abi import N_MECH_CLASSES, check_mechanics
from bonesim.ca.rng import STREAM_ACTIVATION, STREAM_MODELING, voxel_random
from bonesim.errors import InputError

log = logging.getLogger(__name__)

_U32 = np.uint32
_LITTLE = sys.byteorder == "little"
# direction code k -> offset component, defined for all 5-bit codes like the C helpers
_DZ = np.array([k // 9 - 1 for k in range(32)], dtype=np.int64)
_DY = np.array([(k // 3) % 3 - 1 for k in range(32)], dtype=np.int64)
_DX = np.array([k % 3 - 1 for k in range(32)], dtype=np.int64)
_NORM1 = np.abs(OFFSETS).sum(axis=1)
_N1 = np.abs(_DZ) + np.abs(_DY) + np.abs(_DX)
_ALL26 = tuple(k for k in range(27) if k != 13)
#: The six face neighbours (a modeling seed must touch quiescent bone across a face).
_FACES = NEIGH[6]


#: 16.16 factors 1/sqrt(norm1) of a column's depth by the number of nonzero direction components
_COLUMN_DEPTH_Q16 = np.array([65536, 65536, 46341, 37837], dtype=np.int64)


#: dot product of the offsets of direction codes a and b, at index 32 * a + b (``bs_dot`` of the rule)
_DOT = (_DZ[:, None] * _DZ[None, :] + _DY[:, None] * _DY[None, :] + _DX[:, None] * _DX[None, :]).ravel()


@functools.cache
def _tables(xp: Any) -> tuple[Any, Any, Any]:
    """Direction-code lookup tables as arrays of module ``xp``."""
    return tuple(xp.asarray(t) for t in (_DOT, _N1, _COLUMN_DEPTH_Q16))


def _padded(
    src: np.ndarray, halo: int, origin: tuple[int, int, int], gshape: tuple[int, int, int]
) -> np.ndarray:
    """The interior of ``src`` with exactly one voxel of neighbours around it (inert outside)."""
    inner = tuple(n - 2 * halo for n in src.shape)
    if min(inner) <= 0:
        raise InputError(f"block {src.shape} with halo {halo} has no interior")
    pad = np.full(tuple(n + 2 for n in inner), INERT, dtype=np.uint32)
    dst_sl, src_sl = [], []
    for n, h in zip(src.shape, (halo,) * 3, strict=False):
        lo = 0 if h >= 1 else 1  # padded index whose local coordinate is 0 (or 1 if no halo)
        first_local = h - 1 + lo
        count = min(n - first_local, n - 2 * h + 2 - lo)
        dst_sl.append(slice(lo, lo + count))
        src_sl.append(slice(first_local, first_local + count))
    pad[tuple(dst_sl)] = src[tuple(src_sl)]
    # neighbours outside the global volume are inert
    for axis in range(3):
        first = origin[axis] + halo - 1  # global coordinate of padded index 0
        last = first + inner[axis] + 1
        sl = [slice(None)] * 3
        if first < 0:
            sl[axis] = 0
            pad[tuple(sl)] = INERT
        if last >= gshape[axis]:
            sl[axis] = -1
            pad[tuple(sl)] = INERT
    return pad


def _near_marrow(marrow: np.ndarray, neighbourhood: int) -> np.ndarray:
    """Interior voxels with a marrow neighbour (marrow given on the padded grid)."""
    m = marrow
    if neighbourhood == 26:
        a = m[:, :, :-2] | m[:, :, 1:-1] | m[:, :, 2:]
        b = a[:, :-2] | a[:, 1:-1] | a[:, 2:]
        return b[:-2] | b[1:-1] | b[2:]
    return (
        m[:-2, 1:-1, 1:-1]
        | m[2:, 1:-1, 1:-1]
        | m[1:-1, :-2, 1:-1]
        | m[1:-1, 2:, 1:-1]
        | m[1:-1, 1:-1, :-2]
        | m[1:-1, 1:-1, 2:]
    )


class _Dense:
    """Neighbour words from a dense [27, n] array."""

    def __init__(self, words: Any) -> None:
        self.words = words
        self.n = words.shape[1]

    def row(self, k: int) -> Any:
        return self.words[k].astype(np.int64)

    def pick(self, d: Any, xp: Any) -> Any:
        return self.words[d, xp.arange(self.n)].astype(np.int64)

    def subset(self, idx: Any) -> _Dense:
        return _Dense(self.words[:, idx])

    def rows(self, ks: tuple[int, ...]) -> Any:
        return self.words[list(ks)]


class _Gather:
    """Neighbour words gathered on demand from the padded flat array (only those a branch reads)."""

    def __init__(self, pflat: np.ndarray, pi: np.ndarray, offs: np.ndarray) -> None:
        self.pflat, self.pi, self.offs = pflat, pi, offs
        self.n = pi.shape[0]
        self._rows: dict[int, np.ndarray] = {}

    def row(self, k: int) -> np.ndarray:
        if k not in self._rows:
            self._rows[k] = self.pflat[self.pi + self.offs[k]].astype(np.int64)
        return self._rows[k]

    def pick(self, d: np.ndarray, xp: Any) -> np.ndarray:
        return self.pflat[self.pi + self.offs[d]].astype(np.int64)

    def subset(self, idx: np.ndarray) -> _Gather:
        return _Gather(self.pflat, self.pi[idx], self.offs)

    def rows(self, ks: tuple[int, ...]) -> np.ndarray:
        return self.pflat[self.pi[None, :] + self.offs[list(ks)][:, None]]


def rule(
    words: Any,
    s: StepInputs,
    hashes: Any,
    neighbourhood: int,
    xp: Any = np,
    thr: Any = None,
    model: tuple[Any, Any] | None = None,
) -> tuple[Any, Any]:
    """The per-voxel rule, vectorised: ``words`` [27, n] old neighbour words → (new words, event bits).

    A line-by-line transcription of ``bonesim_rule`` in ``kernels/remodel_rules.cuh``;
    ``xp`` is the array module (NumPy here; CuPy for the naive GPU baseline of the benchmark).
    ``words`` may also be a neighbour accessor with ``row(k)`` (int64), ``rows(ks)`` (uint32 [len(ks), n]),
    ``pick(d, xp)`` and ``subset(idx)``;
    ``thr`` the activation threshold of each voxel (default ``s.act_thr``);
    ``model`` (with ``s.mod_on``) the modeling threshold and modeling draw of each voxel (``bs_modeling``).
    """
    DOT, N1, COLUMN_DEPTH_Q16 = _tables(xp)

    def dot(a: Any, b: Any) -> Any:
        return DOT[(a << 5) | b]  # codes are 5-bit

    W = words if hasattr(words, "row") else _Dense(words)
    n = W.n
    w = W.row(13)
    b = w & 0xFF
    pb = (w >> 8) & 0xFF
    t = w >> 16
    out = w.copy()
    ev = xp.zeros(n, np.int64)
    nb_idx = NEIGH[neighbourhood]

    def word(bone: Any, pbyte: Any, timer: Any) -> Any:
        return bone | (pbyte << 8) | (timer << 16)

    # ------------------------------------------------------------ quiescent bone
    q = (pb == 0) & (b > 0)
    if q.any():
        # the neighbour words as rows (one per k, in the fixed order k = 0..26, self left out):
        # the C loops over k become reductions over axis 0, with the same tie-break
        Yn = W.rows(nb_idx)  # the neighbourhood
        Ya = Yn if len(nb_idx) == 26 else W.rows(_ALL26)  # every neighbour
        kn = xp.asarray(nb_idx)[:, None]
        ka = xp.asarray(_ALL26)[:, None]
        opposite = xp.asarray([26 - k for k in _ALL26], dtype=np.uint32)[:, None]  # (uint32 like the rows)
        # surface: a marrow neighbour in the neighbourhood; inward normal = -sign(sum of their offsets)
        m = (Yn & 0xFFFF) == 0
        surf = m.any(axis=0)
        sz, sy, sx = ((xp.asarray(OFFSETS)[kn, i] * m).sum(axis=0) for i in range(3))
        ev[q & surf] |= EV_SURFACE
        # column hand-over: the emptied front (R, bone 0) pointing at this voxel with the largest
        # timer; the first such k on ties (the loop's strict `>`)
        ypb = (Ya >> 8) & 0xFF
        points_here = ((ypb & 3) == 1) & ((Ya & 0xFF) == 0) & ((ypb >> 3) == opposite)
        yt = xp.where(points_here, Ya >> 16, 0)
        bt = yt.max(axis=0)
        best = xp.where(bt > 0, ka[yt.argmax(axis=0), 0], -1)
        bt = bt.astype(np.int64)
        deep = q & (best >= 0)
        out = xp.where(deep, word(b, 1 | ((26 - best) << 3), bt), out)
        qs = q & ~deep & surf
        d = (1 - xp.sign(sz)) * 9 + (1 - xp.sign(sy)) * 3 + (1 - xp.sign(sx))
        # lateral recruitment: the best budget left after the step's cost among top fronts whose
        # direction agrees with this voxel's normal (0 if none is positive)
        costs = xp.asarray([(0, s.cost1, s.cost2, s.cost3)[int(_NORM1[k])] for k in nb_idx])[:, None]
        ypb = (Yn >> 8) & 0xFF
        lat = Yn >> 24
        ok = ((ypb & 3) == 1) & ((ypb & 4) != 0) & (lat != 0) & (dot(ypb >> 3, d[None, :]) > 0)
        bestc = xp.maximum(xp.where(ok, lat - costs, 0).max(axis=0), 0)
        lat_rec = qs & (bestc > 0)
        out = xp.where(lat_rec, word(b, 1 | 4 | (d << 3), bestc << 8), out)
        act = qs & ~lat_rec & (hashes.astype(np.int64) < (s.act_thr if thr is None else thr))
        out = xp.where(act, word(b, 1 | 4 | (d << 3), s.lat0 << 8), out)
        ev[lat_rec | act] |= EV_RECRUIT
        ev[act] |= EV_SEED

    # ------------------------------------------- marrow: modeling-based formation (bs_modeling)
    if s.mod_on and model is not None:
        mthr, mhash = model
        mq = (pb == 0) & (b == 0) & (mthr > 0)
        idx = xp.flatnonzero(mq)
        if idx.size:
            y = W.subset(idx).rows(_FACES)
            sup = (((y & 0xFF00) == 0) & ((y & 0xFF) > 0)).any(axis=0)  # quiescent bone across a face
            start = idx[sup & (mhash[idx].astype(np.int64) < mthr[idx])]
            out[start] = word(0, 3, 255)
            ev[start] |= EV_MODEL

    ph = pb & 3
    # ---------------------------------------------------------------- resorbing
    is_r = (pb != 0) & (ph == 1)
    if is_r.any():
        d = xp.where(is_r & ((pb >> 3) < 27), pb >> 3, 13)  # a corrupted code (27..31): no direction
        front = is_r & (b > 0)  # erodes its bone
        if front.any():
            r = xp.where((pb & 4) != 0, t & 0xFF, t)
            dep = (s.depth * COLUMN_DEPTH_Q16[N1[d]]) >> 16  # E along the column: depth / |d|
            room = xp.where(dep > r, dep - r, 0)
            a = xp.minimum(b, xp.minimum(s.erode, room))
            nbone = b - a
            nr = r + a
            floor = nr >= dep
            res = xp.where(
                floor,
                word(nbone, 2, nr),
                xp.where(nbone == 0, word(0, 1 | (d << 3), nr), word(nbone, pb, nr)),
            )
            # the opposite surface (marrow straight ahead, or a column coming head-on): the front
            # becomes the floor uneroded, unless the element along the column is no thicker than
            # the cavity's depth (r + b <= dep): then it erodes on and cuts the element
            ya = W.pick(d, xp)
            yapb = (ya >> 8) & 0xFF
            da = dot(yapb >> 3, d)
            last = (((ya & 0xFFFF) == 0) & (r + b > dep)) | (
                ((yapb & 3) == 1) & (da < 0) & (4 * da * da >= N1[yapb >> 3] * N1[d])
            )
            res = xp.where(last, word(b, 2, r), res)
            out = xp.where(front, res, out)

        handover = is_r & (b == 0) & (t > 0)  # emptied: hands the column over
        passive = is_r & (b == 0) & (t == 0)  # waits to be pulled into formation
        if (handover | passive).any():
            y = W.pick(d, xp)  # the next voxel along the column
            ypb = (y >> 8) & 0xFF
            yb = y & 0xFF
        if handover.any():
            perf_w = word(0, 3, 0)
            won = ((ypb & 3) == 1) & (yb > 0) & ((ypb & 4) == 0) & ((ypb >> 3) == d)
            dd = dot(ypb >> 3, d)
            head_on = ((ypb & 3) == 1) & ~won & (yb == 0) & (dd < 0) & (4 * dd * dd >= N1[ypb >> 3] * N1[d])
            is_perf = (d == 13) | ((ypb == 0) & (yb == 0)) | ((ypb != 0) & head_on)
            res = xp.where(
                d == 13,
                perf_w,
                xp.where(
                    ypb == 0,
                    xp.where(yb == 0, perf_w, w),
                    xp.where(won, word(0, 1 | (d << 3), 0), xp.where(head_on, perf_w, word(0, 2, t))),
                ),
            )
            out = xp.where(handover, res, out)
            ev[handover & is_perf] |= EV_PERF
        if passive.any():
            pull = ((ypb & 3) == 3) & ((yb == 255) | ((y >> 16) == 0))
            res = xp.where(pull, word(0, 3, y >> 16), xp.where(ypb == 0, word(0, 3, 0), w))
            out = xp.where(passive, res, out)

    # ----------------------------------------------------------------- reversal
    is_v = ph == 2
    if is_v.any():
        c = xp.minimum((pb >> 2) + 1, 63)
        ready = c >= s.rev_steps
        sup = b > 0
        look = xp.flatnonzero(is_v & ready & ~sup)  # only these read their neighbours' bone
        if look.size:  # any mineralised neighbour to build on
            sup[look] = ((W.subset(look).rows(nb_idx) & 0xFF) > 0).any(axis=0)
        budget = xp.minimum((t.astype(np.uint64) * np.uint64(s.f_q16)) >> np.uint64(16), 65535).astype(
            np.int64
        )
        res = xp.where(
            ready & sup,
            word(b, 3, budget),
            xp.where(ready & (c >= 63), word(b, 3, 0), word(b, 2 | (c << 2), t)),
        )
        out = xp.where(is_v, res, out)

    # ------------------------------------------------------------------ forming
    is_f = ph == 3
    if is_f.any():
        a = xp.minimum(s.form, xp.minimum(255 - b, t))
        res = xp.where((b == 255) | (t == 0), b, word(b + a, 3, t - a))
        out = xp.where(is_f, res, out)
    return out.astype(np.uint32), ev


def step_block(
    src: np.ndarray,
    inputs: StepInputs,
    *,
    neighbourhood: int = 26,
    halo: int = 0,
    origin: tuple[int, int, int] = (0, 0, 0),
    global_shape: tuple[int, int, int] | None = None,
    resorbed_day: np.ndarray | None = None,
    formed_day: np.ndarray | None = None,
    map_day: int = -1,
    mech: np.ndarray | None = None,
    lut: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One CA step of a block: a pure function of the old words, the inputs and the position.

    Parameters
    ----------
    src : ndarray of uint32, shape (nz, ny, nx)
        Packed state words of the block, including ``halo`` voxels of
        neighbours on every side (``halo=0`` for a whole volume).
    inputs : StepInputs
        Integer inputs of this step (thresholds, rates, hash key).
    origin : tuple of int
        Global coordinates of ``src[0, 0, 0]``.
    global_shape : tuple of int
        Shape of the whole volume (default: the block's interior).
    resorbed_day, formed_day : ndarray of int32, interior shape, optional
        Remodeling maps, updated in place when ``map_day >= 0``.
    mech, lut : ndarray, optional
        Mechanoregulation (read when ``inputs.mech_on``): the uint8 signal class of
        each interior voxel and the uint32 activation weight of each class (8.8 fixed
        point); a surface voxel activates when its draw is below
        ``min(2**32 - 1, act_thr * lut[mech] >> 8)``.

    Returns
    -------
    dst : ndarray of uint32
        The new words of the interior ``src[h:-h, h:-h, h:-h]``.
    counters : ndarray of uint64
        One value per name in ``bonesim.ca.backends.base.COUNTERS``.
    """
    src = np.ascontiguousarray(src, dtype=np.uint32)
    inner = tuple(n - 2 * halo for n in src.shape)
    gshape = _check_block(src, halo, origin, global_shape, resorbed_day, formed_day)
    check_mechanics(mech, lut, inner, bool(inputs.mech_on), bool(inputs.mod_on))
    thresholds = _Thresholds(inputs, mech, lut)
    pad = _padded(src, halo, tuple(origin), gshape)
    dst = np.ascontiguousarray(pad[1:-1, 1:-1, 1:-1])
    pflat = pad.ravel()
    _PZ, PY, PX = pad.shape
    offs = OFFSETS[:, 0] * (PY * PX) + OFFSETS[:, 1] * PX + OFFSETS[:, 2]

    def linear(zyx: tuple[np.ndarray, ...]) -> np.ndarray:
        gz_, gy_, gx_ = (np.asarray(c, np.int64) + o + halo for c, o in zip(zyx, origin, strict=False))
        return (gz_ * gshape[1] + gy_) * gshape[2] + gx_

    cand, n_surface = _candidates(pad, offs, inputs, neighbourhood, inner, linear, thresholds)
    counters = np.zeros(len(COUNTERS), np.uint64)
    counters[COUNTERS.index("surface")] = n_surface
    ci = np.flatnonzero(cand)
    if ci.size == 0:
        return dst, counters
    cz, cy, cx = np.unravel_index(ci, inner)
    pi = ((cz + 1) * PY + (cy + 1)) * PX + (cx + 1)
    lin = linear((cz, cy, cx))
    hashes = _draws(inputs, lin)
    old = pflat[pi]
    new = np.empty(ci.shape, np.uint32)
    ev = np.zeros(ci.shape, np.int64)
    group = _rule_groups(old)  # each branch gathers only the neighbours it reads
    for g in range(6):
        sel = np.flatnonzero(group == g)
        if sel.size:
            thr = thresholds.at(ci[sel]) if g == 0 else None  # only quiescent voxels activate
            model = _model_inputs(inputs, thresholds, old[sel], ci[sel], lin[sel]) if g == 0 else None
            new[sel], ev[sel] = rule(
                _Gather(pflat, pi[sel], offs), inputs, hashes[sel], neighbourhood, thr=thr, model=model
            )
    dst.reshape(-1)[ci] = new
    diff = (new & _U32(0xFF)).astype(np.int64) - (old & _U32(0xFF)).astype(np.int64)
    _count_events(counters, diff, ev)
    if map_day >= 0:
        _update_maps(ci, diff, map_day, resorbed_day, formed_day)
    return dst, counters


def _rule_groups(words: np.ndarray) -> np.ndarray:
    """The branch of the rule each word takes, so that one call computes only what its voxels need.

    0 quiescent (phase byte 0, or phase 0), 2 reversal, 3 forming; resorbing voxels by sub-branch:
    1 a front with bone, 4 an emptied front (bone 0, timer > 0), 5 a passive column voxel (both 0).
    """
    pbyte = (words >> _U32(8)) & _U32(0xFF)
    group = pbyte & _U32(3)
    group[pbyte == 0] = 0
    empty = (group == 1) & ((words & _U32(0xFF)) == 0)
    timer = words >> _U32(16)
    group[empty & (timer != 0)] = 4
    group[empty & (timer == 0)] = 5
    return group


def _check_block(src, halo, origin, global_shape, resorbed_day, formed_day) -> tuple[int, int, int]:
    """Refuse maps of the wrong kind and a block outside the volume; return the global shape."""
    inner = tuple(n - 2 * halo for n in src.shape)
    for name, m in (("resorbed_day", resorbed_day), ("formed_day", formed_day)):
        if m is not None and (m.shape != inner or m.dtype != np.int32 or not m.flags.c_contiguous):
            raise InputError(
                f"`{name}` must be a C-contiguous int32 array of shape {inner} (updated in place)"
            )
    gshape = tuple(global_shape) if global_shape is not None else inner
    for ax in range(3):
        lo = origin[ax] + halo
        if lo < 0 or lo + inner[ax] > gshape[ax]:
            raise InputError(
                f"block interior {inner} at global {tuple(o + halo for o in origin)} lies outside the "
                f"global volume {gshape}"
            )
    return gshape  # type: ignore[return-value]


def _byte_views(pad: np.ndarray) -> tuple[np.ndarray, ...]:
    """(bone, phase byte, lateral byte, marrow, timer != 0) of the padded packed words."""
    if _LITTLE:  # little-endian: byte 0 bone, byte 1 phase, bytes 2-3 timer
        pb4 = pad.view(np.uint8).reshape(*pad.shape, 4)
        halves = pad.view(np.uint16).reshape(*pad.shape, 2)
        return pb4[..., 0], pb4[..., 1], pb4[..., 3], halves[..., 0] == 0, halves[..., 1] != 0
    return (  # pragma: no cover - big-endian hosts
        (pad & _U32(0xFF)).astype(np.uint8),
        ((pad >> _U32(8)) & _U32(0xFF)).astype(np.uint8),
        (pad >> _U32(24)).astype(np.uint8),
        (pad & _U32(0xFFFF)) == 0,
        (pad >> _U32(16)) != 0,
    )


class _Thresholds:
    """Activation thresholds of interior voxels (flat indices): act_thr, or act_thr scaled by lut[mech].

    With ``mod_on`` also the modeling thresholds ``lut[256 + mech]`` (:meth:`model_at`).
    """

    def __init__(self, inputs: StepInputs, mech: np.ndarray | None, lut: np.ndarray | None) -> None:
        self.act_thr = int(inputs.act_thr)
        self.flat = mech.reshape(-1) if inputs.mech_on else None
        self.lut = lut
        self.mod_on = bool(inputs.mod_on)

    def model_at(self, flat_index: np.ndarray) -> np.ndarray:
        """Modeling threshold of each voxel (int64; 0 without modeling)."""
        if not self.mod_on:
            return np.zeros(np.shape(flat_index), np.int64)
        return self.lut[N_MECH_CLASSES + self.flat[flat_index].astype(np.intp)].astype(np.int64)

    def at(self, flat_index: np.ndarray) -> np.ndarray | int:
        if self.flat is None:
            return self.act_thr
        t = (np.uint64(self.act_thr) * self.lut[self.flat[flat_index]].astype(np.uint64)) >> np.uint64(8)
        return np.minimum(t, np.uint64(0xFFFFFFFF)).astype(np.int64)


def _model_inputs(
    inputs: StepInputs, thresholds: _Thresholds, old: np.ndarray, interior: np.ndarray, linear: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(modeling threshold, modeling draw) of voxels with old words ``old`` for :func:`rule` (None if off).

    Only marrow voxels (low 16 bits 0) get a threshold and a draw; the others 0.
    """
    if not inputs.mod_on:
        return None
    mthr = np.zeros(old.shape, np.int64)
    mhash = np.zeros(old.shape, np.uint32)
    m = np.flatnonzero((old & _U32(0xFFFF)) == 0)
    if m.size:
        mthr[m] = thresholds.model_at(interior[m])
        mhash[m] = _model_draws(inputs, linear[m])
    return mthr, mhash


def _model_draws(inputs: StepInputs, linear_index: np.ndarray) -> np.ndarray:
    """The modeling stream's random words of these voxels at this step."""
    return voxel_random(inputs.seed_lo, inputs.seed_hi, inputs.step, linear_index, STREAM_MODELING)


def _face_qbone(pflat: np.ndarray, pi: np.ndarray, face_offs: np.ndarray) -> np.ndarray:
    """Whether each voxel (padded flat index) has quiescent bone across a face."""
    out = np.zeros(pi.shape, bool)
    for o in face_offs:
        out |= _is_qbone(pflat[pi + o])
    return out


def _candidates(pad, offs, inputs, neighbourhood, inner, linear, thresholds) -> tuple[np.ndarray, int]:
    """Voxels the rule must visit this step (active, recruitable or drawn to seed), and the surface count."""
    pbone, pph, plat, marrow, ptimer_nz = _byte_views(pad)
    pbyte = pph[1:-1, 1:-1, 1:-1]
    qbone = (pbyte == 0) & (pbone[1:-1, 1:-1, 1:-1] != 0)
    surface = _surface(pbone, pph, marrow, neighbourhood)
    # sources that can recruit bone next to them: fresh top fronts and emptied fronts
    is_r = (pph & np.uint8(3)) == 1
    src_top = is_r & ((pph & np.uint8(4)) != 0) & (plat != 0)
    src_hand = is_r & (pbone == 0) & ptimer_nz
    near = np.zeros(pad.size, bool)
    sidx = np.flatnonzero(src_top | src_hand)
    if sidx.size:
        tgt = (sidx[None, :] + offs[:, None]).ravel()
        near[tgt[(tgt >= 0) & (tgt < pad.size)]] = True
    near_i = near.reshape(pad.shape)[1:-1, 1:-1, 1:-1]
    # activation draws for surface voxels
    sidx_i = np.flatnonzero(surface)
    hs = _draws(inputs, linear(np.unravel_index(sidx_i, inner)))
    drawn = np.zeros(surface.size, bool)
    drawn[sidx_i[hs.astype(np.int64) < thresholds.at(sidx_i)]] = True
    if inputs.mod_on:  # marrow voxels whose modeling draw succeeds (the rule checks the face bone again)
        mi = np.flatnonzero(marrow[1:-1, 1:-1, 1:-1])
        mthr = thresholds.model_at(mi)
        mi, mthr = mi[mthr > 0], mthr[mthr > 0]
        mz, my, mx = np.unravel_index(mi, inner)
        _PZ, PY, PX = pad.shape
        pi = ((mz + 1) * PY + (my + 1)) * PX + (mx + 1)
        face = _face_qbone(pad.reshape(-1), pi, offs[list(_FACES)])
        mi, mthr = mi[face], mthr[face]
        hit = _model_draws(inputs, linear(np.unravel_index(mi, inner))).astype(np.int64) < mthr
        drawn[mi[hit]] = True
    return (pbyte != 0) | (qbone & near_i) | drawn.reshape(inner), int(np.count_nonzero(surface))


def _surface(pbone: np.ndarray, pph: np.ndarray, marrow: np.ndarray, neighbourhood: int) -> np.ndarray:
    """Interior quiescent bone with a marrow neighbour (byte views of the padded grid)."""
    qbone = (pph[1:-1, 1:-1, 1:-1] == 0) & (pbone[1:-1, 1:-1, 1:-1] != 0)
    return qbone & _near_marrow(marrow, neighbourhood)


def _draws(inputs: StepInputs, linear_index: np.ndarray) -> np.ndarray:
    """The activation stream's random words of these voxels at this step (``bonesim.ca.rng``)."""
    return voxel_random(inputs.seed_lo, inputs.seed_hi, inputs.step, linear_index, STREAM_ACTIVATION)


#: Voxels of the surface mask scanned per batch, and candidates per batch of the rule, in a step.
_SURFACE_BATCH = 1 << 22
_RULE_BATCH = 1 << 15
#: Surface voxels hashed per batch in a step (bounds the hash's temporaries; elementwise, so exact).
_DRAW_BATCH = 1 << 16


def _drawn(inputs: StepInputs, si: np.ndarray, thresholds: _Thresholds) -> np.ndarray:
    """The voxels of ``si`` (interior flat indices) whose activation draw succeeds, in batches."""
    out = [
        part[_draws(inputs, part).astype(np.int64) < thresholds.at(part)]
        for part in (si[i : i + _DRAW_BATCH] for i in range(0, si.size, _DRAW_BATCH))
    ]
    return np.concatenate(out) if out else si[:0]


def _count_events(counters: np.ndarray, diff: np.ndarray, ev: np.ndarray) -> None:
    counters[0] = int(np.maximum(-diff, 0).sum())
    counters[1] = int(np.maximum(diff, 0).sum())
    counters[2] = int(np.count_nonzero(ev & EV_RECRUIT))
    counters[3] = int(np.count_nonzero(ev & EV_SEED))
    counters[5] = int(np.count_nonzero(ev & EV_PERF))
    counters[6] = int(np.count_nonzero(ev & EV_MODEL))


def _update_maps(ci, diff, map_day, resorbed_day, formed_day) -> None:
    """First day a voxel lost bone; last day it gained bone (maps updated in place)."""
    if resorbed_day is not None:
        rflat = resorbed_day.reshape(-1)
        lost = ci[(diff < 0) & (rflat[ci] < 0)]
        rflat[lost] = map_day
    if formed_day is not None:
        formed_day.reshape(-1)[ci[diff > 0]] = map_day


#: Planes per slab of the whole-volume passes outside the step (upload, surface, save points).
_SLAB = 16


def _pad_state(bone: np.ndarray, phase: np.ndarray, timer: np.ndarray) -> np.ndarray:
    """The packed words with one voxel of inert words around them, packed a slab at a time."""
    nz, ny, nx = np.shape(bone)
    pad = np.empty((nz + 2, ny + 2, nx + 2), np.uint32)
    for sl in ((0, slice(None), slice(None)), (-1, slice(None), slice(None))):
        pad[sl] = INERT
    pad[:, 0], pad[:, -1], pad[:, :, 0], pad[:, :, -1] = INERT, INERT, INERT, INERT
    for z0 in range(0, nz, _SLAB):
        z1 = min(z0 + _SLAB, nz)
        pad[1 + z0 : 1 + z1, 1:-1, 1:-1] = pack(
            np.asarray(bone[z0:z1]), np.asarray(phase[z0:z1]), np.asarray(timer[z0:z1])
        )
    return pad


class _NumpyState:
    """A whole volume between steps, kept so that a step works on its active set only.

    ``pad`` holds the packed words with one voxel of inert words around them (the
    padded grid of :func:`step_block`, kept instead of rebuilt every step); ``word``
    is its interior. Two index sets are maintained incrementally:

    * ``surface``: quiescent bone with a marrow neighbour, the voxels that draw an
      activation number every step: one bit per interior voxel (``surface_bits``,
      little-endian bit order by interior flat index; ``surface`` unpacks it as a bool mask);
    * ``bmu``: the padded flat indices of every interior voxel whose phase byte is not 0
      (the voxels of open BMUs), visited every step.

    ``model_idx`` (padded flat indices of the voxels whose signal class has a nonzero modeling
    threshold) changes only with the class field (:meth:`NumpyBackend.set_mechanics`).
    """

    __slots__ = (
        "bmu",
        "counters",
        "formed_day",
        "lut",
        "mech",
        "model_idx",
        "neighbourhood",
        "pad",
        "resorbed_day",
        "surface_bits",
    )

    def __init__(self, pad: np.ndarray, rmap: np.ndarray, fmap: np.ndarray, neighbourhood: int) -> None:
        self.pad = pad
        self.resorbed_day = rmap
        self.formed_day = fmap
        self.neighbourhood = neighbourhood
        self.counters: list[np.ndarray] = []
        self.mech: np.ndarray | None = None
        self.lut: np.ndarray | None = None
        #: padded flat indices of the voxels whose class has a modeling threshold (set with the field)
        self.model_idx = np.zeros(0, np.int64)
        # the surface mask and the BMU indices, a slab of planes at a time (no full-volume temporaries)
        nz = pad.shape[0] - 2
        plane = (pad.shape[1] - 2) * (pad.shape[2] - 2)
        self.surface_bits = np.zeros(-(-nz * plane // 8), np.uint8)
        bmu = []
        for z0 in range(0, nz, _SLAB):  # _SLAB planes hold a multiple of 8 voxels: whole bytes
            z1 = min(z0 + _SLAB, nz)
            sub = pad[z0 : z1 + 2]  # planes z0 .. z1 of the interior and one neighbour plane each side
            pbone, pph, _plat, marrow, _ = _byte_views(sub)
            packed = np.packbits(_surface(pbone, pph, marrow, neighbourhood).reshape(-1), bitorder="little")
            self.surface_bits[z0 * plane // 8 : z0 * plane // 8 + packed.size] = packed
            z, y, x = np.nonzero(pph[1:-1, 1:-1, 1:-1])
            bmu.append(((z + z0 + 1) * pad.shape[1] + y + 1) * pad.shape[2] + x + 1)
        self.bmu = np.concatenate(bmu) if bmu else np.zeros(0, np.int64)

    @property
    def word(self) -> np.ndarray:
        return self.pad[1:-1, 1:-1, 1:-1]

    @property
    def surface(self) -> np.ndarray:
        """The surface set as a bool mask of the interior (a new array)."""
        n = math.prod(self.shape)
        return np.unpackbits(self.surface_bits, count=n, bitorder="little").view(bool).reshape(self.shape)

    def surface_at(self, i: np.ndarray) -> np.ndarray:
        """Whether interior flat indices ``i`` are in the surface set."""
        return ((self.surface_bits[i >> 3] >> (i & 7).astype(np.uint8)) & 1).astype(bool)

    def set_surface(self, i: np.ndarray, value: np.ndarray) -> None:
        """Put interior flat indices ``i`` in (``value`` True) or out of the surface set (repeats allowed)."""
        bit = np.left_shift(np.uint8(1), (i & 7).astype(np.uint8))
        np.bitwise_and.at(self.surface_bits, i[~value] >> 3, ~bit[~value])
        np.bitwise_or.at(self.surface_bits, i[value] >> 3, bit[value])

    def surface_indices(self, start: int, stop: int) -> np.ndarray:
        """Interior flat indices in ``[start, stop)`` (``start`` a multiple of 8) in the surface set."""
        n = min(stop, math.prod(self.shape)) - start
        if n <= 0:
            return np.zeros(0, np.int64)
        part = np.unpackbits(self.surface_bits[start // 8 : -(-(start + n) // 8)], count=n, bitorder="little")
        i = np.flatnonzero(part)
        i += start
        return i

    @property
    def gshape(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(n - 2 for n in self.pad.shape)  # type: ignore[return-value]

    def to_padded(self, i: np.ndarray) -> np.ndarray:
        """Padded flat indices of interior flat indices (the global linear index of a whole volume)."""
        _Z, Y, X = self.shape
        _PZ, PY, PX = self.pad.shape
        z, r = np.divmod(i, Y * X)
        y, x = np.divmod(r, X)
        return ((z + 1) * PY + (y + 1)) * PX + (x + 1)

    def to_interior(self, pi: np.ndarray) -> np.ndarray:
        """Interior flat indices of padded flat indices of interior voxels."""
        _Z, Y, X = self.shape
        _PZ, PY, PX = self.pad.shape
        z, r = np.divmod(pi, PY * PX)
        y, x = np.divmod(r, PX)
        return ((z - 1) * Y + (y - 1)) * X + (x - 1)


def _is_qbone(w: np.ndarray) -> np.ndarray:
    """Quiescent bone: phase byte 0, bone > 0."""
    return ((w & _U32(0xFF00)) == 0) & ((w & _U32(0xFF)) != 0)


def _near_marrow_at(pflat: np.ndarray, pi: np.ndarray, nb_offs: np.ndarray) -> np.ndarray:
    """Whether each voxel (padded flat index) has a marrow neighbour (low 16 bits 0)."""
    near = np.zeros(pi.shape, bool)
    for o in nb_offs:
        near |= (pflat[pi + o] & _U32(0xFFFF)) == 0
    return near


def step_active(state: _NumpyState, inputs: StepInputs, map_day: int = -1) -> np.ndarray:
    """One CA step of a whole volume in place, touching only its active set; returns the counters.

    Bit-identical to :func:`step_block`, the full-volume path (``tests/ca/test_numpy_active_set.py``
    compares the two step by step): the candidates are the voxels of :func:`_candidates` that
    the rule can change, found from the maintained sets instead of full-volume masks, and the
    rule is the same :func:`rule` applied to them. Afterwards the surface and BMU sets are
    updated from the voxels that changed.
    """
    nbh = state.neighbourhood
    check_mechanics(state.mech, state.lut, state.shape, bool(inputs.mech_on), bool(inputs.mod_on))
    thresholds = _Thresholds(inputs, state.mech, state.lut)
    pflat = state.pad.reshape(-1)
    _PZ, PY, PX = state.pad.shape
    offs = OFFSETS[:, 0] * (PY * PX) + OFFSETS[:, 1] * PX + OFFSETS[:, 2]
    nb_offs = offs[list(NEIGH[nbh])]

    # 1. surface voxels whose activation draw succeeds (`act` of the quiescent branch);
    #    a whole volume's interior flat index is the global linear index the draw hashes
    #    (the surface mask is read in batches: no index array of the whole surface)
    n_surface, drawn_parts = 0, []
    for i in range(0, math.prod(state.shape), _SURFACE_BATCH):
        si = state.surface_indices(i, i + _SURFACE_BATCH)
        n_surface += si.size
        drawn_parts.append(_drawn(inputs, si, thresholds))
    drawn = state.to_padded(np.concatenate(drawn_parts) if drawn_parts else np.zeros(0, np.int64))

    # 2. quiescent bone that a neighbouring front can recruit; step_block takes every neighbour of
    #    a source, here only those the rule can change:
    #    `deep`: the voxel an emptied front (phase R, bone 0, timer > 0) points at, y + offset(code of y)
    #    (the rule's test `(ypb >> 3) == 26 - k` for the neighbour y at offset k)
    w = pflat[state.bmu]
    pb = (w >> _U32(8)) & _U32(0xFF)
    is_r = (pb & _U32(3)) == 1
    hand = is_r & ((w & _U32(0xFF)) == 0) & ((w >> _U32(16)) != 0) & ((pb >> _U32(3)) != 13)
    hand &= (pb >> _U32(3)) < 27  # a corrupted code points nowhere
    deep = state.bmu[hand] + offs[(pb[hand] >> _U32(3)).astype(np.intp)]
    deep = deep[_is_qbone(pflat[deep])]  # the inert border is never quiescent bone
    #    `lat_rec`: surface voxels in the neighbourhood of a fresh top front (R, bit 2, lateral budget)
    top = state.bmu[is_r & ((pb & _U32(4)) != 0) & ((w >> _U32(24)) != 0)]
    lateral = (top[:, None] + nb_offs[None, :]).ravel()
    lateral = lateral[_is_qbone(pflat[lateral])]
    lateral = lateral[state.surface_at(state.to_interior(lateral))]

    #    `model`: marrow voxels with a modeling threshold, quiescent bone across a face and a successful
    #    modeling draw (the rule's bs_modeling)
    model = np.zeros(0, np.int64)
    if inputs.mod_on and state.model_idx.size:
        mi = state.model_idx[(pflat[state.model_idx] & _U32(0xFFFF)) == 0]
        mi = mi[_face_qbone(pflat, mi, offs[list(_FACES)])]
        ii = state.to_interior(mi)
        model = mi[_model_draws(inputs, ii).astype(np.int64) < thresholds.model_at(ii)]

    # 3. candidates: every BMU voxel, plus the quiescent ones of 1 and 2 (each once); the other
    #    voxels keep their words (the rule returns a quiescent voxel's word unless deep, lat_rec, act
    #    or model)
    quiet = np.unique(np.concatenate([drawn, deep, lateral, model]))
    ci = np.concatenate([state.bmu, quiet])
    counters = np.zeros(len(COUNTERS), np.uint64)
    counters[COUNTERS.index("surface")] = n_surface
    if ci.size == 0:
        return counters
    old = pflat[ci]
    new = np.empty(ci.shape, np.uint32)
    ev = np.zeros(ci.shape, np.int64)
    group = _rule_groups(old)
    for g in range(6):
        sel = np.flatnonzero(group == g)
        if sel.size:
            model = None
            if g == 0:  # only quiescent voxels activate: their draws and thresholds
                ii = state.to_interior(ci[sel])
                hashes, thr = _draws(inputs, ii), thresholds.at(ii)
                model = _model_inputs(inputs, thresholds, old[sel], ii, ii)
            else:
                hashes, thr = np.zeros(sel.size, np.uint32), None
            for a in range(0, sel.size, _RULE_BATCH):  # batches bound the rule's temporaries; exact
                b = sel[a : a + _RULE_BATCH]
                t = thr if thr is None or np.isscalar(thr) else thr[a : a + _RULE_BATCH]
                mb = None if model is None else tuple(x[a : a + _RULE_BATCH] for x in model)
                new[b], ev[b] = rule(
                    _Gather(pflat, ci[b], offs), inputs, hashes[a : a + _RULE_BATCH], nbh, thr=t, model=mb
                )
    pflat[ci] = new  # every new word was computed from old words: the update can be in place
    diff = (new & _U32(0xFF)).astype(np.int64) - (old & _U32(0xFF)).astype(np.int64)
    _count_events(counters, diff, ev)
    if map_day >= 0:
        ch = np.flatnonzero(diff)  # only voxels whose bone changed touch the maps
        _update_maps(state.to_interior(ci[ch]), diff[ch], map_day, state.resorbed_day, state.formed_day)

    # 4. the sets of the next step: open BMUs are the candidates whose phase byte stays nonzero
    state.bmu = np.sort(ci[(new & _U32(0xFF00)) != 0], kind="stable")
    # a voxel's surface status changes only when it turns into or out of quiescent bone, or when
    # a neighbour turns into or out of marrow (then the quiescent bone around that one is rechecked)
    changed = new != old
    qflip = changed & (_is_qbone(new) | _is_qbone(old))
    mflip = changed & (((new & _U32(0xFFFF)) == 0) != ((old & _U32(0xFFFF)) == 0))
    around = (ci[mflip][:, None] + nb_offs[None, :]).ravel()
    recheck = np.concatenate([ci[qflip], around[_is_qbone(pflat[around])]])
    q = _is_qbone(pflat[recheck])
    surf = np.zeros(recheck.shape, bool)
    surf[q] = _near_marrow_at(pflat, recheck[q], nb_offs)
    state.set_surface(state.to_interior(recheck), surf)
    return counters


class NumpyBackend:
    """Reference backend: vectorised NumPy on the CPU (bit-identical to the CUDA kernel)."""

    name = "numpy"

    def __init__(self) -> None:
        self.device = "cpu (numpy)"

    def upload(
        self,
        bone: np.ndarray,
        phase: np.ndarray,
        timer: np.ndarray,
        resorbed_day: np.ndarray,
        formed_day: np.ndarray,
        *,
        neighbourhood: int,
        own_maps: bool = False,
    ) -> _NumpyState:
        """``own_maps``: the state may keep (and update in place) the two map arrays given, when they are
        C-contiguous int32, instead of copying them (the engine hands over the arrays it no longer uses)."""

        rmap, fmap = take_maps(resorbed_day, formed_day, own_maps)
        return _NumpyState(_pad_state(bone, phase, timer), rmap, fmap, neighbourhood)

    def step(self, state: _NumpyState, inputs: StepInputs, *, step: int, map_day: int) -> None:
        state.counters.append(step_active(state, inputs, map_day))

    def set_mechanics(self, state: _NumpyState, mech: np.ndarray | None, lut: np.ndarray | None) -> None:
        """The mechanical-signal classes (uint8, the volume's shape) and class weights of the next steps."""
        state.mech = None if mech is None else np.ascontiguousarray(mech, np.uint8)
        state.lut = None if lut is None else np.ascontiguousarray(lut, np.uint32)
        state.model_idx = np.zeros(0, np.int64)
        if state.mech is not None and state.lut is not None and state.lut.size > N_MECH_CLASSES:
            mthr = state.lut[N_MECH_CLASSES:][state.mech.reshape(-1)]
            state.model_idx = state.to_padded(np.flatnonzero(mthr))

    def read_counters(self, state: _NumpyState) -> np.ndarray:
        out = np.array(state.counters, dtype=np.uint64).reshape(-1, len(COUNTERS))
        state.counters = []
        return out

    def download(self, state: _NumpyState) -> dict[str, Any]:
        bone, phase, timer = unpack(state.word)
        return {
            "bone": bone,
            "phase": phase,
            "timer": timer,
            "resorbed_day": state.resorbed_day.copy(),
            "formed_day": state.formed_day.copy(),
        }

    def download_bone(self, state: _NumpyState) -> np.ndarray:
        return (state.word & _U32(0xFF)).astype(np.uint8)

    def download_slab(self, state: _NumpyState, name: str, z0: int, z1: int) -> np.ndarray:
        """Planes ``z0:z1`` of ``name`` (a field of ``download``, or the packed ``word``), an owned copy."""
        if name in ("resorbed_day", "formed_day"):
            return getattr(state, name)[z0:z1].copy()
        w = state.pad[1 + z0 : 1 + z1, 1:-1, 1:-1]
        return w.copy() if name == "word" else field_of(w, name)

    def release(self, state: _NumpyState) -> dict[str, Any]:
        """``download`` at the end of a run, without a second copy of the state.

        The maps are handed over; ``bone`` is a new array; ``phase`` and ``timer``
        are read-only views of the packed words on little-endian hosts. The state
        must not be stepped afterwards.
        """
        state.surface_bits = state.bmu = None  # type: ignore[assignment]
        state.mech = None
        w = state.word
        if _LITTLE:
            inner = (slice(1, -1),) * 3
            b4 = state.pad.view(np.uint8).reshape(*state.pad.shape, 4)[inner]
            h16 = state.pad.view(np.uint16).reshape(*state.pad.shape, 2)[inner]
            return released_fields(b4, h16, state.resorbed_day, state.formed_day)
        bone, phase, timer = unpack(w)  # pragma: no cover - big-endian hosts
        return {
            "bone": bone,
            "phase": phase,
            "timer": timer,
            "resorbed_day": state.resorbed_day,
            "formed_day": state.formed_day,
        }
