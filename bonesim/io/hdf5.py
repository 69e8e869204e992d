"""HDF5 files of schema 1: volumes and simulation results.

Layout (see ``docs/hdf5.md``)::

    /                  attrs: bonesim_schema=1, bonesim_version, voxel_size_um, axis_order="zyx"
    /volume/bone       uint8 [Z,Y,X] initial bone fraction; attrs: metadata (JSON)
    /volume/grey       optional original grey values
    /volume/compartments  optional uint8 labels 0 outside, 1 cortical, 2 trabecular; attrs: method (JSON)
    /state/...         latest CA state (checkpoint)
    /series/bone       uint8 [T,Z,Y,X] saved frames; /series/day float64 [T]
    /maps/...          int32 [Z,Y,X] day maps; /maps/sed/<axis> float32 [Z,Y,X] SED (MPa), see bonesim.io.sed
    /tables/NAME/COL   one 1-D dataset per column
    /scenario          attrs: name, toml
    /provenance        attrs: command, created, host, device, timings (JSON)

Every write goes to a temporary file beside the target and is renamed into
place when complete, so a crash never leaves a half-written output; an
existing output is only replaced with ``overwrite=True``; inputs are opened
read-only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bonesim._validation import check_choice
from bonesim._version import __version__
from bonesim.errors import BonesimError, InputError, SchemaError
from bonesim.io.outputs import atomic_write, check_output
from bonesim.volume import Volume

SCHEMA_VERSION = 1
#: Largest voxel size a bonesim file may declare (1 cm): anything above is a corrupt attribute.
MAX_VOXEL_UM = 1e4
COMPRESSIONS = ("gzip", "zstd", "none")
#: Compressions of run-folder checkpoints (``--checkpoint-compression``); lz4 and zstd need hdf5plugin.
CHECKPOINT_COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
CHUNK_EDGE = 64


# ---------------------------------------------------------------- paths ----
def check_input_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is an existing regular file, else raise."""
    p = Path(path)
    if not p.exists():
        raise BonesimError(f"input file not found: {p}")
    if p.is_dir():
        raise BonesimError(f"expected a file but {p} is a directory")
    return p


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False, inputs: tuple = ()) -> Path:
    """Check that ``path`` may be written (the policy of :func:`bonesim.io.outputs.check_output`)."""
    return check_output(path, overwrite=overwrite, inputs=inputs)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False, inputs: tuple = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    with atomic_write(path, overwrite=overwrite, inputs=inputs) as tmp:
        yield tmp


# --------------------------------------------------------------- format ----
def compression_kwargs(compression: str = "gzip") -> dict[str, Any]:
    """h5py dataset keywords for ``compression`` ('gzip', 'zstd', 'lz4' or 'none')."""
    check_choice(compression, (*COMPRESSIONS, "lz4"), name="compression")
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression in ("zstd", "lz4"):
        hdf5plugin = require_hdf5plugin(compression)
        if compression == "lz4":
            return dict(hdf5plugin.LZ4())
        return dict(hdf5plugin.Zstd(clevel=3))
    return {}


def require_hdf5plugin(compression: str) -> Any:
    """The hdf5plugin module (its import registers the filters), or a one-sentence error naming the extra."""
    try:
        import hdf5plugin
    except ImportError:
        raise BonesimError(
            f"{compression} compression needs the hdf5plugin package: pip install 'bonesim[io]'"
        ) from None
    return hdf5plugin


def chunk_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Chunks of at most 64 voxels a side (frames chunk one time step at a time)."""
    if len(shape) == 0 or 0 in shape:
        return None
    if len(shape) == 4:
        return (1, *(min(CHUNK_EDGE, n) for n in shape[1:]))
    return tuple(min(CHUNK_EDGE, n) for n in shape)


def create_array(
    group: h5py.Group,
    name: str,
    data: np.ndarray | None = None,
    *,
    shape: tuple[int, ...] | None = None,
    dtype: Any = None,
    maxshape: tuple[int | None, ...] | None = None,
    compression: str = "gzip",
    fillvalue: Any = None,
    checksum: bool = False,
) -> h5py.Dataset:
    """Create a chunked, compressed dataset (arrays of >= 2-D; 1-D stays plain).

    ``checksum=True`` adds HDF5's Fletcher-32 filter: a corrupted chunk then
    fails to read instead of returning wrong values.
    """
    if data is not None:
        shape = np.shape(data)
        dtype = np.asarray(data).dtype if dtype is None else dtype
    assert shape is not None
    kwargs: dict[str, Any] = {}
    if len(shape) >= 2 or maxshape is not None:
        chunks = chunk_shape(
            tuple(1 if m is None else s for s, m in zip(shape, maxshape or shape, strict=True))
        )
        if maxshape is not None and len(shape) == 1:
            chunks = (1024,)
        kwargs.update(chunks=chunks, **compression_kwargs(compression))
    if checksum and 0 not in shape and len(shape) > 0:
        kwargs.setdefault("chunks", chunk_shape(tuple(shape)))
        kwargs["fletcher32"] = True
    if maxshape is not None:
        kwargs["maxshape"] = maxshape
    if fillvalue is not None:
        kwargs["fillvalue"] = fillvalue
    return group.create_dataset(name, shape=shape, dtype=dtype, data=data, **kwargs)


def write_root_attrs(f: h5py.File, voxel_size_um: float) -> None:
    """Stamp the schema attributes on the root group."""
    f.attrs["bonesim_schema"] = SCHEMA_VERSION
    f.attrs["bonesim_version"] = __version__
    f.attrs["voxel_size_um"] = float(voxel_size_um)
    f.attrs["axis_order"] = "zyx"


def write_json_attr(obj: h5py.HLObject, name: str, value: Any) -> None:
    obj.attrs[name] = json.dumps(value, default=str)


def read_json_attr(obj: h5py.HLObject, name: str, default: Any = None) -> Any:
    if name not in obj.attrs:
        return default
    raw = obj.attrs[name]
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError, AttributeError):
        raise SchemaError(f"{obj.file.filename}:{obj.name} attribute {name!r} is not valid JSON") from None


# ----------------------------------------------------------------- open ----
def _register_filters() -> None:
    """Register the hdf5plugin filters (zstd, blosc) if installed, so such files read back."""
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401


@contextlib.contextmanager
def open_bonesim(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a bonesim HDF5 file read-only after checking its schema.

    Raises
    ------
    BonesimError
        Missing file, a directory, a file that is not HDF5 or is corrupt.
    SchemaError
        An HDF5 file without bonesim attributes, or of a newer schema.
    """
    p = check_input_file(path)
    _register_filters()
    if not h5py.is_hdf5(p):
        raise BonesimError(f"{p} is not an HDF5 file (or it is truncated/corrupt)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        if "unable to lock file" in str(exc).lower():
            raise BonesimError(
                f"cannot open {p}: another process has it open for writing (HDF5 file lock); "
                "wait for it to finish"
            ) from None
        raise BonesimError(f"cannot open {p}: the HDF5 file is truncated or corrupt ({exc})") from None
    try:
        check_schema(f, p)
        yield f
    finally:
        f.close()


def check_schema(f: h5py.File, path: str | os.PathLike = "") -> int:
    """Return the schema version of an open file, refusing foreign or newer files."""
    name = path or f.filename
    if "bonesim_schema" not in f.attrs:
        raise SchemaError(f"{name} is an HDF5 file but not a bonesim file (no bonesim_schema attribute)")
    version = int(f.attrs["bonesim_schema"])
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{name} was written with bonesim schema {version}, newer than this bonesim "
            f"{__version__} reads (schema {SCHEMA_VERSION}); upgrade bonesim"
        )
    if "voxel_size_um" not in f.attrs:
        raise SchemaError(f"{name} has no voxel_size_um attribute")
    try:
        vs = float(f.attrs["voxel_size_um"])
    except (TypeError, ValueError):
        raise SchemaError(f"{name}: voxel_size_um {f.attrs['voxel_size_um']!r} is not a number") from None
    if not (math.isfinite(vs) and 0.0 < vs <= MAX_VOXEL_UM):
        raise SchemaError(f"{name}: voxel size {vs!r} µm is not a size in (0, {MAX_VOXEL_UM:g}] µm")
    return version


# --------------------------------------------------------------- volume ----
def write_volume(
    path: str | os.PathLike,
    volume: Volume,
    *,
    overwrite: bool = False,
    compression: str = "gzip",
    grey: np.ndarray | None = None,
    xdmf: bool = True,
) -> Path:
    """Write a bone-fraction volume as a schema-1 file (atomically).

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    volume : Volume
        A uint8 bone-fraction volume.
    overwrite : bool
        Replace an existing file.
    compression : {'gzip', 'zstd', 'none'}
        'zstd' needs ``hdf5plugin`` to write and to read.
    grey : ndarray, optional
        Original grey values, stored as ``/volume/grey``.
    xdmf : bool
        Also write an ``.xdmf`` sidecar so ParaView opens the file.
    """
    if not volume.is_bone_fraction:
        raise BonesimError(
            f"write_volume needs a uint8 bone-fraction volume, got {volume.data.dtype}; segment it first"
        )
    with atomic_output(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            write_root_attrs(f, volume.voxel_size_um)
            g = f.create_group("volume")
            ds = create_array(g, "bone", volume.data, compression=compression)
            write_json_attr(ds, "metadata", volume.metadata)
            if grey is not None:
                create_array(g, "grey", np.asarray(grey), compression=compression)
            write_compartments(g, volume, compression)
    if xdmf:
        from bonesim.io.xdmf import write_xdmf

        write_xdmf(path)
    return Path(path)


def write_compartments(group: h5py.Group, volume: Volume, compression: str = "gzip") -> None:
    """``volume.compartments`` (if any) as ``group/compartments``, attrs ``method`` = ``metadata["compartments"]``."""
    if volume.compartments is not None:
        c = create_array(group, "compartments", volume.compartments, compression=compression)
        write_json_attr(c, "method", volume.metadata.get("compartments", {}))


def _compartments_of(f: h5py.File, shape: tuple[int, ...]) -> np.ndarray | None:
    c = f["volume"].get("compartments") if "volume" in f else None
    return np.asarray(c[...], np.uint8) if isinstance(c, h5py.Dataset) and c.shape == shape else None


def bone_dataset(f: h5py.File, name: str, *, ndim: int = 3) -> h5py.Dataset:
    """The uint8 bone-fraction dataset ``name`` of an open file, its kind, type and shape checked."""
    where = f"{f.filename}:/{name}"
    if name not in f:
        raise SchemaError(f"{f.filename} has no /{name} dataset")
    try:
        obj = f[name]
    except KeyError:
        raise SchemaError(f"{where} is a broken (soft or external) link") from None
    if not isinstance(obj, h5py.Dataset):
        raise SchemaError(f"{where} is a group, expected a dataset")
    if obj.ndim != ndim:
        raise SchemaError(f"{where} has {obj.ndim} dimension(s) {obj.shape}, expected {ndim}")
    if 0 in obj.shape:
        raise BonesimError(f"{where} is empty {obj.shape}")
    if obj.dtype != np.uint8:
        raise SchemaError(
            f"{where} is {obj.dtype}, expected uint8 bone fractions (0..255); re-import the volume"
        )
    if not isinstance(read_json_attr(obj, "metadata", {}), dict):
        raise SchemaError(f"{where}: its metadata attribute is not a JSON mapping")
    return obj


def _read_all(ds: h5py.Dataset, index: Any = ()) -> np.ndarray:
    from bonesim.preflight import check_memory

    nbytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:] if index != () else ds.shape))
    check_memory(nbytes, what=f"reading {ds.file.filename}:{ds.name}")
    try:
        return ds[index] if index != () else ds[...]
    except OSError as exc:
        raise BonesimError(f"{ds.file.filename}:{ds.name} is corrupt ({exc})") from None


def read_volume(path: str | os.PathLike, *, frame: int | None = None) -> Volume:
    """Read the bone volume of a schema-1 file.

    Parameters
    ----------
    frame : int, optional
        Read saved frame ``frame`` of ``/series/bone`` (negative counts from
        the end) instead of the initial ``/volume/bone``.
    """
    with open_bonesim(path) as f:
        vs = float(f.attrs["voxel_size_um"])
        if frame is None:
            ds = bone_dataset(f, "volume/bone")
            meta = read_json_attr(ds, "metadata", {})
            if not isinstance(meta, dict):
                raise SchemaError(
                    f"{path}: /volume/bone metadata is a {type(meta).__name__}, expected a mapping"
                )
            return Volume(_read_all(ds), vs, meta, compartments=_compartments_of(f, ds.shape))
        if "series/bone" not in f:
            raise BonesimError(f"{path} holds no saved frames (/series/bone)")
        s = bone_dataset(f, "series/bone", ndim=4)
        n = s.shape[0]
        if not -n <= frame < n:
            raise BonesimError(f"frame {frame} out of range: {path} holds {n} frames")
        day = float(f["series/day"][frame]) if "series/day" in f else None
        return Volume(
            _read_all(s, frame),
            vs,
            {"frame": frame % n, "day": day},
            compartments=_compartments_of(f, s.shape[1:]),
        )


# --------------------------------------------------------------- tables ----
def write_table(
    parent: h5py.Group, name: str, columns: Mapping[str, Any], *, overwrite: bool = True
) -> h5py.Group:
    """Write a table as a group of equal-length 1-D datasets, one per column."""
    lengths = {k: len(np.atleast_1d(v)) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"table {name!r} columns differ in length: {lengths}")
    if name in parent:
        if not overwrite:
            raise BonesimError(f"table {name!r} exists")
        del parent[name]
    g = parent.create_group(name)
    for key, values in columns.items():
        g.create_dataset(key, data=np.asarray(values))
    g.attrs["columns"] = json.dumps(list(columns))
    return g


def read_table(group: h5py.Group) -> dict[str, np.ndarray]:
    """Read a table group written by :func:`write_table`, in column order."""
    order = read_json_attr(group, "columns", None) or list(group)
    return {k: group[k][...] for k in order if k in group}


# -------------------------------------------------------------- summary ----
def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise a bonesim file: shape, voxel size, BV/TV, schema, series and tables.

    ``bv_tv`` is the BV/TV of ``/volume/bone`` (of a result: its input, before
    the spin-up); a result adds ``bv_tv_day0`` (frame 0: day 0, after the
    spin-up) and ``bv_tv_last`` (the last frame: the end).
    """
    with open_bonesim(path) as f:
        if "volume/bone" not in f and "series/bone" not in f:
            raise BonesimError(f"{path} holds neither /volume/bone nor /series/bone")
        out: dict[str, Any] = {
            "path": str(path),
            "schema": int(f.attrs["bonesim_schema"]),
            "bonesim_version": str(f.attrs.get("bonesim_version", "?")),
            "voxel_size_um": float(f.attrs["voxel_size_um"]),
        }
        if "volume/bone" in f:
            ds = bone_dataset(f, "volume/bone")
            out["shape"] = tuple(int(n) for n in ds.shape)
            out["bv_tv"] = _mean_fraction(ds)
            out["metadata"] = read_json_attr(ds, "metadata", {})
            comp = f["volume"].get("compartments")
            if isinstance(comp, h5py.Dataset):
                out["compartments"] = read_json_attr(comp, "method", {})
        if "series/bone" in f:
            s = f["series/bone"]
            days = f["series/day"][...] if "series/day" in f else np.arange(s.shape[0])
            out["frames"] = int(s.shape[0])
            out["days"] = [float(days[0]), float(days[-1])] if len(days) else []
            if s.shape[0]:
                # a result's baselines: /volume/bone is the input, frame 0 is day 0 (after the spin-up)
                out["bv_tv_day0"] = _mean_fraction(s, index=0)
                out["bv_tv_last"] = _mean_fraction(s, index=-1)
        if "tables" in f:
            out["tables"] = {
                k: {"columns": list(read_table(f["tables"][k])), "rows": _rows(f["tables"][k])}
                for k in f["tables"]
            }
        for grp in ("state", "maps"):
            if grp in f:
                out[grp] = sorted(f[grp])
        if "state" in f:
            out["state_attrs"] = {k: _plain(v) for k, v in f["state"].attrs.items()}
        if "scenario" in f:
            out["scenario"] = str(f["scenario"].attrs.get("name", "?"))
        if "provenance" in f:
            out["provenance"] = {k: _plain(v) for k, v in f["provenance"].attrs.items()}
        return out


def _mean_fraction(ds: h5py.Dataset, index: int | None = None) -> float:
    """Mean bone fraction of a 3-D dataset (or one frame of a 4-D one), slab by slab."""
    arr_shape = ds.shape if index is None else ds.shape[1:]
    total = 0
    for z in range(arr_shape[0]):
        sl = ds[z] if index is None else ds[index, z]
        total += int(sl.sum(dtype=np.int64))
    return total / (255.0 * int(np.prod(arr_shape)))


def _rows(group: h5py.Group) -> int:
    keys = list(group)
    return int(group[keys[0]].shape[0]) if keys else 0


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_compartments(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The compartment labels ``/volume/compartments`` of a volume or result file, and their method.

    A simulation result carries those of its input volume (it copies ``/volume``).
    """
    with open_bonesim(path) as f:
        if "volume" not in f or "compartments" not in f["volume"]:
            raise BonesimError(
                f"{path} has no compartments (/volume/compartments): label them with "
                "bonesim.morphometry.compartments.compartments and store them as "
                "Volume(..., compartments=labels) with write_volume",
                cli=f"{path} has no compartments: import the scan with --compartments auto "
                "and simulate that volume",
            )
        ds = f["volume/compartments"]
        return np.asarray(ds[...], np.uint8), read_json_attr(ds, "method", {})
