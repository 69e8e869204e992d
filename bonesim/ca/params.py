"""Parameters of the remodeling cellular automaton, in physical units.

:class:`RemodelingParams` holds the basic-multicellular-unit (BMU) cycle of
healthy adult trabecular bone by default; :func:`params_from_table` turns a
daily parameter table (what ``bonesim.physiology`` produces) into one
:class:`RemodelingParams` per day. The engine converts either into the
per-step integer thresholds the kernels use (see ``docs/model.md``).

>>> p = RemodelingParams()
>>> p.acf_per_year, p.erosion_depth_um, p.formation_efficiency
(0.3, 50.0, 1.0)
>>> RemodelingParams(formation_efficiency=-0.1)
Traceback (most recent call last):
...
bonesim.errors.InputError: `formation_efficiency` must be in [0, 1.5], got -0.1

References
----------
.. [1] Eriksen EF. Normal and pathological remodeling of human trabecular bone:
   three dimensional reconstruction of the remodeling sequence in normals and in
   metabolic bone disease. Endocr Rev 7:379-408 (1986).
.. [2] Parfitt AM. Osteonal and hemi-osteonal remodeling: the spatial and
   temporal framework for signal traffic in adult human bone. J Cell Biochem
   55:273-286 (1994).
.. [3] Recker R, Lappe J, Davies KM, Heaney R. Bone remodeling increases
   substantially in the years after menopause and remains increased in older
   osteoporosis patients. J Bone Miner Res 19:1628-1633 (2004).
.. [4] Dempster DW et al. Standardized nomenclature, symbols, and units for bone
   histomorphometry: a 2012 update of the report of the ASBMR Histomorphometry
   Nomenclature Committee. J Bone Miner Res 28:2-17 (2013).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bonesim._validation import check_in_range, check_positive
from bonesim.defaults import HEALTHY, MAX_REVERSAL_STEPS
from bonesim.errors import BonesimError, InputError

#: Columns of the daily parameter table that drive the CA (besides ``day``).
TABLE_COLUMNS = (
    "acf_per_year",
    "erosion_depth_um",
    "resorption_days",
    "reversal_days",
    "mar_um_per_day",
    "formation_efficiency",
)
#: Optional columns of the daily table (their default where a table lacks them, e.g. one written
#: before they existed): ``modeling_um_per_day``, the physiology's modeling-based formation.
OPTIONAL_COLUMNS = {"modeling_um_per_day": 0.0}


@dataclass(frozen=True)
class RemodelingParams:
    """The BMU cycle of the remodeling CA (healthy adult trabecular bone by default).

    Parameters
    ----------
    acf_per_year : float
        Activation frequency Ac.f [1/yr]: the fraction of the bone surface on
        which a new remodeling cycle starts per year. 0.30/yr: healthy adult
        iliac trabecular bone is 0.2-0.5/yr [1]_ [3]_.
    erosion_depth_um : float
        Final depth E of a resorption cavity [µm], measured along the inward
        normal of the surface; 50 µm [1]_ (mean eroded depth of trabecular
        cavities ≈ 50 µm, close to the mean wall thickness of completed
        packets, ≈ 50-60 µm, [4]_).
    footprint_radius_um : float
        Radius L of the cavity footprint on the surface [µm]. Trabecular
        remodeling packets are hundreds of µm long and a few tens deep
        ("hemi-osteons", [2]_); 100 µm (a footprint 200 µm across) is a
        conservative default that fits test phantoms of a few mm.
    resorption_days : float
        Duration of the resorption phase [d] in which E is excavated; 35 d
        (30-40 d in trabecular bone, [1]_ [2]_).
    reversal_days : float
        Delay between the end of resorption and the start of formation [d];
        20 d (the reversal phase of [1]_ [2]_). At most 62 steps.
    mar_um_per_day : float
        Mineral apposition rate MAR [µm/d] of the refilling osteoblasts;
        0.6 µm/d (healthy adults 0.5-0.7 µm/d, [4]_).
    formation_efficiency : float
        f: the bone a BMU lays back as a fraction of what it resorbed. 1.0 in
        the healthy steady state; f < 1 leaves a deficit (1-f)·E per cycle,
        the root of age-related bone loss [1]_. In [0, 1.5].
    modeling_um_per_day : float
        Modeling-based formation on quiescent surfaces [µm/d of new bone over
        the whole bone surface], the physiology's ``modeling_um_per_day``
        (anabolic drugs: teriparatide, abaloparatide, romosozumab; 0 without
        them). The CA lets marrow voxels that touch quiescent bone across a
        face start one voxel of bone with probability 1 − (1 − rate/h)^dt per
        step (:func:`bonesim.ca.schedule.modeling_probability`). At most 100.
    neighbourhood : {6, 26}
        Connectivity of surface detection, lateral recruitment and formation
        support (6 faces or 26 faces/edges/corners).
    dt_days : float
        Length of one CA step [d]; 1 by default.

    References
    ----------
    .. [1] Eriksen EF. Endocr Rev 7:379-408 (1986).
    .. [2] Parfitt AM. J Cell Biochem 55:273-286 (1994).
    .. [3] Recker R et al. J Bone Miner Res 19:1628-1633 (2004).
    .. [4] Dempster DW et al. J Bone Miner Res 28:2-17 (2013).

    Examples
    --------
    >>> RemodelingParams(acf_per_year=0.8).replace(neighbourhood=6).neighbourhood
    6
    """

    acf_per_year: float = HEALTHY["acf_per_year"]
    erosion_depth_um: float = HEALTHY["erosion_depth_um"]
    footprint_radius_um: float = HEALTHY["footprint_radius_um"]
    resorption_days: float = HEALTHY["resorption_days"]
    reversal_days: float = HEALTHY["reversal_days"]
    mar_um_per_day: float = HEALTHY["mar_um_per_day"]
    formation_efficiency: float = HEALTHY["formation_efficiency"]
    modeling_um_per_day: float = 0.0
    neighbourhood: int = 26
    dt_days: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "acf_per_year", check_in_range(self.acf_per_year, 0.0, 50.0, name="acf_per_year"))
        set_(self, "erosion_depth_um", check_positive(self.erosion_depth_um, name="erosion_depth_um"))
        set_(
            self, "footprint_radius_um", check_positive(self.footprint_radius_um, name="footprint_radius_um")
        )
        set_(self, "resorption_days", check_positive(self.resorption_days, name="resorption_days"))
        set_(self, "reversal_days", check_in_range(self.reversal_days, 0.0, 1e6, name="reversal_days"))
        set_(self, "mar_um_per_day", check_positive(self.mar_um_per_day, name="mar_um_per_day"))
        set_(
            self,
            "formation_efficiency",
            check_in_range(self.formation_efficiency, 0.0, 1.5, name="formation_efficiency"),
        )
        set_(
            self,
            "modeling_um_per_day",
            check_in_range(self.modeling_um_per_day, 0.0, 100.0, name="modeling_um_per_day"),
        )
        set_(self, "dt_days", check_positive(self.dt_days, name="dt_days"))
        if self.neighbourhood not in (6, 26):
            raise InputError(f"`neighbourhood` must be 6 or 26, got {self.neighbourhood!r}")
        set_(self, "neighbourhood", int(self.neighbourhood))
        if round(self.reversal_days / self.dt_days) > MAX_REVERSAL_STEPS:
            raise InputError(
                f"`reversal_days` must be at most {MAX_REVERSAL_STEPS} steps "
                f"({MAX_REVERSAL_STEPS * self.dt_days:g} d at dt_days={self.dt_days:g}), got {self.reversal_days!r}"
            )

    def replace(self, **changes: Any) -> RemodelingParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_voxel_size(self, voxel_size_um: float) -> None:
        """Raise ``ValueError`` where the state's integer fields cannot hold these parameters."""
        h = check_positive(voxel_size_um, name="voxel_size_um")
        if self.erosion_depth_um / h * 255 > 65535:
            raise InputError(
                f"`erosion_depth_um`={self.erosion_depth_um:g} is more than 257 voxels of {h:g} µm; "
                "use a coarser voxel size"
            )
        if self.footprint_radius_um / h > 63:
            raise InputError(
                f"`footprint_radius_um`={self.footprint_radius_um:g} spans more than 63 voxels of {h:g} µm; "
                "use a coarser voxel size or a smaller footprint"
            )

    @staticmethod
    def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
        try:
            import tomllib
        except ModuleNotFoundError:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise BonesimError(f"parameter file not found: {path}") from None
        except IsADirectoryError:
            raise BonesimError(f"parameter file {path} is a directory") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BonesimError(f"{path} is not valid TOML: {exc}") from None
        if "remodeling" in doc:
            extra = sorted(set(doc) - {"remodeling"})
            if extra:
                raise BonesimError(
                    f"{path}: key(s) {', '.join(extra)} beside the [remodeling] table would be ignored; "
                    "put every parameter under [remodeling] (or none)"
                )
            doc = doc["remodeling"]
            if not isinstance(doc, dict):
                raise BonesimError(f"{path}: `remodeling` must be a table")
        return doc

    @classmethod
    def toml_keys(cls, path: str | os.PathLike) -> list[str]:
        """The parameter names a TOML file sets (what it would change)."""
        return list(cls._read_toml(path))

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> RemodelingParams:
        """Read parameters from a TOML file (keys = field names, all top-level or all under ``[remodeling]``).

        Unknown keys, keys beside a ``[remodeling]`` table and values of the wrong type are refused.
        """
        return cls.from_mapping(cls._read_toml(path), source=str(path))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "parameters") -> RemodelingParams:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise BonesimError(
                f"{source}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        bad = sorted(k for k, v in values.items() if isinstance(v, bool) or not isinstance(v, (int, float)))
        if bad:
            raise BonesimError(f"{source}: {', '.join(f'{k} = {values[k]!r}' for k in bad)} must be a number")
        return cls(**dict(values))


def check_table(table: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate a daily parameter table and return it as float64 columns.

    The table needs a ``day`` column 0, 1, 2, ... and the columns of
    :data:`TABLE_COLUMNS`, all of equal length; extra (explanatory) columns
    are kept.

    >>> t = check_table({"day": [0, 1], "acf_per_year": [0.4, 0.5], "erosion_depth_um": [50, 50],
    ...                  "resorption_days": [35, 35], "reversal_days": [20, 20],
    ...                  "mar_um_per_day": [0.6, 0.6], "formation_efficiency": [1, 0.9]})
    >>> t["formation_efficiency"].tolist()
    [1.0, 0.9]
    """
    missing = [c for c in ("day", *TABLE_COLUMNS) if c not in table]
    if missing:
        raise InputError(f"daily parameter table lacks column(s) {', '.join(missing)}")
    out = {k: np.asarray(v, dtype=np.float64) for k, v in table.items()}
    lengths = {k: v.shape for k, v in out.items()}
    if len({s for s in lengths.values()}) != 1 or out["day"].ndim != 1:
        raise InputError(f"daily parameter table columns must be 1-D of equal length, got {lengths}")
    n = out["day"].shape[0]
    if n == 0:
        raise InputError("daily parameter table is empty")
    if not np.array_equal(out["day"], np.arange(n)):
        raise InputError("daily parameter table `day` column must be 0, 1, 2, ... (one row per day)")
    for c in (*TABLE_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in out)):
        if not np.isfinite(out[c]).all():
            raise InputError(f"daily parameter table column {c!r} holds NaN or infinite values")
    return out


def params_from_table(
    table: Mapping[str, Any], base: RemodelingParams | None = None
) -> list[RemodelingParams]:
    """One :class:`RemodelingParams` per row of a daily table.

    Fields the table does not hold (``footprint_radius_um``, ``neighbourhood``,
    ``dt_days``, and ``modeling_um_per_day`` where it lacks that optional
    column) come from ``base`` (defaults if None). Identical rows share one
    object.

    >>> rows = params_from_table({"day": [0, 1], "acf_per_year": [0.4, 0.4], "erosion_depth_um": [50, 50],
    ...                           "resorption_days": [35, 35], "reversal_days": [20, 20],
    ...                           "mar_um_per_day": [0.6, 0.6], "formation_efficiency": [1, 0.9]})
    >>> [r.formation_efficiency for r in rows]
    [1.0, 0.9]
    """
    t = check_table(table)
    base = base or RemodelingParams()
    cols = (*TABLE_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in t))
    cache: dict[tuple[float, ...], RemodelingParams] = {}
    out = []
    for i in range(t["day"].shape[0]):
        key = tuple(float(t[c][i]) for c in cols)
        if key not in cache:
            cache[key] = base.replace(**dict(zip(cols, key, strict=True)))
        out.append(cache[key])
    return out


def constant_table(params: RemodelingParams, days: int) -> dict[str, np.ndarray]:
    """The daily table of constant parameters over ``days`` days.

    >>> constant_table(RemodelingParams(), 3)["acf_per_year"].tolist()
    [0.3, 0.3, 0.3]
    """
    n = max(1, math.ceil(days))
    table = {"day": np.arange(n, dtype=np.float64)}
    for c in TABLE_COLUMNS:
        table[c] = np.full(n, float(getattr(params, c)))
    for c, default in OPTIONAL_COLUMNS.items():  # only where set: tables as before otherwise
        if getattr(params, c) != default:
            table[c] = np.full(n, float(getattr(params, c)))
    return table
