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
``bmd_change``, ``bmd_rate``
    as ``bv_change`` / ``bv_rate`` for the mineral content ``bmd_rel`` (BV x TMD, the quantity
    DXA and QCT measure).
``balance_rate``
    rate of the BMU-balance part of the bone volume (``bv_rel_balance``), %/yr.

A row with a ``comparator`` (a scenario spec) scores the *difference* value(scenario) -
value(comparator), for ``ratio:`` quantities the quotient: a treatment arm against its
placebo arm.

The bone volume is the physiology-level prediction ``bv_rel`` of
:func:`~bonesim.physiology.run_physiology`: remodeling space plus the permanent
deficit ``Ac.f * E * BS/BV * (1 - f)`` (the consistency mapping the CA must follow).
``kind`` is ``fitted`` (a model coefficient was fitted to it: it does not validate the
model), ``independent`` (not used in any fit: the validation) or ``info`` (reported
only). ``evidence`` grades the target: ``read`` (the number was read in retrieved
text of the source), ``memory`` (from memory, not verified), ``assumed`` (no direct
source). ``site``, ``modality`` and ``mapping`` say where and how the target was
measured and how the model's trabecular output is mapped to it.

>>> rows = load_targets()
>>> sorted({r.kind for r in rows})
['fitted', 'independent', 'info']
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
    site: str = ""
    modality: str = ""
    mapping: str = ""
    comparator: str = ""


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
                    site=row.get("site", "") or "",
                    modality=row.get("modality", "") or "",
                    mapping=row.get("mapping", "") or "",
                    comparator=row.get("comparator", "") or "",
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
    if name in ("bv_rate", "bmd_rate", "balance_rate"):
        col = {"bv_rate": "bv_rel", "bmd_rate": "bmd_rel", "balance_rate": "bv_rel_balance"}[name]
        return period_rate(table[col], t0, t1)
    if name in ("bv_change", "bmd_change"):
        b = table["bv_rel" if name == "bv_change" else "bmd_rel"]
        return 100.0 * (b[i1] / b[i0] - 1.0)
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
        for spec in (t.scenario, t.comparator):
            if spec:
                years[spec] = max(years.get(spec, 0.0), t.t1_years)
    tables = {}
    for spec, yrs in years.items():
        if progress:
            progress(spec)
        tables[spec] = run_physiology(resolve_spec(spec), yrs, params=params)
    ref = run_physiology("healthy-adult", 1.0 / DAYS_PER_YEAR, params=params)

    def value(t: Target) -> float:
        v = quantity(tables[t.scenario], t.quantity, t.t0_years, t.t1_years, ref)
        if t.comparator:
            c = quantity(tables[t.comparator], t.quantity, t.t0_years, t.t1_years, ref)
            v = v / c if t.quantity.startswith("ratio:") else v - c
        return v

    results = [TargetResult(t, value(t)) for t in targets]
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
    head = (
        f"{'target':<22} {'kind':<11} {'evidence':<8} {'site/modality':<24} {'period (yr)':>11} "
        f"{'simulated':>10} {'target':>16}  status"
    )
    lines = []
    for kind, title in (
        ("fitted", "Fitted rows (a coefficient was fitted to them: not validation)"),
        ("independent", "Independent rows (no coefficient fitted to them: the validation)"),
        ("info", "Information rows (reported, not scored)"),
    ):
        rows = [r for r in results if r.target.kind == kind]
        if not rows:
            continue
        lines += [title + ":", head]
        for r in rows:
            t = r.target
            status = {True: "PASS", False: "FAIL", None: "info"}[r.passed]
            site = f"{t.site} {t.modality}".strip()[:24]
            vs = " (vs comparator)" if t.comparator else ""
            lines.append(
                f"{t.id:<22} {t.kind:<11} {t.evidence:<8} {site:<24} {t.t0_years:>5g}-{t.t1_years:<5g} "
                f"{r.value:>10.3f} {t.target:>8.3g} ± {t.tolerance:<5.3g}  {status}  {t.unit}{vs}"
            )
    n_ind = [r for r in results if r.target.kind == "independent"]
    n_fit = [r for r in results if r.target.kind == "fitted"]
    lines.append(
        f"summary: fitted {sum(bool(r.passed) for r in n_fit)}/{len(n_fit)} pass, "
        f"independent {sum(bool(r.passed) for r in n_ind)}/{len(n_ind)} pass"
    )
    for desc, ok in patterns or []:
        lines.append(f"pattern: {desc}: {({True: 'PASS', False: 'FAIL', None: 'n/a'})[ok]}")
    return "\n".join(lines)
