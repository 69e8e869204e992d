"""The one owner of the result format: the run folder while a run is written, the result file after.

While a run is written it lives in the folder ``OUT.partial`` beside ``OUT``
(:class:`RunFolder`):

- ``input.h5`` — the input volume, the daily parameter table, the scenario and
  the run's configuration (including its identity, :func:`run_identity`);
- ``frame_NNNNN.h5`` — one per saved frame;
- ``checkpoint.h5`` — the CA state, maps, metrics and the integer schedule state;
- ``lock`` — an exclusive ``fcntl`` lock held by the process writing the run.

Every file is written under a unique temporary name and renamed into place,
with Fletcher-32 checksums on its datasets, so a run killed at any instant
leaves a consistent, verifiable folder. :meth:`RunFolder.assemble` writes the
schema-1 result file ``OUT`` (again atomically); :class:`Result` reads one
(a result or a plain volume file) for every other module of bonesim.

Layout of a result: see ``docs/hdf5.md``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bonesim.errors import BonesimError, SchemaError
from bonesim.io.hdf5 import (
    CHUNK_EDGE,
    _register_filters,
    atomic_output,
    bone_dataset,
    create_array,
    open_bonesim,
    read_json_attr,
    read_table,
    write_compartments,
    write_json_attr,
    write_root_attrs,
    write_table,
)
from bonesim.volume import Volume

#: Phase codes and limits of the packed CA state a checkpoint may hold.
MAX_PHASE = 3
MAX_DIRECTION = 26
#: Configuration keys a resumed run must share with its checkpoint, and what each one is.
IDENTITY_KEYS: dict[str, tuple[str, str]] = {  # key: (API spelling, CLI spelling)
    "input_digest": ("the input volume (its voxels or voxel size)",) * 2,
    "seed": ("the seed (`seed`)", "the seed (--seed)"),
    "table_digest": (
        "the parameters (`params`, `scenario` or the daily table)",
        "the parameters (--params, --scenario or the daily table)",
    ),
    "neighbourhood": ("the neighbourhood",) * 2,
    "footprint_radius_um": ("the footprint radius",) * 2,
    "dt_days": ("the time step dt_days",) * 2,
    "spinup_steps": ("the spin-up (`spinup_years`)", "the spin-up (--spinup-years)"),
    "save_steps": ("the save interval (`save_every`)", "the save interval (--save-every)"),
    "shape": ("the volume shape",) * 2,
    "voxel_size_um": ("the voxel size",) * 2,
    "mechanics": (
        "the mechanoregulation (`mechanics` and its settings)",
        "the mechanoregulation (--mechanics and its settings)",
    ),
}
#: The two spellings of the ways out of a bad checkpoint (see :meth:`BonesimError.fix`).
START_OVER = ("start over with overwrite=True", "start over with --overwrite")
REMOVE_OR_START_OVER = (
    "remove it or start over with overwrite=True",
    "remove it or start over with --overwrite",
)
FREE_AND_RESUME = ("free space and continue with resume=True", "free space and continue with --resume")
STATE_FIELDS = ("bone", "phase", "timer")
MAP_FIELDS = ("resorbed_day", "formed_day")


#: ``/series`` dataset of the bone formed between saved frames (see :func:`formed_day_new`).
FORMED_NEW = "formed_day_new"


def formed_day_new(formed_day: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """The ``formed_day`` entries new since the previous frame, as ``1 + day`` (0: none new).

    ``/series/formed_day_new`` stores this per frame instead of the whole map: the
    map changes only where bone formed between two saved frames, so the series
    compresses to a small fraction of the frames (0, not −1, for "nothing new": the
    high bytes stay 0). :func:`formed_day_apply` inverts it.

    >>> a = np.array([-1, -1, 3], np.int32); b = np.array([5, -1, 3], np.int32)
    >>> formed_day_new(a, None).tolist(), formed_day_new(b, a).tolist()
    ([0, 0, 4], [6, 0, 0])
    """
    fd = np.asarray(formed_day, np.int32)
    out = fd + np.int32(1)
    out[fd < 0 if previous is None else fd == previous] = 0  # nothing new there
    return out


def formed_day_apply(previous: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """The ``formed_day`` map of a frame from the map of the frame before and its ``formed_day_new``.

    >>> fd = formed_day_apply(None, np.array([0, 0, 4], np.int32))
    >>> fd.tolist(), formed_day_apply(fd, np.array([6, 0, 0], np.int32)).tolist()
    ([-1, -1, 3], [5, -1, 3])
    """
    nw = np.asarray(new, np.int32)
    base = np.full(nw.shape, -1, np.int32) if previous is None else previous
    return np.where(nw > 0, nw - 1, base).astype(np.int32)


def partial_path(out: str | os.PathLike) -> Path:
    """The folder of an in-progress run writing ``out``: ``OUT.partial`` beside it."""
    p = Path(out)
    return p.with_name(p.name + ".partial")


def digest_arrays(arrays: Mapping[str, Any]) -> str:
    """A short SHA-256 of named arrays (name, dtype, shape and bytes), order-independent."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(memoryview(a.reshape(-1)).cast("B") if a.size else b"")  # the bytes, not a copy
    return h.hexdigest()[:16]


#: Planes per block when the state is written block-wise: one HDF5 chunk deep (chunks are 64³).
SLAB_PLANES = CHUNK_EDGE
#: The fields of a state in the order of :func:`digest_arrays` (sorted names), each with its dtype.
STATE_DTYPES: dict[str, Any] = {
    "bone": np.uint8,
    "formed_day": np.int32,
    "phase": np.uint8,
    "resorbed_day": np.int32,
    "timer": np.uint16,
}


def slabs(nz: int, planes: int = SLAB_PLANES) -> list[tuple[int, int]]:
    """The z-ranges of the blocks a volume of ``nz`` planes is written in (HDF5-chunk aligned).

    >>> slabs(130)
    [(0, 64), (64, 128), (128, 130)]
    """
    return [(z, min(z + planes, nz)) for z in range(0, nz, planes)]


@dataclass
class Streamed:
    """A volume (``what='bone'``) or a whole state (``what='state'``) arriving as a block stream.

    ``blocks`` yields owned arrays: for a state every field of :data:`STATE_DTYPES` in
    that order, each as the z-slabs of :func:`slabs` in order; for a bone volume its z-slabs.
    The engine fills it while the writer thread writes it (:class:`bonesim.io.writer.BlockStream`).
    """

    blocks: Any
    shape: tuple[int, int, int]
    what: str = "state"


def volume_digest(volume: Volume) -> str:
    """Identity of an input volume: its voxels and voxel size."""
    return digest_arrays({"bone": volume.data, "voxel_size_um": np.float64(volume.voxel_size_um)})


# ----------------------------------------------------------------- files ----
@contextlib.contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file written under a unique temporary name and renamed onto ``path`` when closed."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            raise BonesimError.fix(f"disk full while writing {path}", *FREE_AND_RESUME) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _checked(group: h5py.Group, name: str, data: np.ndarray, compression: str) -> h5py.Dataset:
    return create_array(group, name, data, compression=compression, checksum=True)


#: Names of the hdf5plugin filters bonesim writes, by HDF5 filter id.
PLUGIN_FILTERS = {32004: "lz4", 32015: "zstd"}


def _missing_filter(ds: h5py.Dataset) -> str | None:
    """The name of a compression filter of ``ds`` this process cannot decode (None when all are there)."""
    try:
        plist = ds.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            fid = plist.get_filter(i)[0]
            if not h5py.h5z.filter_avail(fid):
                return PLUGIN_FILTERS.get(fid, f"HDF5 filter {fid}")
    except (OSError, ValueError):
        return None
    return None


def _read_checked(ds: h5py.Dataset, where: str, sel: Any = Ellipsis) -> np.ndarray:
    try:
        return ds[sel]
    except OSError as exc:
        missing = _missing_filter(ds)
        if missing is not None:
            raise BonesimError(
                f"{where}: {ds.name} is {missing}-compressed, which needs the hdf5plugin package to read: "
                "pip install 'bonesim[io]'"
            ) from None
        raise BonesimError(f"{where}: {ds.name} fails its checksum or is corrupt ({exc})") from None


def _field_blocks(st: Mapping[str, np.ndarray] | Streamed) -> Iterator[tuple[str, Iterator[np.ndarray]]]:
    """(name, z-slabs) of every state field in digest order, from arrays or from a stream."""
    if isinstance(st, Streamed):
        it = iter(st.blocks)
        for nm in STATE_DTYPES:
            yield nm, (next(it) for _ in slabs(st.shape[0]))
        for _rest in it:  # the end of the stream (releases the last block's bytes)
            raise BonesimError("internal error: the state stream holds more blocks than its fields")
    else:
        for nm in STATE_DTYPES:
            a = st[nm]
            yield nm, (np.ascontiguousarray(a[z0:z1]) for z0, z1 in slabs(a.shape[0]))


def _write_blocks(group: h5py.Group, name: str, shape, dtype, blocks, compression: str, h=None) -> None:
    """A checksummed dataset written z-slab by z-slab (the chunks of :func:`create_array`); ``h``: a hash fed
    the bytes in C order."""
    ds = create_array(group, name, shape=tuple(shape), dtype=dtype, compression=compression, checksum=True)
    z = 0
    for b in blocks:
        if b.dtype != np.dtype(dtype) or b.shape[1:] != tuple(shape[1:]) or z + b.shape[0] > shape[0]:
            raise BonesimError(f"internal error: block {b.dtype} {b.shape} does not fit {name} at plane {z}")
        ds[z : z + b.shape[0]] = b
        if h is not None:
            h.update(memoryview(np.ascontiguousarray(b).reshape(-1)).cast("B") if b.size else b"")
        z += b.shape[0]
        del b  # written: not held while the next block is made
    if z != shape[0]:
        raise BonesimError(f"internal error: {name} got {z} of {shape[0]} planes")


def _write_state(
    f: h5py.File, st: Mapping[str, np.ndarray] | Streamed, compression: str
) -> tuple[h5py.Group, str]:
    """``/state`` and ``/maps`` written block by block; returns the state group and :func:`digest_arrays` of
    the five fields (computed on the way, in the same byte order)."""
    s = f.create_group("state")
    m = f.create_group("maps")
    shape = st.shape if isinstance(st, Streamed) else st["bone"].shape
    h = hashlib.sha256()
    for nm, blocks in _field_blocks(st):
        dt = np.dtype(STATE_DTYPES[nm])
        h.update(nm.encode())
        h.update(str(dt).encode() + str(tuple(shape)).encode())
        _write_blocks(s if nm in STATE_FIELDS else m, nm, shape, dt, blocks, compression, h)
    return s, h.hexdigest()[:16]


def _read_mechanics(f: h5py.File, where: str) -> dict[str, Any]:
    """The mechanoregulation state of a checkpoint (``{}`` when the run has none), digest-checked."""
    if "mechanics" not in f:
        return {}
    g = f["mechanics"]
    arrays = {nm: _read_checked(g[nm], where) for nm in g}
    digest = g.attrs.get("digest")
    digest = digest.decode() if isinstance(digest, bytes) else str(digest)
    if digest != digest_arrays(arrays):
        raise BonesimError.fix(f"{where}: the mechanics state does not match its digest", *START_OVER)
    attrs = read_json_attr(g, "attrs")
    if not isinstance(attrs, dict):
        raise BonesimError.fix(f"{where}: the mechanics attributes are not a mapping", *START_OVER)
    return {"attrs": attrs, "arrays": arrays}


@dataclass
class Checkpoint:
    """What a checkpoint holds: the state, the step and everything the loop carries."""

    state: dict[str, np.ndarray]
    step: int
    schedule: dict[str, Any]
    metrics_acc: dict[str, Any]
    rows: list[dict[str, float]]
    n_frames: int
    prev_bone: np.ndarray | None = None
    mechanics: dict[str, Any] = field(default_factory=dict)


def validate_state(state: Mapping[str, np.ndarray], shape: tuple[int, ...], where: str) -> None:
    """Refuse a CA state of the wrong shape or dtype, or with impossible phase/direction codes."""
    want = {
        "bone": np.uint8,
        "phase": np.uint8,
        "timer": np.uint16,
        "resorbed_day": np.int32,
        "formed_day": np.int32,
    }
    for nm, dt in want.items():
        a = state[nm]
        if a.shape != tuple(shape) or a.dtype != dt:
            raise BonesimError(
                f"{where}: {nm} is {a.dtype} {a.shape}, expected {np.dtype(dt)} {tuple(shape)}; the checkpoint is corrupt"
            )
    phase = state["phase"]
    resorbing = (phase & 3) == 1  # bits 3-7 are a direction code only there (a step counter in reversal)
    direction = phase[resorbing] >> 3
    if int(direction.max(initial=0)) > MAX_DIRECTION:
        raise BonesimError(
            f"{where}: direction codes above {MAX_DIRECTION} in the state; the checkpoint is corrupt"
        )


class RunFolder:
    """The folder ``OUT.partial`` of a run in progress (see the module docstring)."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.path = partial_path(self.out)
        self._lock_fd: int | None = None

    # -- life cycle --------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def has_checkpoint(self) -> bool:
        return (self.path / "checkpoint.h5").is_file() and (self.path / "input.h5").is_file()

    def create(self) -> None:
        """Start a fresh folder (a stale one, and its files, are removed first)."""
        import shutil

        if self.path.is_symlink() or self.path.is_file():
            self.path.unlink()
        elif self.path.exists():
            self.lock()
            shutil.rmtree(self.path)
            self.unlock()
        self.path.mkdir()
        self.lock()

    def lock(self) -> None:
        """Take the exclusive lock of the folder, or say which run holds it."""
        import fcntl

        if self._lock_fd is not None:
            return
        if self.path.exists() and not self.path.is_dir():
            raise BonesimError.fix(f"{self.path} exists but is not a run folder", *REMOVE_OR_START_OVER)
        self.path.mkdir(exist_ok=True)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError):
                holder = (self.path / "lock").read_text().strip()
            raise BonesimError(
                f"another bonesim process{f' ({holder})' if holder else ''} is writing {self.out} right now; "
                "wait for it to finish (or stop it) before starting or resuming this run"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        import shutil

        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)

    # -- writing -----------------------------------------------------------
    def write_input(
        self, volume: Volume, config: Mapping, table: Mapping, name: str, toml: str, compression: str
    ) -> None:
        with atomic_h5(self.path / "input.h5") as f:
            write_root_attrs(f, volume.voxel_size_um)
            g = f.create_group("volume")
            ds = _checked(g, "bone", volume.data, compression)
            write_json_attr(ds, "metadata", volume.metadata)
            write_compartments(g, volume, compression)
            write_json_attr(f, "config", dict(config))
            write_table(f.create_group("tables"), "physiology", table)
            sc = f.create_group("scenario")
            sc.attrs["name"] = name
            sc.attrs["toml"] = toml

    def write_frame(
        self,
        index: int,
        bone: np.ndarray | Streamed,
        day: float,
        compression: str,
        formed_day: np.ndarray | None = None,
    ) -> None:
        """Frame ``index``: its bone and, when given, the ``formed_day`` map at that step.

        ``bone`` is an array, or a stream of z-slabs: ``Streamed(..., what='bone')`` (the bone
        only) or ``what='frame'`` (the bone's slabs, then the ``formed_day`` map's).
        """
        with atomic_h5(self.path / f"frame_{index:05d}.h5") as f:
            if isinstance(bone, Streamed):
                it = iter(bone.blocks)
                n = len(slabs(bone.shape[0]))
                _write_blocks(f, "bone", bone.shape, np.uint8, (next(it) for _ in range(n)), compression)
                if bone.what == "frame":
                    _write_blocks(
                        f, "formed_day", bone.shape, np.int32, (next(it) for _ in range(n)), compression
                    )
                for _rest in it:  # the end of the stream (releases the last block's bytes)
                    raise BonesimError("internal error: the frame stream holds more blocks than its fields")
            else:
                _checked(f, "bone", bone, compression)
            if formed_day is not None:
                _checked(f, "formed_day", formed_day, compression)
            f.attrs["day"] = float(day)
            f.attrs["index"] = int(index)

    def write_checkpoint(
        self,
        st: Mapping[str, np.ndarray] | Streamed,
        *,
        step: int,
        day: float,
        schedule: Mapping[str, Any],
        metrics_acc: Mapping[str, Any],
        metrics: Mapping[str, np.ndarray],
        n_frames: int,
        backend: str,
        device: str,
        seed: int,
        compression: str,
        mechanics: Mapping[str, Any] | None = None,
    ) -> None:
        """``st``: the five state arrays, or a :class:`Streamed` state (written block by block, never
        gathered); ``mechanics``: the mechanoregulation state (``{"attrs": {...}, "arrays": {...}}``), if any."""
        with atomic_h5(self.path / "checkpoint.h5") as f:
            s, digest = _write_state(f, st, compression)
            if mechanics:
                g = f.create_group("mechanics")
                for nm, a in mechanics["arrays"].items():
                    _checked(g, nm, a, compression)
                write_json_attr(g, "attrs", dict(mechanics["attrs"]))
                g.attrs["digest"] = digest_arrays(dict(mechanics["arrays"]))
            write_table(f.create_group("tables"), "metrics", metrics)
            s.attrs.update(step=int(step), day=float(day), seed=int(seed), backend=backend, device=device)
            write_json_attr(s, "schedule", dict(schedule))
            write_json_attr(s, "metrics_acc", dict(metrics_acc))
            s.attrs["n_frames"] = int(n_frames)
            s.attrs["state_digest"] = digest

    def drop_frames_from(self, n_frames: int) -> None:
        """Remove frames written after the checkpoint (index >= ``n_frames``) and stray temp files."""
        for extra in self.path.glob("frame_*.h5"):
            with contextlib.suppress(ValueError):
                if int(extra.stem.split("_")[1]) >= n_frames:
                    extra.unlink()
        for tmp in self.path.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    # -- reading -----------------------------------------------------------
    def stored_config(self) -> dict[str, Any]:
        try:
            with h5py.File(self.path / "input.h5", "r") as f:
                cfg = read_json_attr(f, "config", {})
        except (OSError, ValueError) as exc:
            raise BonesimError.fix(
                f"the run folder {self.path} has no readable input.h5 ({exc})", *START_OVER
            ) from None
        if not isinstance(cfg, dict):
            raise BonesimError.fix(f"{self.path}/input.h5: its configuration is not a mapping", *START_OVER)
        return cfg

    def check_identity(self, config: Mapping[str, Any]) -> None:
        """Refuse to resume when any setting that changes bits differs, naming it."""
        stored = self.stored_config()
        for key, what in IDENTITY_KEYS.items():
            if stored.get(key) != config.get(key):
                api, cli = what
                tail = (
                    f" differs from the interrupted run (was {stored.get(key)!r}, now {config.get(key)!r}); "
                    "resume with the same input and "
                )
                raise BonesimError(
                    f"cannot resume {self.out}: {api}{tail}arguments, or start over with overwrite=True",
                    cli=f"cannot resume {self.out}: {cli}{tail}options, or start over with --overwrite",
                )

    def frame_ok(self, index: int, shape: tuple[int, ...]) -> bool:
        """True when frame ``index`` reads back whole (checksums verified) with the right shape."""
        _register_filters()
        try:
            with h5py.File(self.path / f"frame_{index:05d}.h5", "r") as fr:
                a = fr["bone"][...]
                float(fr.attrs["day"])
            return a.shape == tuple(shape) and a.dtype == np.uint8
        except (OSError, KeyError, ValueError, TypeError):
            return False

    def read_checkpoint(self, shape: tuple[int, ...]) -> Checkpoint:
        """Read and verify the checkpoint (checksums, fields, codes) and the frames it counts."""
        where = f"{self.path}/checkpoint.h5"
        _register_filters()  # an lz4 or zstd checkpoint reads back in a fresh process
        try:
            f = h5py.File(self.path / "checkpoint.h5", "r")
        except OSError as exc:
            raise BonesimError.fix(
                f"checkpoint {where} is missing or unreadable ({exc})", *START_OVER
            ) from None
        try:
            with f:
                if "state" not in f or "maps" not in f or "tables/metrics" not in f:
                    raise BonesimError.fix(f"{where} lacks /state, /maps or /tables/metrics", *START_OVER)
                s = f["state"]
                state = {nm: _read_checked(s[nm], where) for nm in STATE_FIELDS}
                state.update({nm: _read_checked(f["maps"][nm], where) for nm in MAP_FIELDS})
                step = int(s.attrs["step"])
                n_frames = int(s.attrs["n_frames"])
                digest = s.attrs.get("state_digest")
                t = read_table(f["tables/metrics"])
                schedule = read_json_attr(s, "schedule")
                metrics_acc = read_json_attr(s, "metrics_acc")
                mechanics = _read_mechanics(f, where)
        except KeyError as exc:
            raise BonesimError.fix(f"{where} lacks {exc}", *START_OVER) from None
        except (ValueError, TypeError) as exc:
            raise BonesimError.fix(f"{where} is corrupt ({exc})", *START_OVER) from None
        if step < 0 or n_frames < 0:
            raise BonesimError.fix(f"{where}: step {step} / {n_frames} frames is impossible", *START_OVER)
        if digest is not None:
            digest = digest.decode() if isinstance(digest, bytes) else str(digest)
            if digest != digest_arrays(state):
                raise BonesimError.fix(f"{where}: the state does not match its stored digest", *START_OVER)
        if not isinstance(schedule, dict) or not isinstance(metrics_acc, dict):
            raise BonesimError.fix(f"{where}: schedule or metrics state is not a mapping", *START_OVER)
        validate_state(state, shape, where)
        rows = [{k: float(t[k][i]) for k in t} for i in range(len(t["day"]))] if t else []
        ck = Checkpoint(state, step, schedule, metrics_acc, rows[:n_frames], n_frames, mechanics=mechanics)
        if n_frames > 0:
            with h5py.File(self.path / f"frame_{n_frames - 1:05d}.h5", "r") as fr:
                ck.prev_bone = fr["bone"][...]
        return ck

    def missing_frames(self, n_frames: int, shape: tuple[int, ...]) -> list[int]:
        """Indices ``< n_frames`` whose frame file is missing, truncated or fails its checksum."""
        return [i for i in range(n_frames) if not self.frame_ok(i, shape)]

    # -- the result --------------------------------------------------------
    def assemble(
        self,
        st: Mapping[str, np.ndarray],
        *,
        step: int,
        seed: int,
        backend: str,
        device: str,
        metrics: Mapping[str, np.ndarray],
        n_frames: int,
        provenance: Mapping[str, Any],
        timings: Mapping[str, Any],
        overwrite: bool,
        compression: str,
        state_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the schema-1 result file from the run folder (atomically).

        ``state_attrs``: more attributes of ``/state`` (scalars), e.g. ``spinup_removed_per_day``.
        """
        try:
            self._assemble(
                st,
                step,
                seed,
                backend,
                device,
                metrics,
                n_frames,
                provenance,
                timings,
                overwrite,
                compression,
                state_attrs or {},
            )
        except OSError as exc:
            if exc.errno == errno.ENOSPC or "No space left" in str(exc):
                raise BonesimError.fix(
                    f"disk full while writing {self.out}; the run is kept in {self.path}", *FREE_AND_RESUME
                ) from None
            raise

    def _frame_has(self, index: int, name: str) -> bool:
        with h5py.File(self.path / f"frame_{index:05d}.h5", "r") as fr:
            return name in fr

    def _assemble(
        self,
        st,
        step,
        seed,
        backend,
        device,
        metrics,
        n_frames,
        provenance,
        timings,
        overwrite,
        compression,
        state_attrs,
    ):
        with (
            atomic_output(self.out, overwrite=overwrite) as tmp,
            h5py.File(tmp, "w") as f,
            h5py.File(self.path / "input.h5", "r") as inp,
        ):
            for k, v in inp.attrs.items():
                if k != "config":
                    f.attrs[k] = v
            inp.copy(inp["volume"], f, "volume")
            inp.copy(inp["scenario"], f, "scenario")
            s, _ = _write_state(f, st, compression)
            s.attrs.update(step=int(step), seed=int(seed), backend=backend, device=device)
            s.attrs["day"] = float(metrics["day"][-1]) if len(metrics["day"]) else 0.0
            s.attrs["config"] = inp.attrs["config"]
            s.attrs["n_frames"] = int(n_frames)
            s.attrs["complete"] = True
            for k, v in state_attrs.items():
                s.attrs[k] = v
            shape = st["bone"].shape
            se = f.create_group("series")
            sb = create_array(
                se,
                "bone",
                shape=(n_frames, *shape),
                dtype=np.uint8,
                maxshape=(None, *shape),
                compression=compression,
            )
            days = np.empty(n_frames, np.float64)
            with_maps = n_frames > 0 and all(self._frame_has(i, "formed_day") for i in range(n_frames))
            sf = (
                create_array(
                    se,
                    FORMED_NEW,
                    shape=(n_frames, *shape),
                    dtype=np.int32,
                    maxshape=(None, *shape),
                    compression=compression,
                )
                if with_maps
                else None
            )
            for i in range(n_frames):
                where = f"{self.path}/frame_{i:05d}.h5"
                before = f"{self.path}/frame_{i - 1:05d}.h5"
                with (
                    h5py.File(where, "r") as fr,
                    h5py.File(before, "r") if i and sf is not None else contextlib.nullcontext() as pr,
                ):
                    for z0, z1 in slabs(shape[0]):  # chunk-aligned slabs: no whole-volume arrays
                        sb[i, z0:z1] = _read_checked(fr["bone"], where, np.s_[z0:z1])
                        if sf is not None:  # formed_day_new, computed in the slab read
                            fd = _read_checked(fr["formed_day"], where, np.s_[z0:z1])
                            if pr is None:
                                keep = fd < 0
                            else:
                                keep = fd == _read_checked(pr["formed_day"], before, np.s_[z0:z1])
                            fd += np.int32(1)
                            fd[keep] = 0
                            sf[i, z0:z1] = fd
                    days[i] = float(fr.attrs["day"])
            create_array(se, "day", days, maxshape=(None,), compression=compression)
            t = f.create_group("tables")
            write_table(t, "metrics", metrics)
            inp.copy(inp["tables/physiology"], t, "physiology")
            g = f.create_group("provenance")
            for k, v in provenance.items():
                g.attrs[k] = v
            write_json_attr(g, "timings", dict(timings))


# ---------------------------------------------------------------- reading ----
@dataclass
class Result:
    """What every module reads from a bonesim file: a simulation result or a plain volume.

    A plain volume file reads as a one-frame series at day 0, so consumers
    need no "series or plain volume" fallback of their own.

    >>> import tempfile, pathlib
    >>> from bonesim import Volume, phantom, write_volume
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.h5"
    >>> _ = write_volume(p, Volume(phantom.plate((8, 8, 8), 4), 20.0), xdmf=False)
    >>> r = Result.open(p)
    >>> r.has_series, r.n_frames, r.shape, r.days.tolist()
    (False, 1, (8, 8, 8), [0.0])
    """

    path: Path
    voxel_size_um: float
    shape: tuple[int, int, int]
    days: np.ndarray
    scenario: str
    has_series: bool
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    state_attrs: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Result:
        """Read the metadata, days and tables of ``path`` (no volumes), checking every object's kind."""
        with open_bonesim(path) as f:
            vs = float(f.attrs["voxel_size_um"])
            if not (np.isfinite(vs) and 0 < vs < 1e6):
                raise SchemaError(f"{path}: voxel size {vs!r} µm is not a positive size")
            if "series" in f and "bone" in f["series"]:
                s = bone_dataset(f, "series/bone", ndim=4)
                if s.shape[0] == 0:
                    raise BonesimError(f"{path}: /series/bone holds no frames")
                shape = tuple(int(n) for n in s.shape[1:])
                days = _day_column(f, path) if "day" in f["series"] else np.arange(s.shape[0], dtype=float)
                if len(days) != s.shape[0]:
                    raise SchemaError(f"{path}: /series/day has {len(days)} entries for {s.shape[0]} frames")
                has_series = True
            elif "volume" in f and "bone" in f["volume"]:
                shape = tuple(int(n) for n in bone_dataset(f, "volume/bone", ndim=3).shape)
                days = np.zeros(1)
                has_series = False
            else:
                raise BonesimError(f"{path} holds neither /series/bone nor /volume/bone")
            if 0 in shape:
                raise BonesimError(f"{path}: the volume is empty {shape}")
            name = Path(path).stem
            if "scenario" in f:
                raw = f["scenario"].attrs.get("name", name)
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
            tables: dict[str, dict[str, np.ndarray]] = {}
            if "tables" in f and isinstance(f["tables"], h5py.Group):
                tables = {
                    k: read_table(f["tables"][k])
                    for k in f["tables"]
                    if isinstance(f["tables"][k], h5py.Group)
                }
            state_attrs = _attrs(f, "state")
            provenance = _attrs(f, "provenance")
            if isinstance(provenance.get("timings"), str):
                with contextlib.suppress(ValueError):
                    provenance["timings"] = json.loads(provenance["timings"])
        return cls(Path(path), vs, shape, days, name, has_series, tables, state_attrs, provenance)  # type: ignore[arg-type]

    @property
    def n_frames(self) -> int:
        return len(self.days)

    @property
    def complete(self) -> bool:
        """True for a result the engine finished (``/state`` attribute ``complete``)."""
        return bool(self.state_attrs.get("complete", False))

    @property
    def reference_index(self) -> int:
        """The frame that changes are measured from: the first at day >= 0 (after spin-up)."""
        after = np.flatnonzero(self.days >= 0)
        return int(after[0]) if after.size else 0

    def frame_index(self, frame: int) -> int:
        """Normalise ``frame`` (negative counts from the end); raise if out of range."""
        n = self.n_frames
        if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or not -n <= frame < n:
            raise BonesimError(f"frame {frame!r} out of range: {self.path} holds {n} frame(s)")
        return int(frame) % n

    def frames(self, indices: list[int]) -> list[np.ndarray]:
        """Bone fraction of frames ``indices`` (normalised); a plain volume is its own frame 0."""
        with open_bonesim(self.path) as f:
            ds = f["series/bone"] if self.has_series else f["volume/bone"]
            try:
                if self.has_series:
                    return [np.asarray(ds[self.frame_index(i)]) for i in indices]
                vol = np.asarray(ds[...])
            except OSError as exc:
                raise BonesimError(f"{self.path}: {ds.name} is corrupt ({exc})") from None
            return [vol for _ in indices]

    def frame(self, index: int) -> np.ndarray:
        return self.frames([index])[0]

    def formed_day(self, index: int, previous: tuple[int, np.ndarray] | None = None) -> np.ndarray | None:
        """The ``formed_day`` map at saved frame ``index`` (None where the file cannot tell).

        From ``/series/formed_day_new`` (results since per-frame maps were stored;
        :func:`formed_day_new`), which is read from frame 0 on, or from ``previous``
        = (j, map of frame j) with j <= index; else all −1 for a frame at day <= 0
        (the maps start on day 0), and ``/maps/formed_day`` for the last frame of a
        complete run; else None.
        """
        i = self.frame_index(index)
        with open_bonesim(self.path) as f:
            ds = f.get(f"series/{FORMED_NEW}")
            if self.has_series and isinstance(ds, h5py.Dataset) and ds.shape == (self.n_frames, *self.shape):
                j, fd = (-1, None) if previous is None or previous[0] > i else previous
                try:
                    for k in range(j + 1, i + 1):
                        fd = formed_day_apply(fd, ds[k])
                except OSError as exc:
                    raise BonesimError(f"{self.path}: {ds.name} is corrupt ({exc})") from None
                return fd
        if not self.has_series:
            return None
        if self.days[i] <= 0:
            return np.full(self.shape, -1, np.int32)
        day = self.state_attrs.get("day")
        if i == self.n_frames - 1 and day is not None and abs(float(day) - float(self.days[i])) < 1e-9:
            return self.maps().get("formed_day")
        return None

    def maps(self) -> dict[str, np.ndarray]:
        """The ``/maps`` datasets of the file (``resorbed_day``, ``formed_day``, ...), those present."""
        out: dict[str, np.ndarray] = {}
        with open_bonesim(self.path) as f:
            if "maps" in f and isinstance(f["maps"], h5py.Group):
                for k, ds in f["maps"].items():
                    if isinstance(ds, h5py.Dataset) and ds.shape == self.shape:
                        out[k] = np.asarray(ds[...])
        return out

    def state(self) -> dict[str, np.ndarray]:
        """The CA state ``/state/bone, phase, timer`` of the file's last step ({} when absent).

        It is the state of the last saved frame when ``state_attrs["day"]``
        equals ``days[-1]`` (a complete run); ``bonesim.morphometry.histomorphometry``
        reads ES/BS and OS/BS from it.
        """
        want = {"bone": np.uint8, "phase": np.uint8, "timer": np.uint16}
        out: dict[str, np.ndarray] = {}
        with open_bonesim(self.path) as f:
            g = f.get("state")
            if not isinstance(g, h5py.Group):
                return {}
            for k, dt in want.items():
                ds = g.get(k)
                if not isinstance(ds, h5py.Dataset) or ds.shape != self.shape or ds.dtype != dt:
                    return {}
                try:
                    out[k] = np.asarray(ds[...])
                except OSError as exc:
                    raise BonesimError(f"{self.path}: {ds.name} is corrupt ({exc})") from None
        return out

    def initial(self) -> np.ndarray:
        """The input volume ``/volume/bone`` (frame 0 when a result lacks it)."""
        with open_bonesim(self.path) as f:
            if "volume" in f and "bone" in f["volume"]:
                return np.asarray(bone_dataset(f, "volume/bone", ndim=3)[...])
        return self.frame(0)


def _attrs(f: h5py.File, group: str) -> dict[str, Any]:
    """Attributes of ``group`` as plain Python values (strings decoded), {} when absent."""
    if group not in f or not isinstance(f[group], h5py.Group):
        return {}
    out: dict[str, Any] = {}
    for k, v in f[group].attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _day_column(f: h5py.File, path: Any) -> np.ndarray:
    obj = f.get("series/day")
    if not isinstance(obj, h5py.Dataset) or obj.ndim != 1 or obj.dtype.kind not in "fiu":
        raise SchemaError(f"{path}: /series/day is not a 1-D numeric dataset")
    return obj[...].astype(float)


def write_frame_metrics(info: Result, table: Mapping[str, np.ndarray], columns: tuple[str, ...]) -> str:
    """Store per-frame metrics (``table`` has a ``frame`` column) in a result or volume file, in place.

    Where the file's ``/tables/metrics`` has one row per saved frame, ``columns``
    are added to it (rows not in ``table`` keep their value, or NaN);
    otherwise the whole table becomes ``/tables/morphometry``. Returns the
    table written.
    """
    n_series = info.n_frames if info.has_series else 0
    metrics = info.tables.get("metrics")
    rows = len(next(iter(metrics.values()))) if metrics else None
    with h5py.File(info.path, "r+") as f:
        tables = f.require_group("tables")
        if n_series and rows == n_series:
            g = tables["metrics"]
            order = read_json_attr(g, "columns", None) or list(g)
            for col in columns:
                full = g[col][...].astype(np.float64) if col in g else np.full(n_series, np.nan)
                full[np.asarray(table["frame"], np.int64)] = table[col]
                if col in g:
                    del g[col]
                g.create_dataset(col, data=full)
                if col not in order:
                    order.append(col)
            g.attrs["columns"] = json.dumps(order)
            return "metrics"
        write_table(tables, "morphometry", table, overwrite=True)
        return "morphometry"
