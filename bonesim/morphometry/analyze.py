"""`analyze`: morphometry of every saved frame of a result file, written back into it."""

from __future__ import annotations

import csv as _csv
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bonesim._validation import check_choice
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import open_bonesim, read_json_attr, write_table
from bonesim.volume import Volume

log = logging.getLogger(__name__)

#: Columns ``analyze`` adds to (or replaces in) ``/tables/metrics``.
METRIC_COLUMNS = (
    "bv_tv",
    "bs_bv_per_mm",
    "tb_th_um",
    "tb_sp_um",
    "tb_n_per_mm",
    "conn_d_per_mm3",
    "smi",
    "da",
)
#: Extra columns of ``/tables/morphometry`` and of the CSV.
EXTRA_COLUMNS = ("bs_tv_per_mm", "tb_th_sd_um", "tb_th_max_um", "tb_sp_sd_um", "tb_sp_max_um")
FRAMES = ("all", "last")


def _frame_list(f: h5py.File, frames: str) -> tuple[list[int | None], np.ndarray]:
    """Frame indices to analyse (None = /volume/bone) and their days."""
    if "series/bone" in f and f["series/bone"].shape[0] > 0:
        n = f["series/bone"].shape[0]
        days = f["series/day"][...].astype(np.float64) if "series/day" in f else np.arange(n, dtype=float)
        idx = list(range(n)) if frames == "all" else [n - 1]
        return idx, days[idx]  # type: ignore[return-value]
    if "volume/bone" in f:
        return [None], np.array([0.0])
    raise BonesimError(f"{f.filename} holds no bone volume (/volume/bone or /series/bone)")


def analyze(
    path: str | os.PathLike,
    *,
    frames: str = "all",
    csv: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    write: bool = True,
    backend: str = "cpu",
) -> dict[str, np.ndarray]:
    """Morphometry of the saved frames of a bonesim file, written into the file (and a CSV).

    Parameters
    ----------
    path : path-like
        A schema-1 result file (``/series/bone``) or a plain volume file
        (``/volume/bone`` only).
    frames : {'all', 'last'}
        Analyse every saved frame or only the last one.
    csv : path-like, optional
        Also write the table as CSV (one row per analysed frame).
    progress : callable, optional
        Called as ``progress(done, total)`` after each frame.
    write : bool
        Write the results into the file (opened ``r+`` in place; only the
        morphometry columns are added or replaced).
    backend : {'cpu', 'gpu'}
        See :func:`bonesim.morphometry.morphometry`.

    Returns
    -------
    dict of ndarray
        Columns ``frame`` (−1 for ``/volume/bone``), ``day`` and the indices,
        one row per analysed frame.

    Notes
    -----
    Where the file has ``/tables/metrics`` with one row per saved frame, the
    columns :data:`METRIC_COLUMNS` are added to it (rows not analysed keep
    their old value, or NaN); otherwise (a plain volume file, or a metrics
    table of a different length) the table ``/tables/morphometry`` is
    written with columns ``frame, day`` and all indices.
    """
    from bonesim.morphometry.indices import morphometry

    check_choice(frames, FRAMES, name="frames")
    rows: list[dict[str, float]] = []
    with open_bonesim(path) as f:
        vs = float(f.attrs["voxel_size_um"])
        idx, days = _frame_list(f, frames)
        n_series = f["series/bone"].shape[0] if "series/bone" in f else 0
        metrics_rows = None
        if "tables/metrics" in f:
            cols = list(f["tables/metrics"])
            metrics_rows = int(f["tables/metrics"][cols[0]].shape[0]) if cols else 0
        for k, (i, day) in enumerate(zip(idx, days, strict=True)):
            data = f["volume/bone"][...] if i is None else f["series/bone"][i]
            m = morphometry(Volume(data, vs), backend=backend)
            rows.append({"frame": -1 if i is None else i, "day": float(day), **m})
            log.info("frame %s (day %g): %s", i, day, m)
            if progress is not None:
                progress(k + 1, len(idx))
    names = ["frame", "day", *METRIC_COLUMNS, *EXTRA_COLUMNS]
    table = {
        c: np.array([r.get(c, np.nan) for r in rows], dtype=np.int64 if c == "frame" else np.float64)
        for c in names
    }
    if write:
        _write_back(Path(path), table, n_series, metrics_rows)
    if csv is not None:
        _write_csv(Path(csv), table)
    return table


def _write_back(path: Path, table: dict[str, np.ndarray], n_series: int, metrics_rows: int | None) -> None:
    if not os.access(path, os.W_OK):
        raise BonesimError(f"{path} is read-only: cannot store the results (write a CSV with --csv instead)")
    with h5py.File(path, "r+") as f:
        tables = f.require_group("tables")
        if n_series and metrics_rows == n_series:
            g = tables["metrics"]
            order = read_json_attr(g, "columns", None) or list(g)
            for col in METRIC_COLUMNS:
                full = g[col][...].astype(np.float64) if col in g else np.full(n_series, np.nan)
                full[table["frame"]] = table[col]
                if col in g:
                    del g[col]
                g.create_dataset(col, data=full)
                if col not in order:
                    order.append(col)
            g.attrs["columns"] = json.dumps(order)
            log.info("added %s to %s:/tables/metrics", ", ".join(METRIC_COLUMNS), path)
        else:
            write_table(tables, "morphometry", table, overwrite=True)
            log.info("wrote %s:/tables/morphometry", path)


def _write_csv(path: Path, table: dict[str, Any]) -> None:
    if path.is_dir():
        raise BonesimError(f"CSV path {path} is a directory")
    if not path.parent.is_dir():
        raise BonesimError(f"CSV folder {path.parent} does not exist")
    names = list(table)
    with open(path, "w", newline="") as fh:
        w = _csv.writer(fh)
        w.writerow(names)
        for r in range(len(table["frame"])):
            w.writerow([int(table[c][r]) if c == "frame" else f"{table[c][r]:.6g}" for c in names])
