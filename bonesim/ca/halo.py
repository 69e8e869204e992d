"""Chunked simulation with halos: volumes limited by disk, not by device memory.

The CA rules are local (a voxel reads itself and its neighbours within
``reach`` voxels) and every random draw hashes the *global* voxel index, so a
block that carries ``k * reach`` voxels of halo can advance ``k`` steps on
its own and its interior comes out bit for bit as in the whole volume. This
module drives such a block step over a volume with ``dask.array.map_overlap``
(halo ``depth = k * reach``, ``boundary='none'``: the outer faces of the
volume get no halo and the step treats what lies beyond them as inert, as
the whole-volume run does), ``k`` steps per halo exchange, reading the state
from and writing it to NumPy arrays or HDF5 datasets, one exchange at a time.
Blocks are NumPy arrays in the Dask graph; with ``device='cupy'`` each task
copies its block to the GPU, runs its ``k`` steps there and copies it back,
so only a few blocks live on the GPU at a time.

The block step protocol::

    step(fields, *, origin, global_shape, owned, step, **params) -> fields | (fields, counters)

``fields`` maps a field name (``bone``, ``phase``, ``timer``, ...) to an
array of one block with its halo; ``origin`` is the global index of the
block's first voxel; ``owned`` the global box ``((z0, z1), (y0, y1), (x0, x1))``
of the voxels this block is responsible for (its interior); ``step`` the
global step number. The step returns new arrays of the same shapes (values
within ``reach`` of a cut face are garbage and are trimmed away) and,
optionally, integer counters of what happened in the ``owned`` box (bone
removed and added, activations, ...), which are summed over blocks.
``params(step)`` supplies per-step keywords (thresholds from the daily table).

:func:`advance_in_place` runs the same exchanges on NumPy arrays that it
updates in place, block by block, without dask: one copy of the volume
instead of two, plus the halo bands a later block still needs (the engine's
chunked backend uses it); ``local`` fields (read and written only at the
voxel itself) travel without a halo.

Cost: each exchange recomputes the halo shell, ``((c + 2·k·r)/c)³ − 1`` of
the work for chunks of edge ``c`` (k = 4, r = 1, c = 256: 9.7 %), plus one
read and one write of the state per exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from bonesim.errors import InputError

log = logging.getLogger(__name__)

BlockStep = Callable[..., Mapping[str, Any]]


def normalize_chunks(
    shape: Sequence[int], chunks: int | Sequence[int], depth: int
) -> tuple[tuple[int, ...], ...]:
    """Chunk sizes along each axis, every chunk at least ``depth`` voxels (a short last chunk is merged).

    >>> normalize_chunks((10, 8, 9), (4, 8, 3), 3)
    ((4, 6), (8,), (3, 3, 3))
    """
    if isinstance(chunks, (int, np.integer)):
        chunks = (int(chunks),) * len(shape)
    if len(chunks) != len(shape):
        raise InputError(f"`chunks` must have {len(shape)} entries, got {tuple(chunks)}")
    out = []
    for n, c in zip(shape, chunks, strict=True):
        c = int(c)
        if c < 1:
            raise InputError(f"`chunks` must be >= 1, got {tuple(chunks)}")
        c = min(c, n)
        sizes = [c] * (n // c)
        if n % c:
            sizes.append(n % c)
        if len(sizes) > 1 and sizes[-1] < depth:
            tail = sizes.pop()
            sizes[-1] += tail
        if len(sizes) > 1 and min(sizes) < depth:
            raise InputError(
                f"chunks of {c} voxels are thinner than the halo ({depth} voxels); use bigger chunks "
                "or fewer steps per exchange"
            )
        out.append(tuple(sizes))
    return tuple(out)


def _starts(sizes: tuple[int, ...]) -> list[int]:
    return [int(s) for s in np.concatenate([[0], np.cumsum(sizes)[:-1]])]


def halo_overhead(chunk: int, steps_per_exchange: int, reach: int = 1) -> float:
    """Extra work of a halo ``k · reach`` wide around cubic chunks of edge ``chunk`` (fraction).

    >>> round(halo_overhead(256, 4), 3)
    0.097
    """
    d = steps_per_exchange * reach
    return ((chunk + 2 * d) / chunk) ** 3 - 1


def simulate_chunked(
    fields: Mapping[str, Any],
    step: BlockStep,
    n_steps: int,
    *,
    chunks: int | Sequence[int],
    reach: int = 1,
    steps_per_exchange: int = 1,
    first_step: int = 0,
    params: Callable[[int], Mapping[str, Any]] | None = None,
    out: Mapping[str, Any] | None = None,
    scratch: Mapping[str, Any] | None = None,
    device: str = "numpy",
    num_workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    return_counters: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], np.ndarray | None]:
    """Advance a state ``n_steps`` steps block by block, with halos, bit-identical to the whole volume.

    Parameters
    ----------
    fields : mapping of str to array-like
        The state, one 3-D array (NumPy or an h5py dataset) per field, all one shape.
    step : callable
        The block step (see the module docstring); pure, no state of its own.
    n_steps : int
        Steps to advance.
    chunks : int or tuple of int
        Block interior edge(s) in voxels.
    reach : int
        How far (voxels) one step reads around a voxel (1 for 6/26-neighbourhoods).
    steps_per_exchange : int
        ``k``: steps each block advances between halo exchanges; the halo is ``k * reach``.
    first_step : int
        Global number of the first step (for the RNG counter and ``params``).
    params : callable, optional
        ``params(step) -> dict`` of extra keywords for that step.
    out : mapping of str to writable array, optional
        Where the final state goes (e.g. HDF5 datasets); default: new NumPy arrays.
    scratch : mapping of str to writable array, optional
        A second buffer set for the exchanges in between (needed when ``out`` are
        HDF5 datasets and the state must stay out of memory); default: NumPy arrays.
    device : {'numpy', 'cupy'}
        Where each block's steps run.
    num_workers : int, optional
        Threads of the Dask scheduler (blocks in flight at once).
    progress : callable, optional
        ``progress(steps_done, n_steps)`` after each exchange.
    return_counters : bool
        Also return per-step counters: a step may return ``(fields, counters)``
        with ``counters`` a 1-D integer array summed over the voxels the block
        *owns* (its interior, not its halo); they are added up over blocks.

    Returns
    -------
    dict
        The final state (``out`` if given); with ``return_counters``, a tuple
        ``(state, counters)``, counters int64 ``[n_steps, n_counters]`` or None.

    Examples
    --------
    A rule that only copies the state is trivially chunk invariant:

    >>> import numpy as np
    >>> state = {"bone": np.arange(6 * 6 * 6, dtype=np.uint8).reshape(6, 6, 6)}
    >>> same = simulate_chunked(state, lambda f, **kw: f, 3, chunks=3)
    >>> bool((same["bone"] == state["bone"]).all())
    True
    """
    names = list(fields)
    shape = _check_fields(fields, reach, steps_per_exchange, n_steps, device)
    dtypes = {n: np.dtype(fields[n].dtype) for n in names}

    def buffers(target: Mapping[str, Any] | None) -> dict[str, Any]:
        if target is not None:
            return dict(target)
        return {n: np.empty(shape, dtypes[n]) for n in names}

    src: dict[str, Any] = dict(fields)
    final = buffers(out)
    counters: list[np.ndarray] = []
    if n_steps == 0:
        for n in names:
            final[n][...] = src[n][...]
        return (final, None) if return_counters else final
    n_exchanges = -(-n_steps // steps_per_exchange)
    spare = buffers(scratch) if n_exchanges > 1 else None
    done = 0
    for exchange in range(n_exchanges):
        k = min(steps_per_exchange, n_steps - done)
        t0 = first_step + done
        per_step = [dict(params(t0 + i)) if params else {} for i in range(k)]
        # ping-pong so that the last exchange writes ``final`` and no exchange reads what it writes
        dst = final if (n_exchanges - 1 - exchange) % 2 == 0 else spare
        block_counts = _exchange(
            src,
            dst,
            dtypes,
            shape,
            step,
            chunks=chunks,
            depth=k * reach,
            t0=t0,
            per_step=per_step,
            device=device,
            num_workers=num_workers,
        )
        if block_counts is not None:
            counters.append(block_counts)
        src = dst
        done += k
        if progress:
            progress(done, n_steps)
        log.debug("chunked: %d/%d steps (k=%d, halo %d)", done, n_steps, k, k * reach)
    if return_counters:
        return final, (np.concatenate(counters) if counters else None)
    return final


def advance_in_place(
    fields: MutableMapping[str, np.ndarray],
    step: BlockStep,
    n_steps: int,
    *,
    chunks: int | Sequence[int],
    reach: int = 1,
    steps_per_exchange: int = 1,
    first_step: int = 0,
    params: Callable[[int], Mapping[str, Any]] | None = None,
    local: Sequence[str] = (),
    device: str = "numpy",
    num_workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray | None:
    """:func:`simulate_chunked` on NumPy arrays updated in place: one copy of the volume, not two.

    Each exchange visits the blocks in C order. A block's input (its box with
    the halo) is copied from ``fields`` just before it is stepped, and its
    interior is written back as soon as it is done; the blocks visited before
    it have by then overwritten part of its halo, so the old values a later
    block still needs are kept aside first: the ``depth`` planes of a block's
    interior next to its upper face along each axis, for as long as a later
    neighbour has not read them (along z that is one layer of blocks: ``depth``
    planes of the whole volume). The result is bit for bit that of
    :func:`simulate_chunked`.

    Parameters
    ----------
    fields : mutable mapping of str to ndarray
        The state, writable C arrays of one shape; updated in place.
    local : sequence of str
        Fields that the step reads and writes only at the voxel itself and that
        no other field depends on (e.g. maps of what happened where). The step
        gets them as writable views of the block's *owned* box (not the halo),
        may update them in place and returns them (or new arrays of that
        shape): no halo and no second copy.
    num_workers : int, optional
        Blocks stepped at once (threads); default 1. Every block in flight
        holds a copy of its box with the halo and the step's temporaries.

    The other parameters are :func:`simulate_chunked`'s.

    Returns
    -------
    ndarray or None
        Per-step counters summed over the blocks' owned boxes, int64 ``[n_steps, n_counters]``,
        or None when the step returns none.

    Examples
    --------
    >>> import numpy as np
    >>> state = {"bone": np.arange(6 * 6 * 6, dtype=np.uint8).reshape(6, 6, 6)}
    >>> before = state["bone"].copy()
    >>> advance_in_place(state, lambda f, **kw: f, 3, chunks=4, steps_per_exchange=2) is None
    True
    >>> bool((state["bone"] == before).all())
    True
    """
    shape = _check_fields(fields, reach, steps_per_exchange, n_steps, device)
    names = list(fields)
    for n in names:
        a = fields[n]
        if not isinstance(a, np.ndarray) or not a.flags.writeable:
            raise InputError(f"field {n!r} must be a writable NumPy array to be updated in place")
    unknown = [n for n in local if n not in fields]
    if unknown:
        raise InputError(f"`local` names fields that are not in `fields`: {unknown}")
    workers = max(1, int(num_workers or 1))
    counters: list[np.ndarray] = []
    done = 0
    while done < n_steps:
        k = min(steps_per_exchange, n_steps - done)
        t0 = first_step + done
        per_step = [dict(params(t0 + i)) if params else {} for i in range(k)]
        c = _InPlaceExchange(fields, shape, step, chunks, k * reach, t0, per_step, local, device).run(workers)
        if c is not None:
            counters.append(c)
        done += k
        if progress:
            progress(done, n_steps)
        log.debug("chunked in place: %d/%d steps (k=%d, halo %d)", done, n_steps, k, k * reach)
    return np.concatenate(counters) if counters else None


def _sl(box: Sequence[tuple[int, int]], shift: Sequence[int] = (0, 0, 0)) -> tuple[slice, ...]:
    return tuple(slice(lo - s, hi - s) for (lo, hi), s in zip(box, shift, strict=True))


class _InPlaceExchange:
    """One halo exchange of :func:`advance_in_place` (see there)."""

    def __init__(self, fields, shape, step, chunks, depth, t0, per_step, local, device) -> None:
        self.fields, self.shape, self.step = fields, shape, step
        self.depth, self.t0, self.per_step, self.device = depth, t0, per_step, device
        self.local = [n for n in fields if n in local]
        self.halo = [n for n in fields if n not in local]
        self.sizes = normalize_chunks(shape, chunks, depth)
        self.starts = [_starts(s) for s in self.sizes]
        self.grid = tuple(len(s) for s in self.sizes)
        # (block, axis) -> [box, {name: old values}, readers left]
        self.bands: dict[tuple[tuple[int, ...], int], list[Any]] = {}

    def owned(self, idx: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        return tuple((self.starts[a][i], self.starts[a][i] + self.sizes[a][i]) for a, i in enumerate(idx))

    def region(self, idx: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        d = self.depth
        return tuple(
            (max(lo - d, 0), min(hi + d, n)) for (lo, hi), n in zip(self.owned(idx), self.shape, strict=True)
        )

    def later_readers(self, idx: tuple[int, ...], axis: int) -> int:
        """Blocks after ``idx`` (C order) that read its upper ``depth`` planes along ``axis``."""
        if idx[axis] + 1 >= self.grid[axis]:
            return 0
        n = 1
        for a in range(axis + 1, 3):
            n *= min(idx[a] + 1, self.grid[a] - 1) - max(idx[a] - 1, 0) + 1
        return n

    def earlier_neighbours(self, idx: tuple[int, ...]):
        """``(block, axis)`` of the blocks before ``idx`` whose interior its halo reaches: the bands it reads."""
        for axis in range(3):
            if idx[axis] == 0:
                continue
            ranges = [
                [idx[a]]
                if a < axis
                else [idx[a] - 1]
                if a == axis
                else range(max(idx[a] - 1, 0), min(idx[a] + 2, self.grid[a]))
                for a in range(3)
            ]
            for z in ranges[0]:
                for y in ranges[1]:
                    for x in ranges[2]:
                        yield (z, y, x), axis

    def take(self, idx: tuple[int, ...]) -> dict[str, Any]:
        """The block's input (old values), then the bands its later neighbours will need, kept aside."""
        reg = self.region(idx)
        origin = [lo for lo, _ in reg]
        block = {n: np.array(self.fields[n][_sl(reg)], order="C") for n in self.halo}
        if self.depth:
            for key in self.earlier_neighbours(idx):
                entry = self.bands[key]
                box, old = entry[0], entry[1]
                cut = tuple((max(a0, b0), min(a1, b1)) for (a0, a1), (b0, b1) in zip(box, reg, strict=True))
                if all(hi > lo for lo, hi in cut):
                    for n in self.halo:
                        block[n][_sl(cut, origin)] = old[n][_sl(cut, [lo for lo, _ in box])]
                entry[2] -= 1
                if entry[2] == 0:
                    del self.bands[key]
            own = self.owned(idx)
            for axis in range(3):
                readers = self.later_readers(idx, axis)
                if readers:
                    box = tuple(
                        (hi - self.depth, hi) if a == axis else (lo, hi) for a, (lo, hi) in enumerate(own)
                    )
                    self.bands[(idx, axis)] = [
                        box,
                        {n: self.fields[n][_sl(box)].copy() for n in self.halo},
                        readers,
                    ]
        for n in self.local:
            block[n] = self.fields[n][_sl(self.owned(idx))]
        return block

    def advance(self, idx: tuple[int, ...], block: dict[str, Any]):
        """``len(per_step)`` steps of one block; its interior (halo fields) and local fields, and its counters."""
        reg, own = self.region(idx), self.owned(idx)
        origin = tuple(lo for lo, _ in reg)
        state, views = dict(block), {n: block[n] for n in self.local}
        block.clear()  # the caller's references go, so each step's input can be freed
        if self.device == "cupy":
            import cupy

            state = {n: cupy.asarray(v) for n, v in state.items()}
        counts = []
        for i, kw in enumerate(self.per_step):
            res = self.step(state, origin=origin, global_shape=self.shape, owned=own, step=self.t0 + i, **kw)
            if isinstance(res, tuple):
                res, c = res
                counts.append(np.asarray(c.get() if hasattr(c, "get") else c, dtype=np.int64))
            state = dict(res)
            res = None
        inner = _sl(own, origin)
        out = {}
        for n in self.halo:
            v = state.pop(n)[inner]
            out[n] = v.get() if self.device == "cupy" else v
        for n in self.local:
            v = state.pop(n)
            out[n] = v.get() if self.device == "cupy" else v
            if out[n] is views[n]:
                del out[n]  # updated in place
        return out, (np.stack(counts) if counts else None)

    def put(self, idx: tuple[int, ...], out: dict[str, Any]) -> None:
        box = _sl(self.owned(idx))
        for n, v in out.items():
            self.fields[n][box] = v

    def run(self, workers: int) -> np.ndarray | None:
        parts: list[np.ndarray] = []

        def finish(idx, res) -> None:
            out, c = res
            self.put(idx, out)
            if c is not None:
                parts.append(c)

        blocks = list(np.ndindex(self.grid))
        if workers == 1 or len(blocks) == 1:
            for idx in blocks:
                finish(idx, self.advance(idx, self.take(idx)))
        else:
            from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

            with ThreadPoolExecutor(workers) as pool:
                running: dict[Any, tuple[int, ...]] = {}
                for idx in blocks:
                    while len(running) >= workers:
                        ready, _ = wait(running, return_when=FIRST_COMPLETED)
                        for f in ready:
                            finish(running.pop(f), f.result())
                    running[pool.submit(self.advance, idx, self.take(idx))] = idx
                for f in list(running):
                    finish(running.pop(f), f.result())
        assert not self.bands, "every band kept aside was read"
        return np.sum(parts, axis=0) if parts else None


def _check_fields(
    fields: Mapping[str, Any], reach: int, k: int, n_steps: int, device: str
) -> tuple[int, ...]:
    """The common shape of ``fields``; refuse mismatched fields and impossible settings."""
    names = list(fields)
    if not names:
        raise InputError("`fields` is empty")
    shape = tuple(int(n) for n in fields[names[0]].shape)
    for name in names:
        if tuple(fields[name].shape) != shape:
            raise InputError(f"field {name!r} has shape {tuple(fields[name].shape)}, expected {shape}")
    if reach < 0 or k < 1 or n_steps < 0:
        raise InputError(
            f"need reach >= 0, steps_per_exchange >= 1, n_steps >= 0; got {reach}, {k}, {n_steps}"
        )
    if device not in ("numpy", "cupy"):
        raise InputError(f"`device` must be 'numpy' or 'cupy', got {device!r}")
    return shape


def _run_block(idx, *arrays, names, shape, step, t0, per_step, depth, starts, sizes, device):
    """``len(per_step)`` steps of one block with its halo; its interior and counters."""
    origin = tuple(starts[a][i] - (depth if i > 0 else 0) for a, i in enumerate(idx))
    owned = tuple((starts[a][i], starts[a][i] + sizes[a][i]) for a, i in enumerate(idx))
    state = dict(zip(names, arrays, strict=True))
    if device == "cupy":
        import cupy

        state = {n: cupy.asarray(v) for n, v in state.items()}
    counts = []
    for i, kw in enumerate(per_step):
        res = step(state, origin=origin, global_shape=shape, owned=owned, step=t0 + i, **kw)
        if isinstance(res, tuple):
            res, c = res
            counts.append(np.asarray(c.get() if hasattr(c, "get") else c, dtype=np.int64))
        state = dict(res)
    lo = [depth if i > 0 else 0 for i in idx]
    sl = tuple(slice(lo[a], lo[a] + sizes[a][i]) for a, i in enumerate(idx))
    interior = {}
    for n in names:
        v = state[n][sl]
        interior[n] = v.get() if device == "cupy" else np.ascontiguousarray(v)
    return interior, (np.stack(counts) if counts else None)


def _exchange(src, dst, dtypes, shape, step, *, chunks, depth, t0, per_step, device, num_workers):
    """One halo exchange: every block advances ``len(per_step)`` steps; ``dst`` gets the new state."""
    import functools

    import dask
    import dask.array as da

    names = list(dtypes)
    sizes = normalize_chunks(shape, chunks, depth)
    block = functools.partial(
        _run_block,
        names=names,
        shape=shape,
        step=step,
        t0=t0,
        per_step=per_step,
        depth=depth,
        starts=[_starts(s) for s in sizes],
        sizes=sizes,
        device=device,
    )
    # the halo exchange is dask.array's (the machinery of map_overlap); each block task
    # returns its interior and its counters, so the step can report both
    inputs = [
        da.from_array(src[n], chunks=sizes, lock=not isinstance(src[n], np.ndarray), asarray=True, name=False)
        for n in names
    ]
    blocks = [da.overlap.overlap(a, depth=depth, boundary="none").to_delayed() for a in inputs]
    results = {
        idx: dask.delayed(block, pure=False)(idx, *[b[idx] for b in blocks])
        for idx in np.ndindex(blocks[0].shape)
    }
    assembled = {}
    for n in names:
        pieces = np.empty(blocks[0].shape, dtype=object)
        for idx, r in results.items():
            bshape = tuple(sizes[a][i] for a, i in enumerate(idx))
            pieces[idx] = da.from_delayed(r[0][n], shape=bshape, dtype=dtypes[n])
        assembled[n] = da.block(pieces.tolist())
    # h5py is not thread safe: lock the writes when a target is not a NumPy array
    lock = any(not isinstance(dst[n], np.ndarray) for n in names)
    stored = da.store([assembled[n] for n in names], [dst[n] for n in names], lock=lock, compute=False)
    summed = dask.delayed(_sum_counters)([r[1] for r in results.values()])
    _, block_counts = dask.compute(stored, summed, scheduler="threads", num_workers=num_workers)
    return block_counts


def _sum_counters(parts: list[np.ndarray | None]) -> np.ndarray | None:
    parts = [p for p in parts if p is not None]
    return np.sum(parts, axis=0) if parts else None
