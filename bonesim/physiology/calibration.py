"""Clinical calibration: the targets of ``data/reference/clinical_rates.csv`` against the model.

Each target row names a scenario (a preset, optionally with overrides written
``name[section.key=value,...]``), a quantity over a period (years from day 0), the
target, its tolerance, and its source. Quantities:

``bv_rate``
    mean rate of change of bone volume, %/yr: ``100 (BV(t1)/BV(t0) - 1) / (t1 - t0)``.
``bv_change``
    change of bone volume over the period, %.
``loss_fraction``
    ``(1 - BV(t0)) / (1 - BV(t1))``: the share of the loss to ``t1`` that happened by ``t0``.
``ratio:<column>``
    mean of a table column over the period divided by its healthy reference value.
``mean:<column>``
    mean of a column over the period.

The bone volume is the physiology-level prediction ``bv_rel`` of
:func:`~bonesim.physiology.run_physiology`: remodeling space plus the permanent
deficit ``Ac.f * E * BS/BV * (1 - f)`` (the consistency mapping the CA must follow).
``kind`` is ``calibration`` (scored, the model was tuned to it), ``check`` (scored,
not tuned; an independent plausibility check) or ``info`` (reported only, e.g. a
different skeletal site).

>>> rows = load_targets()
>>> sorted({r.kind for r in rows})
['calibration', 'check', 'info']
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bonesim._resources import data_dir
from bonesim.errors import BonesimError
from bonesim.physiology.factors import DAYS_PER_YEAR, FACTOR_PARAMS, FactorParams
from bonesim.physiology.model import run_physiology
from bonesim.physiology.scenario import Scenario, load_scenario

__all__ = [
    "PATTERNS",
    "Target",
    "TargetResult",
    "evaluate",
    "format_results",
    "load_targets",
    "period_rate",
    "resolve_spec",
]


@dataclass(frozen=True)
class Target:
    """One clinical target (a row of ``clinical_rates.csv``)."""

    id: str
    scenario: str
    quantity: str
    t0_years: float
    t1_years: float
    target: float
    tolerance: float
    unit: str
    kind: str
    evidence: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class TargetResult:
    """A target with the value the model gives and whether it is within tolerance."""

    target: Target
    value: float

    @property
    def passed(self) -> bool | None:
        if self.target.kind == "info":
            return None
        return bool(abs(self.value - self.target.target) <= self.target.tolerance)


def load_targets(path=None) -> list[Target]:
    """Read the clinical targets (default ``data/reference/clinical_rates.csv``)."""
    path = path or data_dir() / "reference" / "clinical_rates.csv"
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append(
                Target(
                    id=row["id"],
                    scenario=row["scenario"],
                    quantity=row["quantity"],
                    t0_years=float(row["t0_years"]),
                    t1_years=float(row["t1_years"]),
                    target=float(row["target"]),
                    tolerance=float(row["tolerance"]),
                    unit=row["unit"],
                    kind=row["kind"],
                    evidence=row["evidence"],
                    source=row["source"],
                    note=row.get("note", "") or "",
                )
            )
    return out


_SPEC = re.compile(r"^([^\[\]]+)(?:\[(.*)\])?$")


def resolve_spec(spec: str) -> Scenario:
    """A scenario from ``name`` or ``name[section.key=value,...]``.

    >>> resolve_spec("healthy-adult[vitamin_d.level_ng_ml=40]")["vitamin_d"]["level_ng_ml"]
    40.0
    """
    m = _SPEC.match(spec.strip())
    if not m:
        raise BonesimError(f"bad scenario spec {spec!r}")
    scn = load_scenario(m.group(1))
    if m.group(2):
        over: dict[str, dict] = {}
        for item in m.group(2).split(","):
            key, _, val = item.partition("=")
            sec, _, k = key.strip().partition(".")
            v: object = val.strip()
            if v in ("true", "false"):
                v = v == "true"
            else:
                try:
                    v = float(v)
                except ValueError:
                    v = str(v).strip('"')
            over.setdefault(sec, {})[k] = v
        scn = scn.replace(**over)
        scn = Scenario(spec, scn.description, scn.values, scn.given)
    return scn


def _idx(t_years: float) -> int:
    return round(t_years * DAYS_PER_YEAR)


def period_rate(bv: np.ndarray, t0: float, t1: float) -> float:
    """Mean rate of change of ``bv`` (daily samples) between t0 and t1 years, in %/yr."""
    return 100.0 * (bv[_idx(t1)] / bv[_idx(t0)] - 1.0) / (t1 - t0)


def quantity(
    table: dict[str, np.ndarray],
    name: str,
    t0: float,
    t1: float,
    reference: dict[str, np.ndarray] | None = None,
) -> float:
    """Evaluate one calibration quantity (see module docstring) on a daily table.

    ``ratio:`` quantities divide by the healthy reference value of the column (the first
    row of ``reference``, default: this table's day 0).
    """
    bv = table["bv_rel"]
    i0, i1 = _idx(t0), _idx(t1)
    if name == "bv_rate":
        return period_rate(bv, t0, t1)
    if name == "bv_change":
        return 100.0 * (bv[i1] / bv[i0] - 1.0)
    if name == "loss_fraction":
        return float((1.0 - bv[i0]) / (1.0 - bv[i1]))
    kind, _, col = name.partition(":")
    if col not in table:
        raise BonesimError(f"unknown quantity {name!r}")
    if kind == "ratio":
        ref = (reference or table)[col][0]
        return float(np.mean(table[col][i0 : i1 + 1]) / ref)
    if kind == "mean":
        return float(np.mean(table[col][i0 : i1 + 1]))
    raise BonesimError(f"unknown quantity {name!r}")


# qualitative patterns required by the issue: (description, function of the results by id)
PATTERNS: list[tuple[str, Callable[[dict[str, float]], bool]]] = [
    (
        "aging woman loses more than aging man (20->90 and 25->45)",
        lambda v: (
            v["aging-woman-20-90"] < v["aging-man-20-90"] and v["aging-woman-young"] < v["aging-man-young"]
        ),
    ),
    (
        "menopause: loss fastest in the first 2 yr after FMP, slower before, slowest 2-7 yr after",
        lambda v: v["meno-first-2y"] < v["meno-before-fmp"] < v["meno-2-7y"] < 0,
    ),
    (
        "glucocorticoid: year-1 loss faster than the later yearly rate",
        lambda v: v["gc-year1"] < v["gc-later"] < 0,
    ),
    (
        "vitamin-D deficiency raises PTH and turnover",
        lambda v: v["vitd-pth"] > 1.05 and v["vitd-turnover"] > 1.0,
    ),
]


def evaluate(
    targets: list[Target] | None = None,
    *,
    params: FactorParams = FACTOR_PARAMS,
    scenario: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[TargetResult], list[tuple[str, bool | None]]]:
    """Run every scenario the targets need (once each) and score the targets.

    Parameters
    ----------
    targets : list of Target, optional
        Default: :func:`load_targets`.
    params : FactorParams
        Factor coefficients (for calibration studies).
    scenario : str, optional
        Only targets whose scenario starts with this name.
    progress : callable, optional
        Called with each scenario name before it runs.

    Returns
    -------
    results, patterns
        The scored targets and the qualitative patterns (``None`` where a pattern's
        targets were not evaluated).
    """
    targets = load_targets() if targets is None else targets
    if scenario is not None:
        have = sorted({t.scenario.split("[")[0] for t in targets})
        targets = [t for t in targets if t.scenario.split("[")[0] == scenario]
        if not targets:
            raise BonesimError(
                f"no clinical target for scenario {scenario!r}; targets exist for: {', '.join(have)}"
            )
    years: dict[str, float] = {}
    for t in targets:
        years[t.scenario] = max(years.get(t.scenario, 0.0), t.t1_years)
    tables = {}
    for spec, yrs in years.items():
        if progress:
            progress(spec)
        tables[spec] = run_physiology(resolve_spec(spec), yrs, params=params)
    ref = run_physiology("healthy-adult", 1.0 / DAYS_PER_YEAR, params=params)
    results = [
        TargetResult(t, quantity(tables[t.scenario], t.quantity, t.t0_years, t.t1_years, ref))
        for t in targets
    ]
    by_id = {r.target.id: r.value for r in results}
    pats: list[tuple[str, bool | None]] = []
    for desc, fn in PATTERNS:
        try:
            pats.append((desc, bool(fn(by_id))))
        except KeyError:
            pats.append((desc, None))
    return results, pats


def format_results(results: list[TargetResult], patterns: list[tuple[str, bool | None]] | None = None) -> str:
    """A plain-text table: id, scenario, period, simulated, target +- tolerance, status."""
    lines = [f"{'target':<22} {'scenario':<40} {'period (yr)':>11} {'simulated':>10} {'target':>16}  status"]
    for r in results:
        t = r.target
        status = {True: "PASS", False: "FAIL", None: "info"}[r.passed]
        lines.append(
            f"{t.id:<22} {t.scenario[:40]:<40} {t.t0_years:>5g}-{t.t1_years:<5g} {r.value:>10.3f} "
            f"{t.target:>8.3g} ± {t.tolerance:<5.3g}  {status}  {t.unit}"
        )
    for desc, ok in patterns or []:
        lines.append(f"pattern: {desc}: {({True: 'PASS', False: 'FAIL', None: 'n/a'})[ok]}")
    return "\n".join(lines)
