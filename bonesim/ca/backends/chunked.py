"""The remodeling CA in chunks with halos: a backend for :func:`bonesim.ca.engine.simulate`.

:class:`ChunkedBackend` has the engine's backend protocol (``upload``,
``step``, ``read_counters``, ``download``) and runs the steps of the NumPy
or CuPy backend over blocks with :func:`bonesim.ca.halo.advance_in_place`:
steps are queued and run ``k`` at a time per halo exchange (halo ``k``
voxels, the CA's reach being one voxel per step); the engine reads counters
every ``CAL_EVERY`` (16) steps to calibrate activation and at every save
point, and those reads flush the queue, so every exchange sees exactly the
integer inputs the whole-volume run would. The result is bit for bit the
whole-volume run: state, maps, counters, metrics, frames.

Host memory: one copy of the state and the two remodeling maps (12 bytes per
voxel), updated in place block by block; beside it the halo bands kept for
the blocks not yet stepped (``k`` planes of the packed words across the
volume, and less) and each block in flight (its words with the halo, stepped
``BlockStep.SLAB`` planes at a time). On the GPU (``inner='cupy'``) only the
blocks in flight live on the device: a volume is limited by host memory, not
by device memory.

Example (tests/test_batch_engine_chunks.py checks it on several chunk shapes)::

    from bonesim import Volume, phantom
    from bonesim.ca.engine import simulate
    from bonesim.ca.backends.chunked import simulate_in_chunks

    vol = Volume(phantom.gyroid((256, 256, 256), 64), voxel_size_um=20)
    a = simulate_in_chunks(vol, years=1, backend="cupy", chunks=128, steps_per_exchange=16, out="a.h5")
    b = simulate(vol, years=1, backend="cupy", out="b.h5")
    assert (a.state["bone"] == b.state["bone"]).all()
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from bonesim.ca.halo import advance_in_place
from bonesim.errors import InputError

log = logging.getLogger(__name__)

FIELDS = ("word", "resorbed_day", "formed_day")
Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def shell_boxes(shape: Sequence[int], inner: Box) -> list[Box]:
    """Boxes that tile ``shape`` minus the box ``inner`` (at most 6, none empty).

    >>> shell_boxes((4, 4, 4), ((1, 3), (0, 4), (0, 4)))
    [((0, 1), (0, 4), (0, 4)), ((3, 4), (0, 4), (0, 4))]
    """
    (z0, z1), (y0, y1), (x0, x1) = inner
    nz, ny, nx = shape
    boxes = [
        ((0, z0), (0, ny), (0, nx)),
        ((z1, nz), (0, ny), (0, nx)),
        ((z0, z1), (0, y0), (0, nx)),
        ((z0, z1), (y1, ny), (0, nx)),
        ((z0, z1), (y0, y1), (0, x0)),
        ((z0, z1), (y0, y1), (x1, nx)),
    ]
    return [b for b in boxes if all(hi > lo for lo, hi in b)]


def _sl(box: Box, shift: int = 0, grow: int = 0) -> tuple[slice, ...]:
    return tuple(slice(lo + shift - grow, hi + shift + grow) for lo, hi in box)


class BlockStep:
    """One CA step of a block with any halo, for :func:`~bonesim.ca.halo.advance_in_place`.

    The block's words are stepped in place, ``SLAB`` planes at a time: each
    slab is cut into boxes that lie wholly inside or wholly outside the voxels
    the block owns, every box is stepped by the backend's block step with a
    one-voxel halo (the inert word beyond the block's faces, as in the whole
    volume beyond its own), and the old values of the last plane of a slab are
    kept for the next one. The two maps come as the owned box only (they are
    ``local`` fields: a voxel's map entries depend on nothing but its own
    change), so the boxes outside it step without maps. The counters of the
    owned boxes are returned, so summing them over blocks gives the whole
    volume's.
    """

    #: Planes per slab: bounds the step's temporaries by a slab, not by the block.
    SLAB = 16

    def __init__(self, inner: str, neighbourhood: int) -> None:
        if inner not in ("numpy", "cupy"):
            raise InputError(f"`inner` must be 'numpy' or 'cupy', got {inner!r}")
        self.inner = inner
        self.neighbourhood = int(neighbourhood)

    def __call__(self, fields, *, origin, global_shape, owned, step, inputs, map_day, lut=None):
        from bonesim.ca.backends.base import COUNTERS, INERT

        word = fields["word"]  # the block with its halo, updated in place
        mech = fields.get("mech")  # constant between FE solves: carried, never changed
        rmap, fmap = fields["resorbed_day"], fields["formed_day"]  # the owned box only
        xp = np
        if self.inner == "cupy":
            import cupy as xp
        own = tuple((lo - o, hi - o) for (lo, hi), o in zip(owned, origin, strict=True))
        (oz0, oz1), oy, ox = own
        nz, ny, nx = word.shape
        counts = np.zeros(len(COUNTERS), np.int64)
        prev = None  # the old words of the plane above the slab
        for z0, z1 in _slabs(nz, oz0, oz1, self.SLAB):
            h = z1 - z0
            src = xp.full((h + 2, ny + 2, nx + 2), INERT, np.uint32)
            if prev is not None:
                src[0, 1:-1, 1:-1] = prev
            below = min(z1 + 1, nz)
            src[1 : 1 + below - z0, 1:-1, 1:-1] = word[z0:below]
            out = xp.empty((h, ny, nx), np.uint32)
            inside = oz0 <= z0 and z1 <= oz1
            slab_own = ((0, h), oy, ox)
            boxes = (
                [slab_own, *shell_boxes((h, ny, nx), slab_own)] if inside else [((0, h), (0, ny), (0, nx))]
            )
            for i, box in enumerate(boxes):
                mine = inside and i == 0
                sub = xp.ascontiguousarray(src[_sl(box, shift=1, grow=1)])
                gbox = ((box[0][0] + z0, box[0][1] + z0), *box[1:])  # in the block's coordinates
                sub_origin = tuple(o + lo - 1 for o, (lo, _) in zip(origin, gbox, strict=True))
                m = None if mech is None else xp.ascontiguousarray(mech[_sl(gbox)])
                r = f = None
                if mine:  # the owned box of this slab, in the owned maps' coordinates
                    mbox = _sl(((z0 - oz0, z1 - oz0), (0, oy[1] - oy[0]), (0, ox[1] - ox[0])))
                    r, f = xp.ascontiguousarray(rmap[mbox]), xp.ascontiguousarray(fmap[mbox])
                dst, c = self._step(
                    sub, inputs, sub_origin, global_shape, r, f, map_day if mine else -1, m, lut
                )
                out[_sl(box)] = dst
                if mine:
                    rmap[mbox], fmap[mbox] = r, f
                    counts += np.asarray(c[: len(COUNTERS)], np.int64)
            prev = word[z1 - 1].copy()
            word[z0:z1] = out
        return fields, counts

    def _step(self, sub, inputs, origin, global_shape, rmap, fmap, map_day, mech, lut):
        if self.inner == "numpy":
            from bonesim.ca.backends.numpy_backend import step_block

            dst, c = step_block(
                sub,
                inputs,
                neighbourhood=self.neighbourhood,
                halo=1,
                origin=origin,
                global_shape=global_shape,
                resorbed_day=rmap,
                formed_day=fmap,
                map_day=map_day,
                mech=mech,
                lut=lut,
            )
            return dst, np.asarray(c, np.int64)
        import cupy

        from bonesim.ca.backends.cupy_backend import NCOUNT, NSLOT, launch_step

        inner = tuple(n - 2 for n in sub.shape)
        if rmap is None:  # a box outside the owned voxels: its map entries are thrown away
            rmap = cupy.full(inner, -1, cupy.int32)
            fmap = cupy.full(inner, -1, cupy.int32)
        dst = cupy.empty(inner, cupy.uint32)
        ring = cupy.zeros((NSLOT, NCOUNT), cupy.uint64)
        launch_step(
            sub,
            dst,
            rmap,
            fmap,
            ring,
            inputs,
            neighbourhood=self.neighbourhood,
            halo=1,
            origin=origin,
            global_shape=global_shape,
            map_day=map_day,
            mech=mech,
            lut=None if lut is None else cupy.asarray(lut),
        )
        return dst, ring.sum(axis=0).get().astype(np.int64)


def _slabs(nz: int, oz0: int, oz1: int, slab: int) -> list[tuple[int, int]]:
    """z ranges of at most ``slab`` planes covering ``0:nz``, cut at the owned range ``oz0:oz1``.

    >>> _slabs(10, 2, 8, 4)
    [(0, 2), (2, 6), (6, 8), (8, 10)]
    """
    out = []
    for a, b in ((0, oz0), (oz0, oz1), (oz1, nz)):
        out.extend((z, min(z + slab, b)) for z in range(a, b, slab))
    return out


class _ChunkedState:
    def __init__(self, fields: dict[str, np.ndarray], neighbourhood: int) -> None:
        self.fields = fields
        self.neighbourhood = neighbourhood
        self.pending: list[tuple[Any, int, int]] = []
        self.rows: list[np.ndarray] = []
        self.lut: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.fields["word"].shape)  # type: ignore[return-value]


class ChunkedBackend:
    """Engine backend that steps the volume in chunks with halos (see the module docstring).

    Parameters
    ----------
    inner : {'numpy', 'cupy'}
        The backend whose block step runs each chunk.
    chunks : int or tuple of int
        Chunk (block interior) edge in voxels.
    steps_per_exchange : int
        At most this many steps per halo exchange (the halo is as many voxels,
        so no more than the thinnest chunk); 16 (the engine's calibration
        interval) or a divisor of it exchanges least often.
    num_workers : int, optional
        Blocks stepped at once (threads); default 1. Each one in flight holds its words with the
        halo (4 bytes per voxel of ``(chunk + 2k)³``, 5 with mechanics) and its slab's temporaries.
    """

    #: Host bytes per voxel the engine's pre-flight asks for: the whole-volume figure (32: the state
    #: and maps, 12, are held once and updated in place) plus one block in flight, at most about 6 per
    #: voxel of the volume (when the volume is a single block), and the halo bands. Measured (2026-12-08,
    #: docs/performance.md): 19.7 B/voxel above the interpreter at 256³ with 128³ chunks and 16 steps
    #: per exchange, the unchunked run's 18.9 (1.04x; was 63, 1.88x).
    host_bytes_per_voxel = 40

    def __init__(
        self,
        inner: str = "numpy",
        *,
        chunks: int | Sequence[int] = 128,
        steps_per_exchange: int = 16,
        num_workers: int | None = None,
    ) -> None:
        if inner == "auto":
            from bonesim.ca.backends import resolve_backend

            inner = resolve_backend("auto").name
        if inner == "cupy":
            from bonesim.ca.backends import resolve_backend

            base = resolve_backend("cupy")  # checks that CuPy and a device work
            num_workers = num_workers or 1
        elif inner == "numpy":
            from bonesim.ca.backends.numpy_backend import NumpyBackend

            base = NumpyBackend()
        else:
            raise InputError(f"`inner` must be 'numpy', 'cupy' or 'auto', got {inner!r}")
        if int(steps_per_exchange) < 1:
            raise InputError(f"`steps_per_exchange` must be >= 1, got {steps_per_exchange!r}")
        self.inner = inner
        self.name = base.name
        self.chunks = chunks
        thinnest = min(chunks) if isinstance(chunks, (tuple, list)) else int(chunks)
        self.k = min(int(steps_per_exchange), int(thinnest))
        if self.k < int(steps_per_exchange):
            log.info(
                "chunks of %d voxels hold a halo of at most %d steps: %d steps per exchange",
                thinnest,
                thinnest,
                self.k,
            )
        self.num_workers = num_workers
        c = "x".join(str(v) for v in (chunks if isinstance(chunks, (tuple, list)) else (chunks,)))
        self.device = f"{base.device}; chunks {c}, {self.k} steps/exchange"
        self.exchanges = 0

    def upload(
        self,
        bone,
        phase,
        timer,
        resorbed_day,
        formed_day,
        *,
        neighbourhood: int,
        own_maps: bool = False,
    ) -> _ChunkedState:
        """``own_maps``: keep (and update in place) the two map arrays given instead of copying them,
        as :meth:`NumpyBackend.upload <bonesim.ca.backends.numpy_backend.NumpyBackend.upload>` does."""
        from bonesim.ca.backends.base import pack, take_maps

        rmap, fmap = take_maps(resorbed_day, formed_day, own_maps)
        word = pack(np.asarray(bone), np.asarray(phase), np.asarray(timer))
        return _ChunkedState({"word": word, "resorbed_day": rmap, "formed_day": fmap}, int(neighbourhood))

    def step(self, state: _ChunkedState, inputs: Any, *, step: int, map_day: int) -> None:
        if state.pending and state.pending[-1][1] + 1 != step:
            self._flush(state)
        state.pending.append((inputs, int(step), int(map_day)))
        if len(state.pending) >= self.k:
            self._flush(state)

    def _flush(self, state: _ChunkedState) -> None:
        if not state.pending:
            return
        pending, state.pending = state.pending, []
        first = pending[0][1]
        stepper = BlockStep(self.inner, state.neighbourhood)

        def params(t: int) -> dict[str, Any]:
            inputs, _, map_day = pending[t - first]
            return {"inputs": inputs, "map_day": map_day, "lut": state.lut}

        counts = advance_in_place(
            state.fields,
            stepper,
            len(pending),
            chunks=self.chunks,
            reach=1,
            steps_per_exchange=len(pending),
            first_step=first,
            params=params,
            local=("resorbed_day", "formed_day"),
            device="cupy" if self.inner == "cupy" else "numpy",
            num_workers=self.num_workers,
        )
        state.rows.extend(np.asarray(counts, np.uint64))
        self.exchanges += 1

    def set_mechanics(self, state: _ChunkedState, mech: np.ndarray | None, lut: np.ndarray | None) -> None:
        """The mechanical-signal classes and class weights of the next steps (queued steps keep the old ones)."""
        self._flush(state)
        if mech is None:
            state.fields.pop("mech", None)
        else:
            state.fields["mech"] = np.ascontiguousarray(mech, np.uint8)
        state.lut = None if lut is None else np.ascontiguousarray(lut, np.uint32)

    def read_counters(self, state: _ChunkedState) -> np.ndarray:
        from bonesim.ca.backends.base import COUNTERS

        self._flush(state)
        out = np.array(state.rows, np.uint64).reshape(-1, len(COUNTERS))
        state.rows = []
        return out

    def download(self, state: _ChunkedState) -> dict[str, np.ndarray]:
        from bonesim.ca.backends.base import unpack

        self._flush(state)
        bone, phase, timer = unpack(state.fields["word"])
        return {
            "bone": bone,
            "phase": phase,
            "timer": timer,
            "resorbed_day": state.fields["resorbed_day"].copy(),
            "formed_day": state.fields["formed_day"].copy(),
        }

    def download_bone(self, state: _ChunkedState) -> np.ndarray:
        self._flush(state)
        return (state.fields["word"] & np.uint32(0xFF)).astype(np.uint8)

    def release(self, state: _ChunkedState) -> dict[str, np.ndarray]:
        """``download`` at the end of a run, without a second copy of the state.

        The maps are handed over; ``bone`` is a new array; ``phase`` and ``timer``
        are read-only views of the packed words on little-endian hosts. The state
        must not be stepped afterwards.
        """
        from bonesim.ca.backends.base import released_fields, unpack

        self._flush(state)
        fields, state.fields = state.fields, {}
        w = fields["word"]
        rmap, fmap = fields["resorbed_day"], fields["formed_day"]
        if sys.byteorder == "little":
            return released_fields(
                w.view(np.uint8).reshape(*w.shape, 4), w.view(np.uint16).reshape(*w.shape, 2), rmap, fmap
            )
        bone, phase, timer = unpack(w)  # pragma: no cover - big-endian hosts
        return {"bone": bone, "phase": phase, "timer": timer, "resorbed_day": rmap, "formed_day": fmap}

    def download_slab(self, state: _ChunkedState, name: str, z0: int, z1: int) -> np.ndarray:
        """Planes ``z0:z1`` of ``name`` (a field of ``download``, or the packed ``word``), an owned copy."""
        from bonesim.ca.backends.base import field_of

        self._flush(state)
        if name in ("word", "resorbed_day", "formed_day"):
            return state.fields[name][z0:z1].copy()
        return field_of(state.fields["word"][z0:z1], name)


def simulate_in_chunks(
    volume,
    params=None,
    *,
    chunks: int | Sequence[int] = 128,
    steps_per_exchange: int = 16,
    backend: str = "auto",
    num_workers: int | None = None,
    **kwargs: Any,
):
    """:func:`bonesim.ca.engine.simulate`, stepping the volume in chunks with halos.

    Same arguments and result as ``simulate`` (bit for bit), plus ``chunks``,
    ``steps_per_exchange`` and ``num_workers`` of :class:`ChunkedBackend`.
    """
    from bonesim.ca.engine import simulate

    be = ChunkedBackend(
        backend, chunks=chunks, steps_per_exchange=steps_per_exchange, num_workers=num_workers
    )
    return simulate(volume, params, backend=be, **kwargs)
