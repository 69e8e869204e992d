"""Matplotlib plots of result tables: indices over time and daily physiology, overlaid."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError, InputError
from bonesim.io.outputs import atomic_write
from bonesim.io.result import Result

#: Figure formats ``plot`` writes (matplotlib picks the format from the extension).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".tif", ".tiff")

#: (table, candidate column names, axis label); the first present name is plotted.
METRIC_PANELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("metrics", ("bv_tv",), "BV/TV"),
    ("metrics", ("vbmd_mgha_cm3",), "vBMD / day 0"),
    ("metrics", ("bone_removed",), "resorbed since day 0 (BV/TV)"),
    ("metrics", ("bone_added",), "formed since day 0 (BV/TV)"),
    ("metrics", ("bs_bv_per_mm",), "BS/BV (1/mm)"),
    ("metrics", ("tb_th_um",), "Tb.Th (µm)"),
    ("metrics", ("tb_sp_um",), "Tb.Sp (µm)"),
    ("metrics", ("tb_n_per_mm",), "Tb.N (1/mm)"),
    ("metrics", ("conn_d_per_mm3",), "Conn.D (1/mm³)"),
    ("metrics", ("smi",), "SMI"),
    ("metrics", ("da",), "DA"),
)
#: Per-frame counters drawn as running sums from day 0 (the CA's bone removed / laid down between
#: saved frames, fractions of the volume: ΔBV/TV = formed − resorbed exactly).
CUMULATIVE = frozenset({"bone_removed", "bone_added"})
#: Columns drawn relative to their value at the first frame at day >= 0 (the reference).
RELATIVE = frozenset({"vbmd_mgha_cm3"})
PHYSIOLOGY_PANELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("physiology", ("pth_pM", "pth_pmol_l", "pth"), "PTH (pM)"),
    ("physiology", ("calcium_mM", "calcium_mmol_l", "calcium"), "Ca²⁺ (mM)"),
    ("physiology", ("calcitriol_pM", "calcitriol_pmol_l", "calcitriol"), "calcitriol (pM)"),
    ("physiology", ("estrogen", "estrogen_rel", "estradiol_pg_ml", "estradiol"), "estrogen"),
    ("physiology", ("acf_per_year",), "Ac.f (1/yr)"),
    ("physiology", ("formation_efficiency",), "formation efficiency"),
)
GROUPS = ("metrics", "physiology", "all")


def _panels(infos: Sequence[Result], which: str, columns: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """(table, column, label) of every panel that at least one result can fill."""
    if columns:
        out = []
        for col in columns:
            table = next(
                (t for i in infos for t in ("metrics", "physiology") if col in i.tables.get(t, {})), None
            )
            if table is None:
                raise BonesimError(f"no result has a column {col!r} in /tables/metrics or /tables/physiology")
            out.append((table, col, col))
        return out
    spec = {
        "metrics": METRIC_PANELS,
        "physiology": PHYSIOLOGY_PANELS,
        "all": METRIC_PANELS + PHYSIOLOGY_PANELS,
    }
    if which not in spec:
        raise InputError(f"`which` must be one of {', '.join(repr(g) for g in GROUPS)}, got {which!r}")
    out = []
    for table, names, label in spec[which]:
        for name in names:
            if any(name in i.tables.get(table, {}) for i in infos):
                out.append((table, name, label))
                break
    return out


def _reference_value(day: np.ndarray, y: np.ndarray) -> float:
    """``y`` at the first finite row at day >= 0 (NaN when there is none)."""
    ok = np.flatnonzero((day >= 0) & np.isfinite(y))
    return float(y[ok[0]]) if ok.size else float("nan")


def _labels(infos: Sequence[Result]) -> list[str]:
    names = [i.scenario for i in infos]
    if len(set(names)) < len(names):
        return [f"{i.scenario} ({i.path.stem})" for i in infos]
    return names


def _isolated(y: np.ndarray) -> np.ndarray:
    """Finite values whose neighbours are both missing (NaN): a line through them is invisible."""
    ok = np.isfinite(y)
    before = np.concatenate(([False], ok[:-1]))
    after = np.concatenate((ok[1:], [False]))
    return ok & ~before & ~after


#: Time axes of :func:`plot_metrics`.
X_AXES = ("years", "age")


def _x_of(info: Result, x: str):
    """Day -> x-axis value for one result: years since day 0, or age from ``/tables/physiology``."""
    if x == "years":
        return lambda day: np.asarray(day, float) / DAYS_PER_YEAR
    phys = info.tables.get("physiology", {})
    if "age_years" not in phys or "day" not in phys or len(phys["day"]) < 2:
        raise BonesimError.fix(
            f"{info.path} has no age_years column in /tables/physiology",
            "plot it against time instead (x='years')",
            "plot it against time instead (--x years)",
        )
    pd, age = np.asarray(phys["day"], float), np.asarray(phys["age_years"], float)
    rate = (age[-1] - age[0]) / (pd[-1] - pd[0])

    def to_age(day):
        d = np.asarray(day, float)
        # linear beyond the table's ends too (a metrics row of a spin-up frame or after the last day)
        inside = np.interp(d, pd, age)
        return np.where(
            d < pd[0],
            age[0] + (d - pd[0]) * rate,
            np.where(d > pd[-1], age[-1] + (d - pd[-1]) * rate, inside),
        )

    return to_age


def _groups(names: Sequence[str], ensemble: bool) -> list[tuple[str, list[int]]]:
    """(legend entry, indices of its runs): one run each, or runs with equal entries together."""
    if not ensemble:
        return [(n, [i]) for i, n in enumerate(names)]
    out: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        out.setdefault(n, []).append(i)
    return list(out.items())


def _draw(ax, series: Sequence[tuple[np.ndarray, np.ndarray]], colour: str, label: str) -> None:
    """One line (a run), or the mean of several runs with a min-max band, on the first run's x."""
    import warnings

    x, y = series[0]
    if len(series) > 1:
        ys = np.stack([y] + [np.interp(x, xi, yi, left=np.nan, right=np.nan) for xi, yi in series[1:]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column NaN in every run stays NaN
            y, lo, hi = np.nanmean(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.25, lw=0)
    ax.plot(x, y, color=colour, label=label, lw=1.5)
    lone = _isolated(y)  # e.g. `analyze --frames last`: a value with no neighbour draws no line
    if lone.any():
        ax.plot(x[lone], y[lone], "o", color=colour, ms=5)


def _time_range(
    infos: Sequence[Result], panels: Sequence[tuple[str, str, str]], to_x
) -> tuple[float, float] | None:
    """One x axis for every panel: the span of the tables drawn, so panels line up."""
    spans = [
        to_x[k](np.asarray(i.tables[t]["day"], float))
        for k, i in enumerate(infos)
        for t in {p[0] for p in panels}
        if "day" in i.tables.get(t, {}) and len(i.tables[t]["day"])
    ]
    if not spans:
        return None
    lo = min(float(np.min(d)) for d in spans)
    hi = max(float(np.max(d)) for d in spans)
    if hi <= lo:
        return None
    pad = 0.02 * (hi - lo)
    return lo - pad, hi + pad


def plot_metrics(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    which: str = "all",
    columns: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    size: tuple[float, float] | None = None,
    dpi: int = 120,
    title: str | None = None,
    x: str = "years",
    ensemble: bool = False,
) -> Any:
    """Plot indices and daily physiology of one or more results against time (years) or age.

    One panel per quantity, one line per result file that has it: BV/TV, the
    bone resorbed and formed since day 0 (running sums of the CA's counters), and
    any morphometry columns of ``/tables/metrics`` (BS/BV, Tb.Th, Tb.Sp,
    Tb.N, Conn.D, SMI, DA); PTH, calcium, calcitriol, estrogen, Ac.f and
    formation efficiency from ``/tables/physiology`` when present.

    Parameters
    ----------
    paths : path or sequence of paths
        Result files to overlay (e.g. one per scenario).
    out : path, optional
        Save the figure here (PNG, PDF, SVG by extension).
    which : {'all', 'metrics', 'physiology'}
        Which panel group to draw (ignored when ``columns`` is given).
    columns : sequence of str, optional
        Exactly these columns (looked up in metrics, then physiology).
    labels : sequence of str, optional
        Legend entries, one per path (default: scenario names).
    size : (width, height) in inches, optional
    dpi : int
    title : str, optional
    x : {'years', 'age'}
        Time axis: years since day 0, or the subject's age (the physiology
        table's ``age_years``; every result must have it).
    ensemble : bool
        Runs with the same legend entry (e.g. one scenario, several seeds) are
        drawn as one line, their mean, with a band from their minimum to their
        maximum; the entry says how many runs it holds.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not attached to pyplot; nothing global is changed).

    Examples
    --------
    >>> fig = plot_metrics(["healthy.h5", "postmenopausal.h5"], "compare.png")  # doctest: +SKIP
    """
    from bonesim._optional import require

    require("matplotlib", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InputError("`paths` must name at least one result file")
    infos = [Result.open(p) for p in paths]
    names = (
        list(labels) if labels is not None else [i.scenario for i in infos] if ensemble else _labels(infos)
    )
    if len(names) != len(infos):
        raise InputError(f"`labels` has {len(names)} entries for {len(infos)} files")
    panels = _panels(infos, which, columns)
    if not panels:
        raise BonesimError(
            "nothing to plot: the files have no /tables/metrics or /tables/physiology columns "
            f"for which={which!r}"
        )
    if x not in X_AXES:
        raise InputError(f"`x` must be one of {', '.join(repr(a) for a in X_AXES)}, got {x!r}")
    to_x = [_x_of(i, x) for i in infos]
    groups = _groups(names, ensemble)
    ncols = 1 if len(panels) == 1 else (2 if len(panels) <= 4 else 3)
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=size or (4.2 * ncols, 2.8 * nrows + 0.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    x_range = _time_range(infos, panels, to_x)
    for ax, (table, col, label) in zip(axes, panels, strict=False):
        for g, (name, members) in enumerate(groups):
            series = []
            for m in members:
                t = infos[m].tables.get(table, {})
                if col in t:
                    day = np.asarray(t.get("day", np.arange(len(t[col]), dtype=float)), float)
                    y = np.asarray(t[col], float)
                    if col in CUMULATIVE:  # what each frame's interval removed/added, summed from day 0
                        y = np.cumsum(np.where((day > 0) & np.isfinite(y), y, 0.0))
                    if col in RELATIVE:
                        y = y / _reference_value(day, y)
                    series.append((to_x[m](day), y))
            if series:
                _draw(ax, series, f"C{g % 10}", name if len(members) == 1 else f"{name} (n={len(members)})")
        if x_range is not None:
            ax.set_xlim(*x_range)
        ax.set_ylabel(label)
        ax.set_xlabel("age (years)" if x == "age" else "time (years)")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles, leg = axes[0].get_legend_handles_labels()
    if len(infos) > 1 or title is None:
        fig.legend(handles, leg, loc="outside upper center", ncols=min(4, len(groups)), frameon=False)
    if title:
        fig.suptitle(title)
    if out is not None:
        try:
            with atomic_write(out, overwrite=True, inputs=paths, suffixes=PLOT_SUFFIXES, what="plot") as tmp:
                fig.savefig(tmp)
        except (OSError, ValueError) as exc:
            raise BonesimError(f"cannot write plot {out}: {exc}") from None
    return fig
