"""Study summaries: one row per run, ensemble statistics across seeds, comparison plots.

Built from the files alone (status records and result files), so it can be
rebuilt at any time — after a SLURM array job, with ``bonesim batch
study.toml --summarize``. Outputs, in the study's output folder:

``summary.csv``
    One row per run: id, input, scenario, seed, status, error, timings,
    host, device, backend, the indices of the last saved frame
    (``<metric>_final``), BV/TV at the start (``bv_tv_start``, day 0, after
    spin-up), its change in %, and indices at the end of each simulated year
    (``<metric>_y1``, ``_y2``, ...).
``ensemble.csv``
    Mean ± SD across seeds of every trajectory metric, per input × scenario
    and saved day (long format: input, scenario, metric, day, n, mean, sd).
``summary.h5``
    The same tables (``/runs``, ``/ensemble/<input>__<scenario>``), the
    per-run trajectories (``/trajectories/<run_id>``) and the manifest text.
``plots/scenario_<name>.png``, ``plots/input_<name>.png``
    BV/TV (mean ± SD across seeds) over time: per scenario, one line per
    input; per input, one line per scenario. Skipped without matplotlib.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bonesim.batch.manifest import Run, Study
from bonesim.batch.status import read_status, run_state
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError
from bonesim.morphometry.analyze import METRIC_COLUMNS as MORPHOMETRY_COLUMNS

log = logging.getLogger(__name__)

#: metrics tracked per year and across seeds (those present in the results)
TRAJECTORY_METRICS = (
    *MORPHOMETRY_COLUMNS,
    "bmu_resorbing",
    "bmu_forming",
    "acf_realised",
)
FIRST_COLUMNS = (
    "run_index",
    "run_id",
    "input",
    "scenario",
    "seed",
    "status",
    "error",
    "wall_s",
    "sim_days",
    "voxels",
    "gvox_days_per_s",
    "device",
    "backend",
    "host",
    "started",
    "finished",
    "attempts",
    "resumed",
    "out",
)


def read_trajectory(path: Path) -> dict[str, np.ndarray]:
    """The ``/tables/metrics`` table of a result file (empty dict if it has none)."""
    from bonesim.io.result import Result

    info = Result.open(path)
    table = dict(info.tables.get("metrics", {}))
    if table:
        table["_voxels"] = np.array([int(np.prod(info.shape))])
    return table


def run_row(run: Run, status: dict[str, Any] | None, state: str, dpy: float) -> tuple[dict, dict]:
    """One summary row for ``run`` and its trajectory (days ≥ 0) if it finished."""
    status = status or {}
    row: dict[str, Any] = {
        "run_index": run.index,
        "run_id": run.run_id,
        "input": run.input.name,
        "scenario": run.scenario.name,
        "seed": run.seed,
        "status": state,
        "error": status.get("error", "") if state == "failed" else "",
        "wall_s": status.get("wall_s", ""),
        "device": status.get("device", ""),
        "backend": status.get("backend", ""),
        "host": status.get("host", ""),
        "started": status.get("started", ""),
        "finished": status.get("finished", ""),
        "attempts": status.get("attempts", ""),
        "resumed": status.get("resumed", ""),
        "out": str(run.out),
    }
    traj: dict[str, np.ndarray] = {}
    if state != "done":
        return row, traj
    try:
        table = read_trajectory(run.out)
    except (BonesimError, OSError) as exc:
        row["status"], row["error"] = "failed", f"result unreadable: {exc}"
        return row, traj
    voxels = int(table.pop("_voxels", [0])[0])
    if "day" not in table or len(table["day"]) == 0:
        return row, traj
    day = np.asarray(table["day"], dtype=np.float64)
    keep = day >= 0
    traj = {k: np.asarray(v)[keep] for k, v in table.items() if len(v) == len(day)}
    days = traj["day"]
    sim_days = float(days[-1]) if len(days) else 0.0
    row["sim_days"] = sim_days
    row["voxels"] = voxels
    wall = status.get("wall_s")
    if isinstance(wall, (int, float)) and wall > 0 and voxels:
        total_days = sim_days + run.spinup_years * dpy
        row["gvox_days_per_s"] = round(voxels * total_days / wall / 1e9, 6)
    for k, v in traj.items():
        if k == "day" or not np.issubdtype(np.asarray(v).dtype, np.number) or not len(v):
            continue
        row[f"{k}_final"] = _num(v[-1])
    if "bv_tv" in traj and len(days):
        start, final = float(traj["bv_tv"][0]), float(traj["bv_tv"][-1])
        row["bv_tv_start"] = start
        row["bv_tv_change_pct"] = 100.0 * (final - start) / start if start > 0 else math.nan
    n_years = math.floor(run.years + 1e-9)
    for k in (m for m in TRAJECTORY_METRICS if m in traj):
        for y in range(1, n_years + 1):
            sel = np.nonzero(days <= y * dpy + 0.5)[0]
            row[f"{k}_y{y}"] = _num(traj[k][sel[-1]]) if len(sel) else math.nan
    return row, traj


def _num(v: Any) -> Any:
    v = np.asarray(v).item()
    return float(v) if isinstance(v, float) else v


def ensemble(trajs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean and SD (ddof=1; NaN for one seed) of each metric across runs, on their common days.

    >>> e = ensemble([{"day": np.array([0., 30.]), "bv_tv": np.array([0.2, 0.1])},
    ...               {"day": np.array([0., 30.]), "bv_tv": np.array([0.2, 0.3])}])
    >>> e["day"].tolist(), e["bv_tv_mean"].tolist(), round(float(e["bv_tv_sd"][1]), 4), e["n"].tolist()
    ([0.0, 30.0], [0.2, 0.2], 0.1414, [2, 2])
    """
    trajs = [t for t in trajs if "day" in t and len(t["day"])]
    if not trajs:
        return {}
    common = trajs[0]["day"]
    for t in trajs[1:]:
        common = np.intersect1d(common, t["day"])
    out: dict[str, np.ndarray] = {"day": common, "n": np.full(len(common), len(trajs), np.int64)}
    metrics = [m for m in TRAJECTORY_METRICS if all(m in t for t in trajs)]
    for m in metrics:
        stack = np.stack([np.asarray(t[m], np.float64)[np.searchsorted(t["day"], common)] for t in trajs])
        out[f"{m}_mean"] = stack.mean(axis=0)
        out[f"{m}_sd"] = stack.std(axis=0, ddof=1) if len(trajs) > 1 else np.full(len(common), np.nan)
    return out


def write_summary(study: Study) -> dict[str, Any]:
    """Write ``summary.csv``, ``ensemble.csv``, ``summary.h5`` and the plots of ``study``.

    Returns
    -------
    dict
        Paths: ``csv``, ``ensemble_csv``, ``h5``, ``plots`` (list), and ``rows``.
    """

    dpy = DAYS_PER_YEAR
    rows, trajs = [], {}
    for run in study.runs:
        row, traj = run_row(run, read_status(run), run_state(run), dpy)
        rows.append(row)
        if traj:
            trajs[run.run_id] = traj
    groups: dict[tuple[str, str], list[str]] = {}
    for run in study.runs:
        if run.run_id in trajs:
            groups.setdefault((run.input.name, run.scenario.name), []).append(run.run_id)
    ens = {key: ensemble([trajs[i] for i in ids]) for key, ids in groups.items()}
    ens = {k: v for k, v in ens.items() if v}

    out = study.output
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "summary.csv"
    _write_csv(csv_path, rows)
    ens_path = out / "ensemble.csv"
    _write_ensemble_csv(ens_path, ens)
    h5_path = out / "summary.h5"
    _write_h5(h5_path, study, rows, trajs, ens)
    plots = plot_ensembles(study, ens, out / "plots")
    return {"csv": csv_path, "ensemble_csv": ens_path, "h5": h5_path, "plots": plots, "rows": rows}


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols = list(FIRST_COLUMNS)
    extra = sorted({k for r in rows for k in r if k not in cols}, key=_metric_order)
    return cols + extra


def _metric_order(key: str) -> tuple:
    # finals, start/change, then per-year columns by metric and year
    if key.endswith("_final"):
        return (0, key)
    if key.startswith("bv_tv_start") or key.startswith("bv_tv_change"):
        return (1, key)
    base, _, year = key.rpartition("_y")
    if year.isdigit():
        return (2, base, int(year))
    return (3, key)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = _columns(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in cols})
    tmp.replace(path)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    if isinstance(v, str):
        return v.replace("\n", " | ")
    return v


def _write_ensemble_csv(path: Path, ens: dict[tuple[str, str], dict[str, np.ndarray]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["input", "scenario", "metric", "day", "n", "mean", "sd"])
        for (inp, sc), e in ens.items():
            metrics = [k[: -len("_mean")] for k in e if k.endswith("_mean")]
            for m in metrics:
                for i, d in enumerate(e["day"]):
                    w.writerow(
                        [
                            inp,
                            sc,
                            m,
                            f"{d:g}",
                            int(e["n"][i]),
                            _fmt(float(e[f"{m}_mean"][i])),
                            _fmt(float(e[f"{m}_sd"][i])),
                        ]
                    )
    tmp.replace(path)


def _write_h5(path: Path, study: Study, rows: list[dict[str, Any]], trajs: dict, ens: dict) -> None:
    import h5py

    from bonesim._version import __version__
    from bonesim.io.hdf5 import write_table

    cols = _columns(rows)
    table: dict[str, Any] = {}
    for c in cols:
        values = [r.get(c, "") for r in rows]
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
            table[c] = np.asarray(
                values, dtype=np.float64 if any(isinstance(v, float) for v in values) else np.int64
            )
        elif all(isinstance(v, (int, float, np.number)) or v == "" for v in values) and any(
            v != "" for v in values
        ):
            table[c] = np.asarray([np.nan if v == "" else float(v) for v in values], dtype=np.float64)
        else:
            table[c] = np.array([str(v) for v in values], dtype=h5py.string_dtype())
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["bonesim_study_summary"] = 1
        f.attrs["bonesim_version"] = __version__
        f.attrs["study"] = study.name
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        f.attrs["manifest"] = study.toml
        if rows:
            write_table(f, "runs", table)
        g = f.create_group("trajectories")
        for rid, t in trajs.items():
            write_table(g, rid, {k: v for k, v in t.items() if np.asarray(v).dtype.kind in "biuf"})
        g = f.create_group("ensemble")
        for (inp, sc), e in ens.items():
            sub = write_table(g, f"{inp}__{sc}", e)
            sub.attrs["input"], sub.attrs["scenario"] = inp, sc
    tmp.replace(path)


def plot_ensembles(
    study: Study, ens: dict[tuple[str, str], dict[str, np.ndarray]], folder: Path, metric: str = "bv_tv"
) -> list[Path]:
    """BV/TV mean ± SD across seeds over years: one figure per scenario and one per input.

    Returns the written files; none when matplotlib is missing or nothing finished.
    """
    if not ens:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: study plots skipped")
        return []

    dpy = DAYS_PER_YEAR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    by = {"scenario": {}, "input": {}}
    for (inp, sc), e in ens.items():
        if f"{metric}_mean" in e:
            by["scenario"].setdefault(sc, []).append((inp, e))
            by["input"].setdefault(inp, []).append((sc, e))
    for kind, groups in by.items():
        if kind == "input" and len(study.scenarios) < 2:
            continue
        for name, lines in groups.items():
            fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
            for label, e in lines:
                years = e["day"] / dpy
                mean, sd = e[f"{metric}_mean"], e[f"{metric}_sd"]
                (ln,) = ax.plot(years, mean, label=f"{label} (n={int(e['n'][0])})")
                if np.isfinite(sd).any():
                    ax.fill_between(years, mean - sd, mean + sd, color=ln.get_color(), alpha=0.25, lw=0)
            ax.set_xlabel("time after spin-up (years)")
            ax.set_ylabel("BV/TV" if metric == "bv_tv" else metric)
            ax.set_title(f"{study.name}: {kind} {name} (mean ± SD across seeds)", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            p = folder / f"{kind}_{name}.png"
            fig.savefig(p)
            plt.close(fig)
            written.append(p)
    with contextlib.suppress(Exception):
        plt.close("all")
    return written
