"""CA-level validation: scenarios through the CA engine on a trabecular volume.

Each row of ``data/reference/ca_checks.csv`` names a scenario, the years to
simulate, a quantity over a period (``bv_rate`` %/yr or ``bv_change`` %, measured on
the engine's BV/TV series after its spin-up) and a target: a number (a clinical
rate) or ``phys``, the physiology-level prediction ``bv_rel`` of the same scenario
over the same period (the consistency mapping Ac.f * E * BS/BV * (1 - f) plus the
remodeling space), computed with the volume's own BS/BV (marching-cubes area at
the 127.5 level; loss is proportional to BS/BV, see docs/model.md). Rows other than the
healthy one are scored *net of the healthy run* on the same volume and seed, the
control the CA prototype needed: a small phantom drifts a little even at balance.
Numeric (clinical) targets compare the net CA value scaled to the BS/BV of the
scenario (13.33 /mm, vertebral trabecular bone), since loss is proportional to
BS/BV and a phantom thick enough not to perforate has a lower BS/BV.

The default volume is a sheet gyroid (plate-like, fully connected) of 64^3 voxels at
20 um with ~250 um thick sheets (BV/TV 0.6), thick enough that its columns reach their full
depth E = 50 um (columns stop one layer short of the opposite surface of thinner elements,
docs/model.md "Topology").

References
----------
.. [1] Badilatti SD, Christen P, Parkinson I, Müller R. Load-adaptive bone remodeling
   simulations reveal osteoporotic microstructural and mechanical changes in whole
   human vertebrae. J Biomech 49:3770-3779 (2016).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bonesim._resources import data_dir
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError

__all__ = ["CACheck", "CAResult", "default_phantom", "format_ca_results", "run_ca_checks"]


@dataclass(frozen=True)
class CACheck:
    """One row of ``ca_checks.csv``."""

    id: str
    scenario: str
    years: float
    quantity: str
    t0_years: float
    t1_years: float
    target: str
    tolerance: float
    unit: str
    source: str
    note: str

    @property
    def check_relative(self) -> bool:
        """Targets ``phys`` take a relative tolerance (fraction of the physiology value)."""
        return self.target == "phys"


@dataclass(frozen=True)
class CAResult:
    """A CA-level check: raw and net CA value, physiology value, target, pass/fail."""

    check: CACheck
    ca_raw: float
    ca_net: float
    physiology: float
    target: float
    bs_bv_per_mm: float = float("nan")
    scale: float = 1.0
    t0_years: float = 0.0
    t1_years: float = 0.0

    @property
    def value(self) -> float:
        """The scored value: raw for the healthy control, else net (x BS/BV scale for clinical targets)."""
        return self.ca_raw if self.check.id == "ca-healthy" else self.ca_net * self.scale

    @property
    def passed(self) -> bool:
        tol = self.check.tolerance * abs(self.target) if self.check.check_relative else self.check.tolerance
        return bool(abs(self.value - self.target) <= tol)


def load_ca_checks(path=None) -> list[CACheck]:
    """Read ``data/reference/ca_checks.csv``."""
    path = path or data_dir() / "reference" / "ca_checks.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            CACheck(
                id=r["id"],
                scenario=r["scenario"],
                years=float(r["years"]),
                quantity=r["quantity"],
                t0_years=float(r["t0_years"]),
                t1_years=float(r["t1_years"]),
                target=r["target"],
                tolerance=float(r["tolerance"]),
                unit=r["unit"],
                source=r["source"],
                note=r.get("note", "") or "",
            )
            for r in csv.DictReader(fh)
        ]


def default_phantom(size: int = 64, voxel_size_um: float = 20.0, bvtv: float = 0.6):
    """Sheet-gyroid phantom: period = ``size`` voxels; at 64^3, 20 um, BV/TV 0.6 the sheets are ~250 um thick.

    >>> v = default_phantom(32)
    >>> v.shape, round(v.bv_tv, 1)
    ((32, 32, 32), 0.6)
    """
    from bonesim.phantom import gyroid, gyroid_sheet_level_for
    from bonesim.volume import Volume

    level = gyroid_sheet_level_for(bvtv)
    return Volume(gyroid((size, size, size), size, level, sheet=True), voxel_size_um=voxel_size_um)


def bs_bv_per_mm(volume) -> float:
    """Bone surface / bone volume (1/mm) of a bone-fraction volume: marching-cubes area at 127.5.

    The mesh spans voxel centres, so a surface crossing the box is (n-1)/n short in each
    direction: a 200 um plate in a 40^3 box gives 9.5 /mm instead of 2/200 um = 10 /mm.

    >>> from bonesim.phantom import plate
    >>> from bonesim.volume import Volume
    >>> round(bs_bv_per_mm(Volume(plate((40, 40, 40), thickness=10), voxel_size_um=20)), 1)
    9.5
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    h_mm = volume.voxel_size_um / 1000.0
    data = volume.data.astype(np.float32)
    verts, faces, _, _ = marching_cubes(data, 127.5, spacing=(h_mm,) * 3)
    bv = float(data.sum()) / 255.0 * h_mm**3
    return float(mesh_surface_area(verts, faces)) / bv


def _quantity(days: np.ndarray, bv: np.ndarray, name: str, t0: float, t1: float) -> float:
    b0, b1 = np.interp([t0 * DAYS_PER_YEAR, t1 * DAYS_PER_YEAR], days, bv)
    if name == "bv_rate":
        return 100.0 * (b1 / b0 - 1.0) / (t1 - t0)
    if name == "bv_change":
        return 100.0 * (b1 / b0 - 1.0)
    raise BonesimError(f"unknown CA quantity {name!r}")


def run_ca_checks(
    *,
    scenario: str | None = None,
    backend: str = "auto",
    volume_path: str | None = None,
    years: float | None = None,
    seed: int = 0,
    checks: list[CACheck] | None = None,
    volume=None,
    progress: Callable[[str], None] | None = None,
) -> list[CAResult]:
    """Run the CA-level checks through :func:`bonesim.ca.engine.simulate`; the healthy control always runs.

    ``years`` overrides each row's run length (periods are clipped to it).
    """
    from bonesim.ca.engine import simulate
    from bonesim.physiology.calibration import resolve_spec
    from bonesim.physiology.model import ScenarioTable, run_physiology

    checks = load_ca_checks() if checks is None else checks
    if scenario is not None:
        checks = [c for c in checks if c.scenario.split("[")[0] == scenario or c.id == "ca-healthy"]
    if volume is None:
        if volume_path is not None:
            from bonesim.io.hdf5 import read_volume

            volume = read_volume(volume_path)
        else:
            volume = default_phantom()
    run_years: dict[str, float] = {"healthy-adult": 0.0}
    for c in checks:
        y = years if years is not None else c.years
        run_years[c.scenario] = max(run_years.get(c.scenario, 0.0), y)
    horizon = max(run_years.values())
    run_years["healthy-adult"] = horizon
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    phys: dict[str, dict[str, np.ndarray]] = {}
    bs_bv = bs_bv_per_mm(volume)
    scale: dict[str, float] = {}
    for spec, y in run_years.items():
        scn = resolve_spec(spec)
        table = run_physiology(scn, y)
        # the physiology-level prediction for this volume's BS/BV (the CA columns do not depend on it)
        phys[spec] = run_physiology(scn.replace(remodeling={"bs_bv_per_mm": bs_bv}), y)
        scale[spec] = scn["remodeling"]["bs_bv_per_mm"] / bs_bv
        if progress:
            progress(f"CA run: {spec}, {y:g} years on {volume.shape} voxels at {volume.voxel_size_um:g} um")
        res = simulate(
            volume,
            years=y,
            backend=backend,
            seed=seed,
            save_every=30,
            scenario=ScenarioTable(scn.name, scn.to_toml(), table, scn),
        )
        series[spec] = (np.asarray(res.metrics["day"], float), np.asarray(res.metrics["bv_tv"], float))
    out = []
    for c in checks:
        y = run_years[c.scenario]
        t0, t1 = min(c.t0_years, y), min(c.t1_years, y)
        if (t0, t1) != (c.t0_years, c.t1_years) and c.target != "phys":
            continue  # a clinical target needs its own period; the run is too short (``years`` override)
        if t1 <= t0:
            t0, t1 = 0.0, y
        days, bv = series[c.scenario]
        raw = _quantity(days, bv, c.quantity, t0, t1)
        hd, hb = series["healthy-adult"]
        net = raw - _quantity(hd, hb, c.quantity, t0, t1)
        pt = phys[c.scenario]
        pval = _quantity(pt["day"], pt["bv_rel"], c.quantity, t0, t1)
        if c.target == "phys":
            out.append(CAResult(c, raw, net, pval, pval, bs_bv, 1.0, t0, t1))
        else:
            out.append(CAResult(c, raw, net, pval, float(c.target), bs_bv, scale[c.scenario], t0, t1))
    return out


def format_ca_results(results: list[CAResult]) -> str:
    """Plain-text table of the CA-level checks."""
    if results:
        lines = [
            f"volume BS/BV {results[0].bs_bv_per_mm:.2f} /mm (marching cubes); 'scored' = CA net x BS/BV scale"
        ]
    else:
        lines = []
    lines.append(
        f"{'check':<22} {'scenario':<34} {'period':>9} {'CA raw':>8} {'CA net':>8} {'physiol':>8} {'scored':>8} "
        f"{'target':>15}  status"
    )
    for r in results:
        c = r.check
        tol = f"{c.tolerance:.0%}" if c.check_relative else f"{c.tolerance:<4g}"
        tgt = f"{r.target:7.3f} ± {tol}"
        lines.append(
            f"{c.id:<22} {c.scenario[:34]:<34} {r.t0_years:>4g}-{r.t1_years:<4g} {r.ca_raw:8.3f} {r.ca_net:8.3f} "
            f"{r.physiology:8.3f} {r.value:8.3f} {tgt:>15}  {'PASS' if r.passed else 'FAIL'}  {c.unit}"
        )
    return "\n".join(lines)
