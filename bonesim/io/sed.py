"""SED map files: the strain-energy density of micro-FE solves beside the bone they were solved on.

``bonesim mechanics IN.h5 --save-sed OUT.h5`` writes a schema-1 volume file
(see ``docs/hdf5.md``) that :func:`bonesim.io.hdf5.read_volume`,
``bonesim info`` and ``bonesim render`` read like any other::

    /                   root attrs of schema 1 (voxel_size_um, axis_order="zyx", ...)
    /volume/bone        uint8 [Z,Y,X]  the bone that was solved (the frame, for a result)
                        attrs: metadata (JSON: source, frame, day, input_digest)
    /maps/sed           group; attrs: units="MPa", axes (JSON list), source, frame, day,
                        input_digest, source_input_digest (results only)
    /maps/sed/<axis>    float32 [Z,Y,X] SED of the solve along z, y or x, in MPa (= MJ/m³);
                        0 in marrow and in bone that carries no load
                        attrs: units, axis, strain, tissue_modulus_gpa, poisson, exponent,
                        apparent_modulus_mpa, reaction_force_n, strain_energy_j, iterations,
                        relative_residual, converged, tol, backend, removed_voxels,
                        source, frame, day, input_digest
    /maps/von_mises     group; attrs: units="1" (strain), axes (JSON list); written when the
                        caller gives von Mises maps (``bonesim mechanics --save-sed`` does)
    /maps/von_mises/<axis>  float32 [Z,Y,X] equivalent (von Mises) strain at the element
                        centres of the same solve, dimensionless (×10⁶ for µε); 0 in marrow
                        attrs: units, axis, strain (the applied apparent strain)
    /provenance         attrs: command, created, host

``frame`` is the normalised index of the saved frame of a result that was
solved (−1: the file's ``/volume/bone``), ``day`` its day (NaN for a plain
volume). ``input_digest`` identifies the solved voxels and voxel size
(:func:`bonesim.io.result.volume_digest`, the digest a simulation records of
its input); ``source_input_digest`` is the one the source result recorded for
the input of its run.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bonesim.errors import BonesimError, SchemaError
from bonesim.io.hdf5 import (
    create_array,
    open_bonesim,
    read_json_attr,
    write_json_attr,
    write_root_attrs,
)
from bonesim.io.outputs import atomic_write, check_output
from bonesim.volume import Volume

AXES = ("z", "y", "x")
UNITS = "MPa"
#: Keys of a solve (``MechanicsResult`` attributes) stored on each ``/maps/sed/<axis>``.
SOLVE_ATTRS = (
    "strain",
    "apparent_modulus_mpa",
    "reaction_force_n",
    "strain_energy_j",
    "iterations",
    "relative_residual",
    "converged",
    "backend",
    "removed_voxels",
)
SUFFIXES = (".h5", ".hdf5")


def source_info(path: str | os.PathLike, volume: Volume) -> dict[str, Any]:
    """Where ``volume`` came from: source file, frame (−1: ``/volume/bone``), day and digests."""
    from bonesim.io.result import volume_digest

    meta = volume.metadata or {}
    frame = meta.get("frame")
    day = meta.get("day")
    out: dict[str, Any] = {
        "source": str(path),
        "frame": -1 if frame is None else int(frame),
        "day": float("nan") if day is None else float(day),
        "input_digest": volume_digest(volume),
    }
    if frame is not None:
        with open_bonesim(path) as f:
            cfg = read_json_attr(f["state"], "config", {}) if "state" in f else {}
        if isinstance(cfg, dict) and cfg.get("input_digest"):
            out["source_input_digest"] = str(cfg["input_digest"])
    return out


def check_sed_output(path: str | os.PathLike, *, overwrite: bool = False, inputs=()) -> Path:
    """Refuse a bad ``--save-sed`` target before any solve (the policy of :func:`check_output`)."""
    return check_output(path, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES, what="SED file")


def write_sed_file(
    path: str | os.PathLike,
    volume: Volume,
    maps: Mapping[str, np.ndarray],
    solves: Mapping[str, Mapping[str, Any]],
    *,
    settings: Mapping[str, Any],
    source: Mapping[str, Any],
    overwrite: bool = False,
    inputs=(),
    command: str | None = None,
    compression: str = "gzip",
    xdmf: bool = True,
    von_mises: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write the SED ``maps`` (axis -> float32 array, MPa) of ``volume`` atomically (layout: module docstring).

    ``solves`` holds per axis the figures of the solve (:data:`SOLVE_ATTRS`),
    ``settings`` those shared by every axis (``tissue_modulus_gpa``,
    ``poisson``, ``exponent``, ``tol``), ``source`` what :func:`source_info` returns.
    ``von_mises`` (axis -> float32 array, strain) adds the von Mises strain maps
    of the same solves. With ``xdmf`` an ``.xdmf`` sidecar shows ``bone``,
    ``sed_<axis>`` and ``von_mises_<axis>`` in ParaView.
    """
    von_mises = dict(von_mises or {})
    for ax, arr in von_mises.items():
        if ax not in maps:
            raise BonesimError(f"a von Mises map along {ax!r} needs the SED map of the same solve")
        if np.shape(arr) != volume.shape:
            raise BonesimError(f"the {ax} von Mises map is {np.shape(arr)}, the volume {volume.shape}")
    if not maps:
        raise BonesimError("no SED map to write")
    for ax, arr in maps.items():
        if ax not in AXES:
            raise BonesimError(f"SED axis must be one of z, y, x, got {ax!r}")
        if np.shape(arr) != volume.shape:
            raise BonesimError(f"the {ax} SED map is {np.shape(arr)}, the volume {volume.shape}")
    meta = {**(volume.metadata or {}), **_plain(source)}
    with atomic_write(path, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES, what="SED file") as tmp:
        with h5py.File(tmp, "w") as f:
            write_root_attrs(f, volume.voxel_size_um)
            ds = create_array(f.create_group("volume"), "bone", volume.data, compression=compression)
            write_json_attr(ds, "metadata", meta)
            g = f.create_group("maps").create_group("sed")
            g.attrs["units"] = UNITS
            g.attrs["axes"] = json.dumps([a for a in AXES if a in maps])
            _set_attrs(g, source)
            for ax in AXES:
                if ax not in maps:
                    continue
                d = create_array(g, ax, np.asarray(maps[ax], dtype=np.float32), compression=compression)
                d.attrs["units"] = UNITS
                d.attrs["axis"] = ax
                _set_attrs(d, settings)
                _set_attrs(d, {k: v for k, v in solves.get(ax, {}).items() if k in SOLVE_ATTRS})
                _set_attrs(d, source)
            if von_mises:
                g = f["maps"].create_group("von_mises")
                g.attrs["units"] = "1"
                g.attrs["axes"] = json.dumps([a for a in AXES if a in von_mises])
                for ax in AXES:
                    if ax in von_mises:
                        d = create_array(
                            g, ax, np.asarray(von_mises[ax], dtype=np.float32), compression=compression
                        )
                        d.attrs["units"] = "1"
                        d.attrs["axis"] = ax
                        _set_attrs(d, {k: v for k, v in solves.get(ax, {}).items() if k == "strain"})
            p = f.create_group("provenance")
            p.attrs["command"] = command or "bonesim.io.sed.write_sed_file"
            p.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            p.attrs["host"] = socket.gethostname()
    if xdmf:
        from bonesim.io.xdmf import write_xdmf

        write_xdmf(path)
    return Path(path)


def sed_axes(path: str | os.PathLike) -> list[str]:
    """The axes whose SED map ``path`` holds (``[]`` when it has no ``/maps/sed``)."""
    with open_bonesim(path) as f:
        g = f.get("maps/sed")
        if not isinstance(g, h5py.Group):
            return []
        return [a for a in AXES if isinstance(g.get(a), h5py.Dataset)]


def read_sed_map(path: str | os.PathLike, axis: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The SED map of ``axis`` (default: the first of z, y, x present) and its attributes.

    Raises
    ------
    BonesimError
        The file has no SED map, or none along ``axis``: the sentence says
        which axes it has and what to run.
    """
    axes = sed_axes(path)
    if not axes:
        raise BonesimError(
            f"{path} holds no SED maps (/maps/sed); write them with "
            f"`bonesim mechanics {Path(path).name} --save-sed SED.h5` and render that file"
        )
    if axis is None:
        axis = axes[0]
    if axis not in axes:
        solve = f"solve that axis with `bonesim mechanics ... --axis {axis} --save-sed SED.h5`"
        raise BonesimError.fix(
            f"{path} holds SED maps along {', '.join(axes)} only, not {axis}",
            f"choose axis={axes[0]!r} or {solve}",
            f"choose --axis {axes[0]} or {solve}",
        )
    with open_bonesim(path) as f:
        ds = f["maps/sed"][axis]
        if ds.ndim != 3 or ds.dtype.kind != "f":
            raise SchemaError(f"{path}:/maps/sed/{axis} is {ds.dtype} {ds.shape}, expected float32 [Z,Y,X]")
        try:
            arr = np.asarray(ds[...], dtype=np.float32)
        except OSError as exc:
            raise BonesimError(f"{path}:/maps/sed/{axis} is corrupt ({exc})") from None
        attrs = {k: _decode(v) for k, v in ds.attrs.items()}
    attrs.setdefault("axis", axis)
    attrs.setdefault("units", UNITS)
    return arr, attrs


def read_von_mises_map(path: str | os.PathLike, axis: str) -> np.ndarray:
    """The von Mises strain map of ``axis`` (float32, dimensionless) written beside the SED map."""
    with open_bonesim(path) as f:
        ds = f.get(f"maps/von_mises/{axis}")
        if not isinstance(ds, h5py.Dataset):
            raise BonesimError(
                f"{path} holds no von Mises strain map along {axis} (/maps/von_mises/{axis}); write it with "
                f"`bonesim mechanics IN.h5 --axis {axis} --save-sed SED.h5`"
            )
        if ds.ndim != 3 or ds.dtype.kind != "f":
            raise SchemaError(
                f"{path}:/maps/von_mises/{axis} is {ds.dtype} {ds.shape}, expected float32 [Z,Y,X]"
            )
        try:
            return np.asarray(ds[...], dtype=np.float32)
        except OSError as exc:
            raise BonesimError(f"{path}:/maps/von_mises/{axis} is corrupt ({exc})") from None


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _set_attrs(obj: h5py.HLObject, values: Mapping[str, Any]) -> None:
    for k, v in values.items():
        if v is None:
            continue
        obj.attrs[k] = v.item() if isinstance(v, np.generic) else v


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v
