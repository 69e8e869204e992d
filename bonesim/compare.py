"""Scenario differences between simulation results: the table behind ``bonesim compare``.

Every run is read at day 0 (the end of its spin-up) and at one common day
(default: the last day every run reached). For each quantity the change of a
run is ``100 · (end / day0 − 1)`` %, and its difference from the reference run
(the first) is that change minus the reference's, in percentage points: the
effect of a scenario *net of* the reference (e.g. postmenopausal net of
healthy on the same bone and seed). Morphometry columns appear once
``bonesim analyze`` has added them to the runs.

Quantities come from ``/tables/metrics`` (one row per saved frame: the value at
the last frame on or before the day) and ``/tables/physiology`` (one row per
simulated day: the row of that day).

>>> import tempfile, pathlib
>>> from bonesim import Volume, phantom, write_volume
>>> p = pathlib.Path(tempfile.mkdtemp()) / "v.h5"
>>> _ = write_volume(p, Volume(phantom.plate((8, 8, 8), 4), 20.0), xdmf=False)
>>> compare([p, p]).rows  # a plain volume has no tables: nothing to compare
[]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError, InputError
from bonesim.io.result import Result

#: (table, column, label) compared when every run has the column, in this order.
QUANTITIES: tuple[tuple[str, str, str], ...] = (
    ("metrics", "bv_tv", "BV/TV"),
    ("physiology", "bmd_rel", "vBMD (rel.)"),
    ("physiology", "tmd_mg_cm3", "TMD (mg HA/cm³)"),
    ("metrics", "bs_bv_per_mm", "BS/BV (1/mm)"),
    ("metrics", "tb_th_um", "Tb.Th (µm)"),
    ("metrics", "tb_sp_um", "Tb.Sp (µm)"),
    ("metrics", "tb_n_per_mm", "Tb.N (1/mm)"),
    ("metrics", "conn_d_per_mm3", "Conn.D (1/mm³)"),
    ("metrics", "conn_d_purified_per_mm3", "Conn.D purified (1/mm³)"),
    ("metrics", "smi", "SMI"),
    ("metrics", "da", "DA"),
    ("metrics", "e_app_z_mpa", "E_app,z (MPa)"),
    ("physiology", "acf_per_year", "Ac.f (1/yr)"),
)


@dataclass
class Comparison:
    """Result of :func:`compare`: the day compared, the runs, one row per quantity."""

    day: float
    runs: list[str]
    scenarios: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    same_input: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN written as null)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return {
            "day": self.day,
            "runs": self.runs,
            "scenarios": self.scenarios,
            "same_input": self.same_input,
            "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows],
        }


def _value_at(info: Result, table: str, column: str, day: float) -> float:
    t = info.tables.get(table, {})
    days = np.asarray(t.get("day", []), dtype=float)
    values = np.asarray(t.get(column, []), dtype=float)
    if days.size == 0 or values.size != days.size:
        return float("nan")
    i = int(np.searchsorted(days, day + 1e-9, side="right")) - 1  # last row on or before `day`
    return float(values[i]) if i >= 0 else float("nan")


def _input_digest(info: Result) -> str | None:
    cfg = info.state_attrs.get("config")
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            return None
    return cfg.get("input_digest") if isinstance(cfg, dict) else None


def _change(a: float, b: float) -> float:
    return 100.0 * (b / a - 1.0) if a and math.isfinite(a) and math.isfinite(b) else float("nan")


def compare(paths: Sequence[str | os.PathLike], day: float | None = None) -> Comparison:
    """Compare runs at day 0 and at ``day`` (default: the last day all reached); the first is the reference.

    Parameters
    ----------
    paths : sequence of result files (at least two)
    day : float, optional
        Simulated day to compare at (≥ 0 and reached by every run).

    Returns
    -------
    Comparison
        ``rows``: ``{"quantity", "label", "table", "day0": [...], "end": [...],
        "change_pct": [...], "net_pp": [...]}`` with one entry per run;
        ``net_pp[i]`` = ``change_pct[i] − change_pct[0]`` (percentage points).
        ``same_input`` is False when the runs started from different bone.
    """
    if len(paths) < 2:
        raise InputError("compare needs at least two result files")
    infos = [Result.open(p) for p in paths]
    last = min(float(i.days[-1]) for i in infos)
    if day is None:
        day = last
    elif not (0.0 <= day <= last):
        raise BonesimError(f"day {day:g} is outside 0 … {last:g}, the days every run reached")
    digests = {_input_digest(i) for i in infos}
    out = Comparison(
        day=float(day),
        runs=[str(p) for p in paths],
        scenarios=[i.scenario for i in infos],
        same_input=len(digests) == 1 and None not in digests,
    )
    for table, column, label in QUANTITIES:
        if not all(column in i.tables.get(table, {}) for i in infos):
            continue
        day0 = [_value_at(i, table, column, 0.0) for i in infos]
        end = [_value_at(i, table, column, day) for i in infos]
        change = [_change(a, b) for a, b in zip(day0, end, strict=True)]
        out.rows.append(
            {
                "quantity": column,
                "label": label,
                "table": table,
                "day0": day0,
                "end": end,
                "change_pct": change,
                "net_pp": [c - change[0] for c in change],
            }
        )
    return out


@dataclass(frozen=True)
class ComparisonText:
    """The words and cells of a comparison, shared by the text table and the HTML report."""

    title: str
    notes: list[str]
    names: list[str]
    rows: list[tuple[str, list[str]]]
    footnote: str


def format_cell(end: float, change_pct: float, net_pp: float | None) -> str:
    """One run's cell: the value at the day, its change since day 0 and (not the reference) its net effect.

    >>> format_cell(0.2256, -5.13, -2.2), format_cell(0.2378, -2.9, None)
    ('0.2256 (-5.1 %, net -2.2 pp)', '0.2378 (-2.9 %)')
    """
    if net_pp is None:
        return f"{end:.4g} ({change_pct:+.1f} %)"
    return f"{end:.4g} ({change_pct:+.1f} %, net {net_pp:+.1f} pp)"


def comparison_text(c: Comparison) -> ComparisonText:
    """The title, notes, run names, cells and footnote of ``c`` (plain text; escape it for HTML)."""
    names = [
        f"{s} ({os.path.basename(r)})" if c.scenarios.count(s) > 1 else s
        for s, r in zip(c.scenarios, c.runs, strict=True)
    ]
    notes = [] if c.same_input else ["the runs did not all start from the same input bone"]
    if not c.rows:
        notes.append("no quantity that every run has (run `bonesim analyze` for morphometry)")
    rows = [
        (
            r["label"],
            [
                format_cell(end, ch, None if i == 0 else net)
                for i, (end, ch, net) in enumerate(zip(r["end"], r["change_pct"], r["net_pp"], strict=True))
            ],
        )
        for r in c.rows
    ]
    return ComparisonText(
        title=f"day 0 -> day {c.day:g} ({c.day / DAYS_PER_YEAR:.2f} years); reference: {names[0]}",
        notes=notes,
        names=names,
        rows=rows,
        footnote="value at the day (change since day 0 in %, net of the reference in percentage points)",
    )


def format_table(c: Comparison) -> str:
    """The comparison as a plain-text table: per quantity the change of every run and its net effect."""
    t = comparison_text(c)
    lines = [t.title] + [f"note: {n}" for n in t.notes]
    if not t.rows:
        return "\n".join(lines)
    width = max(len(label) for label, _ in t.rows)
    col = max(len(x) for _, cells in t.rows for x in cells)
    head = f"{'quantity':<{width}}  " + "  ".join(f"{n[:col]:>{col}}" for n in t.names)
    lines += [head, "-" * len(head)]
    lines += [f"{label:<{width}}  " + "  ".join(f"{x:>{col}}" for x in cells) for label, cells in t.rows]
    lines.append(t.footnote)
    return "\n".join(lines)
