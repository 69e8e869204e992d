"""`analyze`: morphometry of every saved frame of a result file, written back into it."""

from __future__ import annotations

import csv as _csv
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bonesim._validation import check_choice
from bonesim.errors import BonesimError
from bonesim.io.outputs import atomic_write, check_output
from bonesim.io.result import Result, write_frame_metrics
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
    "conn_d_purified_per_mm3",
    "n_particles",
    "n_cavities",
    "cavity_voxels",
)
#: Extra columns of ``/tables/morphometry`` and of the CSV.
EXTRA_COLUMNS = ("bs_tv_per_mm", "tb_th_sd_um", "tb_th_max_um", "tb_sp_sd_um", "tb_sp_max_um")
#: Columns that hold counts (written to the CSV as integers).
COUNT_COLUMNS = ("n_particles", "n_cavities", "cavity_voxels")
#: Columns added with ``mechanics=True`` (to ``/tables/metrics`` and the CSV).
MECHANICS_COLUMNS = ("e_app_z_mpa",)
FRAMES = ("all", "last")


def analyze(
    path: str | os.PathLike,
    *,
    frames: str = "all",
    csv: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    write: bool = True,
    backend: str = "cpu",
    overwrite: bool = False,
    mechanics: bool = False,
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
    overwrite : bool
        Replace an existing ``csv`` (never the input file).
    mechanics : bool
        Also compress every analysed frame along z by micro-FE
        (:func:`bonesim.mechanics.solve` with its defaults: 1 % strain,
        E0 = 10 GPa, ν = 0.3, tol 1e-6; NumPy for ``backend='cpu'``, CuPy for
        'gpu') and report its apparent modulus as ``e_app_z_mpa`` (MPa). Slow
        (seconds to minutes per frame), so off by default. A frame whose bone
        does not connect z = 0 to the top face carries no load: 0 MPa, with
        a warning.

    Returns
    -------
    dict of ndarray
        Columns ``frame`` (−1 for ``/volume/bone``), ``day`` and the indices
        (and ``e_app_z_mpa`` with ``mechanics``), one row per analysed frame.

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
    if csv is not None:  # before any work: a bad CSV path fails now, not after every frame
        check_output(csv, overwrite=overwrite, inputs=[path], suffixes=(".csv",), what="CSV file")
    info = Result.open(path)
    if write and not os.access(info.path, os.W_OK):
        raise BonesimError(f"{path} is read-only: cannot store the results (write a CSV with --csv instead)")
    idx = list(range(info.n_frames)) if frames == "all" else [info.n_frames - 1]
    rows: list[dict[str, float]] = []
    for k, i in enumerate(idx):
        vol = Volume(info.frame(i), info.voxel_size_um)
        m = morphometry(vol, backend=backend)
        frame = i if info.has_series else -1
        if mechanics:
            m["e_app_z_mpa"] = apparent_modulus_z(vol, backend=backend, where=f"frame {frame}")
        rows.append({"frame": frame, "day": float(info.days[i]), **m})
        log.info("frame %s (day %g): %s", frame, info.days[i], m)
        if progress is not None:
            progress(k + 1, len(idx))
    extra_mech = MECHANICS_COLUMNS if mechanics else ()
    names = ["frame", "day", *METRIC_COLUMNS, *extra_mech, *EXTRA_COLUMNS]
    table = {
        c: np.array([r.get(c, np.nan) for r in rows], dtype=np.int64 if c == "frame" else np.float64)
        for c in names
    }
    if write:
        write_frame_metrics(info, table, (*METRIC_COLUMNS, *extra_mech))
    if csv is not None:
        with atomic_write(
            csv, overwrite=overwrite, inputs=[path], suffixes=(".csv",), what="CSV file"
        ) as tmp:
            _write_csv(tmp, table)
    return table


def apparent_modulus_z(volume: Volume, *, backend: str = "cpu", where: str = "the volume") -> float:
    """E_app (MPa) of a z compression with :func:`bonesim.mechanics.solve`'s defaults; 0 without a load path.

    ``backend`` is the morphometry backend: 'cpu' solves with NumPy, 'gpu' with CuPy.
    """
    import warnings

    from scipy import ndimage

    from bonesim.mechanics import solve

    mask = volume.data > 0
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    lo, hi = np.unique(lab[0]), np.unique(lab[-1])
    if not np.intersect1d(lo[lo > 0], hi[hi > 0]).size:
        warnings.warn(
            f"{where}: the bone does not connect z = 0 to the top face; E_app,z = 0 MPa",
            UserWarning,
            stacklevel=2,
        )
        return 0.0
    r = solve(volume, "z", backend="numpy" if backend == "cpu" else "cupy", keep_fields=False)
    if not r.converged:
        log.warning("%s: PCG did not converge (relative residual %.3g)", where, r.relative_residual)
    return float(r.apparent_modulus_mpa)


def _write_csv(path: Path, table: dict[str, Any]) -> None:
    names = list(table)
    with open(path, "w", newline="") as fh:
        w = _csv.writer(fh)
        w.writerow(names)
        for r in range(len(table["frame"])):
            w.writerow([_cell(c, table[c][r]) for c in names])


def _cell(name: str, value: float) -> str:
    if name == "frame" or (name in COUNT_COLUMNS and np.isfinite(value)):
        return str(int(value))
    return f"{value:.6g}"
