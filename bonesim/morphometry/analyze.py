"""`analyze`: morphometry of every saved frame of a result file, written back into it."""

from __future__ import annotations

import csv as _csv
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bonesim._validation import check_choice
from bonesim.errors import BonesimError, InputError
from bonesim.io.hdf5 import write_table
from bonesim.io.outputs import atomic_write, check_output
from bonesim.io.result import Result, write_frame_metrics
from bonesim.morphometry.histomorphometry import HISTO_COLUMNS as _HISTO_COLUMNS
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
    "cut_elements",
    "vbmd_mgha_cm3",
    "tmd_mgha_cm3",
)
#: Extra columns of ``/tables/morphometry`` and of the CSV.
EXTRA_COLUMNS = ("bs_tv_per_mm", "tb_th_sd_um", "tb_th_max_um", "tb_sp_sd_um", "tb_sp_max_um")
#: Columns that hold counts (written to the CSV as integers).
COUNT_COLUMNS = ("n_particles", "n_cavities", "cavity_voxels", "cut_elements")
#: Columns added with ``mechanics=True`` (to ``/tables/metrics`` and the CSV).
MECHANICS_COLUMNS = ("e_app_z_mpa",)
#: Columns added with ``histomorphometry=True`` (see :mod:`bonesim.morphometry.histomorphometry`).
HISTO_COLUMNS = _HISTO_COLUMNS
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
    histomorphometry: bool = False,
    roi: str | None = None,
    psf_um: float = 0.0,
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
    histomorphometry : bool
        Also report the dynamic histomorphometry of every analysed frame over
        the interval since the frame before it (ASBMR nomenclature,
        :func:`bonesim.morphometry.histomorphometry.histomorphometry_interval`):
        ``ms_bs_pct``, ``mar_um_per_day``, ``bfr_bs_um3_um2_yr``, ``ac_f_per_yr``,
        ``ac_f_bfr_per_yr``, ``activations_per_mm2_yr`` (NaN for frame 0), and
        ``es_bs_pct``, ``os_bs_pct`` (from the CA phase, which a result holds
        for its last frame only: NaN for the others). Needs a simulation result.
    roi : {'trabecular', 'cortical', 'bone'}, optional
        Measure inside one compartment of ``/volume/compartments`` only (see
        :mod:`bonesim.morphometry.compartments`; a result carries those of
        its input volume): TV is the compartment's volume, bone outside it is
        ignored. The table is stored as ``/tables/morphometry_<roi>`` (frame,
        day, indices), never in ``/tables/metrics``. Not with ``mechanics`` or
        ``histomorphometry``.
    psf_um : float
        Measure each frame as a scanner would image it: the bone fraction
        blurred by a Gaussian point-spread function of σ = ``psf_um`` µm
        (:func:`bonesim.morphometry.scanner.scanner_view`), then binarised as
        usual. 0 (default): the frame as it is. The sub-voxel deficit that
        f < 1 leaves at the tops of refilled columns binarises into one-voxel
        pits, pockets and tunnels that a blur of about one voxel removes
        (docs/morphometry.md). The indices, ``cut_elements`` included, then
        describe the blurred frames; vBMD/TMD are those of the frames as they
        are. The table is stored as ``/tables/morphometry_psf`` (with ``roi``:
        ``/tables/morphometry_<roi>_psf``) with the attribute ``psf_um``,
        never in ``/tables/metrics``.

    Returns
    -------
    dict of ndarray
        Columns ``frame`` (−1 for ``/volume/bone``), ``day`` and the indices
        (and ``e_app_z_mpa`` with ``mechanics``, :data:`HISTO_COLUMNS` with
        ``histomorphometry``), one row per analysed frame.

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
        raise BonesimError.fix(
            f"{path} is read-only: cannot store the results",
            "pass write=False and csv=FILE instead",
            "write a CSV with --no-write --csv FILE instead",
        )
    if histomorphometry and not info.has_series:
        raise BonesimError(
            f"{path} is a plain volume: histomorphometry needs a simulation result (saved frames over time)"
        )
    inside = None
    if roi is not None:
        from bonesim.io.hdf5 import read_compartments
        from bonesim.morphometry.compartments import REGIONS, region

        check_choice(roi, REGIONS, name="roi")
        if mechanics or histomorphometry:
            raise InputError(
                "a compartment (`roi`) restricts the morphometry only: leave out mechanics and histomorphometry",
                cli="--roi restricts the morphometry only: leave out --mechanics and --histomorphometry",
            )
        inside = region(read_compartments(info.path)[0], roi)
        if inside.shape != tuple(info.shape):
            raise BonesimError(f"{path}: the compartments are {inside.shape}, the bone {tuple(info.shape)}")
    from bonesim.morphometry.scanner import scanner_view

    psf_um = check_psf(psf_um)
    idx = list(range(info.n_frames)) if frames == "all" else [info.n_frames - 1]
    rows: list[dict[str, float]] = []
    histo = _Histo(info) if histomorphometry else None
    mineral = _Mineral(info)
    cuts = _Cuts(info, psf_um)
    for k, i in enumerate(idx):
        vol = Volume(info.frame(i), info.voxel_size_um)
        seen = Volume(scanner_view(vol.data, vol.voxel_size_um, psf_um), vol.voxel_size_um)
        m = morphometry(seen, backend=backend, roi=inside)
        if inside is None:  # vBMD/TMD are whole-volume quantities: not in a compartment's table
            m.update(mineral.row(i, vol.data))
            m["cut_elements"] = cuts.row(i, seen.data)
        del seen
        frame = i if info.has_series else -1
        if mechanics:
            m["e_app_z_mpa"] = apparent_modulus_z(vol, backend=backend, where=f"frame {frame}")
        if histo is not None:
            m.update(histo.row(i, vol.data))
        rows.append({"frame": frame, "day": float(info.days[i]), **m})
        log.info("frame %s (day %g): %s", frame, info.days[i], m)
        if progress is not None:
            progress(k + 1, len(idx))
    extra_mech = (*(MECHANICS_COLUMNS if mechanics else ()), *(HISTO_COLUMNS if histomorphometry else ()))
    names = ["frame", "day", *METRIC_COLUMNS, *extra_mech, *EXTRA_COLUMNS]
    table = {
        c: np.array([r.get(c, np.nan) for r in rows], dtype=np.int64 if c == "frame" else np.float64)
        for c in names
    }
    if write and (roi is not None or psf_um > 0):
        name = "morphometry" + (f"_{roi}" if roi is not None else "") + ("_psf" if psf_um > 0 else "")
        with h5py.File(info.path, "r+") as f:
            write_table(f.require_group("tables"), name, table, overwrite=True)
            f["tables"][name].attrs["psf_um"] = psf_um
    elif write:
        write_frame_metrics(info, table, (*METRIC_COLUMNS, *extra_mech))
    if csv is not None:
        with atomic_write(
            csv, overwrite=overwrite, inputs=[path], suffixes=(".csv",), what="CSV file"
        ) as tmp:
            _write_csv(tmp, table)
    return table


def dynamic_histomorphometry(path: str | os.PathLike, *, frames: str = "all") -> dict[str, np.ndarray]:
    """The dynamic histomorphometry of a simulation result alone (nothing written, no other index).

    Columns ``frame``, ``day`` and :data:`HISTO_COLUMNS`, one row per
    analysed frame; the same values as ``analyze(path, histomorphometry=True)``
    (see there and ``docs/morphometry.md``).

    >>> import tempfile, pathlib, h5py
    >>> from bonesim.io.hdf5 import write_root_attrs
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.h5"
    >>> b0 = np.zeros((8, 8, 8), np.uint8); b0[:4] = 255; b1 = b0.copy(); b1[4] = 153  # 12 µm in 30 d
    >>> with h5py.File(p, "w") as f:
    ...     write_root_attrs(f, 20.0)
    ...     _ = f.create_dataset("series/bone", data=np.stack([b0, b1]))
    ...     _ = f.create_dataset("series/day", data=[0.0, 30.0])
    >>> t = dynamic_histomorphometry(p)
    >>> t["ms_bs_pct"].tolist(), round(float(t["mar_um_per_day"][1] * (7 / 8) ** 2), 6)
    ([nan, 100.0], 0.4)
    """
    check_choice(frames, FRAMES, name="frames")
    info = Result.open(path)
    if not info.has_series:
        raise BonesimError(
            f"{path} is a plain volume: histomorphometry needs a simulation result (saved frames over time)"
        )
    idx = list(range(info.n_frames)) if frames == "all" else [info.n_frames - 1]
    histo = _Histo(info)
    rows = [{"frame": i, "day": float(info.days[i]), **histo.row(i, info.frame(i))} for i in idx]
    return {
        c: np.array([r[c] for r in rows], dtype=np.int64 if c == "frame" else np.float64)
        for c in ("frame", "day", *HISTO_COLUMNS)
    }


_NO_MINERAL = {"vbmd_mgha_cm3": float("nan"), "tmd_mgha_cm3": float("nan")}


class _Mineral:
    """vBMD and TMD (mg HA/cm^3) of frame i of a result (see :mod:`bonesim.morphometry.mineral`).

    Needs the frame's ``formed_day`` map (:meth:`Result.formed_day`) and the day-0
    turnover: the bone the CA removed per day in the second half of its spin-up (which
    steps under the day-0 parameters; ``/state`` attribute ``spinup_removed_per_day``)
    over BV/TV of the reference frame; for a result without it, the nominal
    Ac.f x E x BS/BV of the first row of ``/tables/physiology`` and the reference
    frame. NaN where either is missing (a plain volume, a
    result written before per-frame maps were stored, for its frames between day 0
    and the last). The old part of each voxel is the lowest bone fraction of the
    saved frames since day 0, read in order (frames skipped by ``frames='last'`` too).
    A calibrated input sets the density scale (:func:`_calibrated_law`).
    """

    def __init__(self, info: Result) -> None:
        from bonesim.morphometry.mineral import day0_turnover_per_day

        self.info = info
        self.k0 = float("nan")
        self.k0_source = "none"
        self.low: np.ndarray | None = None  # the lowest bone fraction of the frames since day 0
        self.upto = -1
        self.formed: tuple[int, np.ndarray] | None = None  # the last frame's formed_day map
        t = info.tables.get("physiology", {})
        spin = float(info.state_attrs.get("spinup_removed_per_day", float("nan")))
        if not info.has_series:
            return
        b0 = info.frame(info.reference_index)
        bv0 = float(b0.sum(dtype=np.int64)) / 255.0 / b0.size
        if np.isfinite(spin) and spin > 0 and bv0 > 0:
            self.k0, self.k0_source = spin / bv0, "spin-up"
        elif {"acf_per_year", "erosion_depth_um"} <= set(t) and len(t["acf_per_year"]):
            self.k0 = day0_turnover_per_day(
                float(t["acf_per_year"][0]),
                float(t["erosion_depth_um"][0]),
                _bs_bv_per_um(b0, info.voxel_size_um),
            )
            self.k0_source = "nominal"
        self.law = _calibrated_law(info, self.k0)

    def _advance(self, i: int, bone: np.ndarray) -> None:
        days = self.info.days
        for j in range(self.upto + 1, i + 1):
            if days[j] < 0:
                continue
            b = bone if j == i else self.info.frame(j)
            self.low = b.copy() if self.low is None else np.minimum(self.low, b)
        self.upto = max(self.upto, i)

    def row(self, i: int, bone: np.ndarray) -> dict[str, float]:
        from bonesim.morphometry.mineral import mineral_summary
        from bonesim.physiology.mineralisation import old_bone_m

        if not np.isfinite(self.k0):
            return _NO_MINERAL.copy()
        self._advance(i, bone)
        formed = self.info.formed_day(i, self.formed)
        if formed is None:
            return _NO_MINERAL.copy()
        self.formed = (i, formed)
        day = float(self.info.days[i])
        old_m = float(old_bone_m(self.k0, max(day, 0.0)))
        return mineral_summary(
            bone, formed, day, old_m, bone_old=self.low if day >= 0 else None, law=self.law
        )


class _Cuts:
    """Elements cut through since day 0 (frame 0): :func:`bonesim.morphometry.difference.cut_elements`
    of the perforated mask (12-voxel clusters dropped as noise), frames seen through the PSF
    ``psf_um``. NaN for a plain volume."""

    def __init__(self, info: Result, psf_um: float = 0.0) -> None:
        self.info = info
        self.psf_um = psf_um
        self.b0: np.ndarray | None = None

    def row(self, i: int, bone: np.ndarray) -> float:
        from bonesim.morphometry.difference import cut_elements, difference_masks

        if not self.info.has_series:
            return float("nan")
        if i == 0:
            return 0.0
        if self.b0 is None:
            from bonesim.morphometry.scanner import scanner_view

            self.b0 = scanner_view(self.info.frame(0), self.info.voxel_size_um, self.psf_um)
        return float(cut_elements(difference_masks(self.b0, bone).perforated))


def check_psf(psf_um: float) -> float:
    """``psf_um`` as a float >= 0 (µm), or an InputError that names the option."""
    try:
        v = float(psf_um)
    except (TypeError, ValueError):
        v = float("nan")
    if not np.isfinite(v) or v < 0:
        raise InputError(
            f"`psf_um` must be a number of µm >= 0, got {psf_um!r}",
            cli=f"--psf-um must be a number of µm >= 0, got {psf_um!r}",
        )
    return v


def _calibrated_law(info: Result, k0: float):
    """The mineralisation law, its fully mineralised density anchored to a calibrated input.

    Where the input volume carries a density calibration with a measured TMD
    (``bonesim import --calibration-*``: metadata ``calibration.tmd_mg_ha_cm3``), the
    bone of day 0 is given that TMD: ``tmd_max`` = measured TMD / m_old(0). Relative
    changes do not depend on it. Otherwise the law's own ``tmd_max`` (1200 mg HA/cm^3).
    """
    from dataclasses import replace

    from bonesim.io.hdf5 import open_bonesim, read_json_attr
    from bonesim.physiology.mineralisation import MINERALISATION, old_bone_m

    law = MINERALISATION
    if not np.isfinite(k0):
        return law
    with open_bonesim(info.path) as f:
        ds = f.get("volume/bone")
        meta = read_json_attr(ds, "metadata", {}) if ds is not None else {}
    cal = meta.get("calibration") if isinstance(meta, dict) else None
    tmd = cal.get("tmd_mg_ha_cm3") if isinstance(cal, dict) else None
    if isinstance(tmd, (int, float)) and np.isfinite(tmd) and tmd > 0:
        return replace(law, tmd_max_mg_cm3=float(tmd) / float(old_bone_m(k0, 0.0, law)))
    return law


def _bs_bv_per_um(b: np.ndarray, voxel_size_um: float) -> float:
    """BS/BV (1/um) of a bone fraction volume; NaN without bone."""
    from bonesim.morphometry.basic import bone_surface_um2

    bv = float(b.sum(dtype=np.int64)) / 255.0 * voxel_size_um**3
    return bone_surface_um2(b, voxel_size_um) / bv if bv > 0 else float("nan")


class _Histo:
    """The histomorphometry columns of frame i of a result: frame i-1, the last state, metrics, W.Th."""

    def __init__(self, info: Result) -> None:
        self.info = info
        self.prev: tuple[int, np.ndarray] | None = None
        st = info.state()
        day = info.state_attrs.get("day")
        last_day = float(info.days[-1])
        self.state = st if st and day is not None and abs(float(day) - last_day) < 1e-9 else None
        metrics = info.tables.get("metrics", {})
        n = len(next(iter(metrics.values()))) if metrics else 0
        self.metrics = metrics if n == info.n_frames else {}
        self.phys = info.tables.get("physiology", {})

    def _frame(self, i: int) -> np.ndarray:
        if self.prev is not None and self.prev[0] == i:
            return self.prev[1]
        return self.info.frame(i)

    def wall_thickness_um(self, d0: float, d1: float) -> float | None:
        """Mean f · E of the daily parameters of days [d0, d1) (the last row beyond the table)."""
        t = self.phys
        if "erosion_depth_um" not in t or "formation_efficiency" not in t:
            return None
        w = np.asarray(t["erosion_depth_um"], float) * np.asarray(t["formation_efficiency"], float)
        if w.size == 0:
            return None
        lo = min(max(int(np.floor(d0)), 0), w.size - 1)
        hi = min(max(int(np.ceil(d1)), lo + 1), w.size)
        return float(w[lo:hi].mean())

    def row(self, i: int, after: np.ndarray) -> dict[str, float]:
        from bonesim.morphometry.histomorphometry import histomorphometry_interval

        out = {c: float("nan") for c in HISTO_COLUMNS}
        info = self.info
        if i > 0 and info.days[i] > info.days[i - 1]:
            d0, d1 = float(info.days[i - 1]), float(info.days[i])
            r = histomorphometry_interval(
                self._frame(i - 1),
                after,
                info.voxel_size_um,
                d1 - d0,
                state=self.state if i == info.n_frames - 1 else None,
                metrics_row={k: float(v[i]) for k, v in self.metrics.items()},
                wall_thickness_um=self.wall_thickness_um(d0, d1),
            )
            out.update({c: float(r[c]) for c in HISTO_COLUMNS})
        elif i == info.n_frames - 1 and self.state is not None:  # a one-frame result: ES, OS only
            from bonesim.morphometry.histomorphometry import state_surfaces

            s = state_surfaces(after, self.state["phase"], self.state["timer"], info.voxel_size_um)
            out.update(es_bs_pct=s["es_bs_pct"], os_bs_pct=s["os_bs_pct"])
        self.prev = (i, after)
        return out


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
