"""Scenarios: a subject and factor time courses, read from TOML, validated strictly, composable.

A scenario file has top-level ``name``, ``description`` and optional ``include`` (a
list of preset names or paths merged first, in order; the file's own keys win), and
one table per factor. Every key is listed in :data:`SCHEMA` with its unit and
allowed range; an unknown section or key, a wrong type or an out-of-range value is
refused with a message naming the key and the allowed range. The resolved scenario
(all defaults filled) is written back by :meth:`Scenario.to_toml`, and reading that
text gives the same scenario (round trip).

Times: ``start_years`` / ``stop_years`` count years from day 0 of the simulation;
menopause is placed by age.

>>> s = load_scenario("healthy-adult")
>>> s.name, s["subject"]["sex"], s["vitamin_d"]["level_ng_ml"]
('healthy-adult', 'female', 30.0)
>>> Scenario.from_dict({"name": "x", "thyroid": {"level": 9.0}})
Traceback (most recent call last):
...
bonesim.errors.BonesimError: scenario key `thyroid.level` must be in [0.3, 4], got 9.0
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonesim._resources import data_dir
from bonesim.defaults import HEALTHY, HEALTHY_RANGES
from bonesim.errors import BonesimError, InputTypeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SCHEMA", "Scenario", "list_scenarios", "load_scenario", "scenario_path"]

NEVER = 1000.0  # years: "no stop"


@dataclass(frozen=True)
class Key:
    """One allowed scenario key: default, type and range (numbers) or choices (strings)."""

    default: Any
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    doc: str = ""
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise BonesimError(f"scenario key `{name}` must be true or false, got {value!r}")
            return value
        if isinstance(self.default, str):
            if not isinstance(value, str) or value not in self.choices:
                allowed = ", ".join(repr(c) for c in self.choices)
                raise BonesimError(f"scenario key `{name}` must be one of {allowed}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BonesimError(
                f"scenario key `{name}` must be a number in [{self.lo:g}, {self.hi:g}], got {value!r}"
            )
        v = float(value)
        if not math.isfinite(v) or not (self.lo <= v <= self.hi):
            raise BonesimError(f"scenario key `{name}` must be in [{self.lo:g}, {self.hi:g}], got {value!r}")
        return v


def _start(doc="years after day 0 when the factor starts"):
    return Key(0.0, 0.0, NEVER, "years", doc)


def _stop(doc="years after day 0 when the factor stops (1000 = never)"):
    return Key(NEVER, 0.0, NEVER, "years", doc)


# section -> key -> Key.  Mechanisms and sources: bonesim.physiology.factors and docs/physiology.md
SCHEMA: dict[str, dict[str, Key]] = {
    "subject": {
        "sex": Key("female", choices=("female", "male"), doc="sex (estrogen course, age-related loss rate)"),
        "age_years": Key(35.0, 0.0, 110.0, "years", "age at day 0"),
        "aging": Key(False, doc="age-related formation deficit after peak bone mass (age 25)"),
        "bone_volume_rel": Key(
            0.0,
            0.0,
            1.5,
            "",
            "trabecular bone volume at day 0 relative to the healthy young adult (mechanostat set point); "
            "0: from the subject's own history (age-related loss and menopause from age 20 to day 0)",
        ),
    },
    "menopause": {
        "enabled": Key(False, doc="estrogen falls at menopause (female subjects only)"),
        "age_years": Key(51.0, 35.0, 65.0, "years", "age at the final menstrual period (FMP)"),
        "transition_years": Key(2.0, 0.25, 8.0, "years", "duration of the estrogen fall (10 % to 90 %)"),
        "postmenopausal_estrogen": Key(
            0.2, 0.0, 1.0, "", "estrogen after menopause, relative to premenopausal"
        ),
    },
    "glucocorticoid": {
        "dose_mg_per_day": Key(0.0, 0.0, 80.0, "mg/day", "oral prednisolone-equivalent dose"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "vitamin_d": {
        "level_ng_ml": Key(30.0, 2.0, 150.0, "ng/mL", "serum 25(OH)D (divide nmol/L by 2.5)"),
    },
    "diet": {
        "calcium_mg_per_day": Key(964.0, 100.0, 3000.0, "mg/day", "dietary calcium intake"),
    },
    "thyroid": {
        "level": Key(1.0, 0.3, 4.0, "", "thyroid hormone activity relative to euthyroid (>1 hyperthyroid)"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "alcohol": {
        "units_per_day": Key(0.0, 0.0, 20.0, "units/day", "alcohol intake (1 unit = 8 g ethanol)"),
    },
    "smoking": {
        "cigarettes_per_day": Key(0.0, 0.0, 60.0, "cigarettes/day", "current smoking"),
    },
    "eating_disorder": {
        "severity": Key(0.0, 0.0, 1.0, "", "0 none, 1 severe anorexia nervosa (amenorrhoea, undernutrition)"),
        "start_years": _start(),
        "stop_years": _stop(),
        "recovery_years": Key(
            0.0,
            0.0,
            10.0,
            "years",
            "time constant of weight regain after stop_years: the severity (estrogen, IGF-1, "
            "intake) falls as exp(-(t - stop)/recovery_years); 0 = at once",
        ),
    },
    "parathyroid": {
        "gland_activity": Key(
            1.0, 0.2, 10.0, "", "PTH secretion multiplier G (>1 primary hyperparathyroidism)"
        ),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    # treatments: mechanisms, PK and sources in bonesim.physiology.treatments and docs/treatments.md
    "hormone_therapy": {
        "cee_mg_per_day": Key(0.0, 0.0, 2.5, "mg/day", "oral conjugated equine estrogens (+ progestin)"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "alendronate": {
        "dose_mg": Key(0.0, 0.0, 70.0, "mg", "oral alendronate per dose (10 daily or 70 weekly)"),
        "interval_days": Key(1.0, 1.0, 28.0, "days", "days between doses (1 daily, 7 weekly)"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "zoledronate": {
        "dose_mg": Key(0.0, 0.0, 10.0, "mg", "intravenous zoledronic acid per infusion"),
        "interval_years": Key(1.0, 0.25, 5.0, "years", "years between infusions"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "denosumab": {
        "dose_mg": Key(0.0, 0.0, 210.0, "mg", "subcutaneous denosumab per injection"),
        "interval_months": Key(6.0, 1.0, 12.0, "months", "months between injections"),
        "start_years": _start(),
        "stop_years": _stop("years after day 0 after which no more injections are given (1000 = never)"),
    },
    "teriparatide": {
        "dose_ug_per_day": Key(0.0, 0.0, 80.0, "ug/day", "daily subcutaneous teriparatide (PTH 1-34)"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "abaloparatide": {
        "dose_ug_per_day": Key(
            0.0, 0.0, 160.0, "ug/day", "daily subcutaneous abaloparatide (PTHrP analogue)"
        ),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    "romosozumab": {
        "dose_mg": Key(0.0, 0.0, 420.0, "mg", "subcutaneous romosozumab per injection"),
        "interval_months": Key(1.0, 1.0, 6.0, "months", "months between injections"),
        "start_years": _start(),
        "stop_years": _stop("years after day 0 after which no more injections are given (1000 = never)"),
    },
    "calcium_vitamin_d": {
        "calcium_mg_per_day": Key(0.0, 0.0, 2000.0, "mg/day", "supplemental elemental calcium"),
        "vitamin_d_iu_per_day": Key(0.0, 0.0, 4000.0, "IU/day", "supplemental vitamin D3 (raises 25(OH)D)"),
        "start_years": _start(),
        "stop_years": _stop(),
    },
    # habitual mechanical loading of the site: the CA's mechanoregulation reads the axis and the
    # daily magnitude (column ``load_magnitude``); the systemic disuse factor is in factors.py
    "loading": {
        "axis": Key(
            "z",
            choices=("z", "y", "x"),
            doc="principal habitual loading axis of the sample (volume axis, as bonesim mechanics --axis)",
        ),
        "magnitude": Key(
            1.0,
            0.0,
            3.0,
            "",
            "habitual loading relative to normal inside the window (1 habitual, < 1 disuse, > 1 exercise)",
        ),
        "start_years": _start("years after day 0 when the changed loading starts"),
        "stop_years": _stop("years after day 0 when habitual loading (magnitude 1) returns (1000 = never)"),
    },
    "remodeling": {
        "acf0_per_year": Key(
            HEALTHY["acf_per_year"],
            *HEALTHY_RANGES["acf_per_year"],
            "1/year",
            "healthy activation frequency Ac.f0",
        ),
        "erosion_depth_um": Key(
            HEALTHY["erosion_depth_um"],
            *HEALTHY_RANGES["erosion_depth_um"],
            "um",
            "final erosion depth E.Rs.De",
        ),
        "resorption_days": Key(
            HEALTHY["resorption_days"],
            *HEALTHY_RANGES["resorption_days"],
            "days",
            "healthy resorption period",
        ),
        "reversal_days": Key(
            HEALTHY["reversal_days"], *HEALTHY_RANGES["reversal_days"], "days", "healthy reversal period"
        ),
        "mar_um_per_day": Key(
            HEALTHY["mar_um_per_day"],
            *HEALTHY_RANGES["mar_um_per_day"],
            "um/day",
            "healthy mineral apposition rate",
        ),
        "bs_bv_per_mm": Key(
            13.33, 1.0, 60.0, "1/mm", "bone surface / volume of the trabecular bone (2/Tb.Th)"
        ),
    },
}
_TOP = {"name", "description", "include"}
#: dose keys of the treatment sections: a section given without a dose would have no effect
DOSE_KEYS: dict[str, tuple[str, ...]] = {
    "hormone_therapy": ("cee_mg_per_day",),
    "alendronate": ("dose_mg",),
    "zoledronate": ("dose_mg",),
    "denosumab": ("dose_mg",),
    "teriparatide": ("dose_ug_per_day",),
    "abaloparatide": ("dose_ug_per_day",),
    "romosozumab": ("dose_mg",),
    "calcium_vitamin_d": ("calcium_mg_per_day", "vitamin_d_iu_per_day"),
}


def _check_effect(values: dict[str, dict[str, Any]], given: Mapping[str, Any], origin: str) -> None:
    """Refuse keys that could not take effect: a treatment section without a dose, a window that is empty."""
    for sec, body in given.items():
        if sec not in SCHEMA or not body:
            continue
        v = values[sec]
        changed = any(val != SCHEMA[sec][k].default for k, val in body.items())
        if not changed:  # defaults written out in full (to_toml round trip): nothing to take effect
            continue
        if sec in DOSE_KEYS and all(v[k] == 0 for k in DOSE_KEYS[sec]):
            raise BonesimError(
                f"{origin}scenario section `[{sec}]` is given without a dose ({' or '.join(DOSE_KEYS[sec])}"
                " > 0): its keys would have no effect"
            )
        if "start_years" in v and ("start_years" in body or "stop_years" in body):
            if v["start_years"] >= v["stop_years"]:
                raise BonesimError(
                    f"{origin}scenario section `[{sec}]`: start_years ({v['start_years']:g}) must be before "
                    f"stop_years ({v['stop_years']:g})"
                )


def _defaults() -> dict[str, dict[str, Any]]:
    return {sec: {k: key.default for k, key in keys.items()} for sec, keys in SCHEMA.items()}


def _check_sections(data: Mapping[str, Any], origin: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for sec, body in data.items():
        if sec in _TOP:
            continue
        if sec not in SCHEMA:
            allowed = ", ".join(sorted(SCHEMA))
            raise BonesimError(f"{origin}unknown scenario section `{sec}`; allowed sections: {allowed}")
        if not isinstance(body, Mapping):
            raise BonesimError(f"{origin}scenario section `{sec}` must be a table")
        out[sec] = {}
        for k, v in body.items():
            if k not in SCHEMA[sec]:
                allowed = ", ".join(sorted(SCHEMA[sec]))
                raise BonesimError(
                    f"{origin}unknown scenario key `{sec}.{k}`; allowed keys in [{sec}]: {allowed}"
                )
            out[sec][k] = SCHEMA[sec][k].check(f"{sec}.{k}", v)
    return out


@dataclass(frozen=True)
class Scenario:
    """A resolved scenario: a name, a description and every factor's values (defaults filled).

    Index it like a nested dict (``scn["menopause"]["age_years"]``). Compose with
    :meth:`combine` (or ``a + b``): every key ``b``'s own file sets (default
    value or not) overrides ``a``; so do values of ``b`` (or of its includes)
    that differ from the defaults.
    """

    name: str
    description: str = ""
    values: dict[str, dict[str, Any]] = field(default_factory=_defaults)
    #: ``(section, key)`` pairs the scenario's own file (or ``replace``) sets explicitly; they win in
    #: a composition even at their default value. Keys that only come from an ``include`` do not.
    given: frozenset = field(default=frozenset(), compare=False, repr=False)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "", _seen: tuple[str, ...] = ()) -> Scenario:
        """Build and validate a scenario from a parsed TOML mapping (``include`` resolved)."""
        for k, v in data.items():
            if k not in _TOP and k not in SCHEMA:
                if isinstance(v, Mapping):
                    allowed = ", ".join(sorted(SCHEMA))
                    raise BonesimError(f"{origin}unknown scenario section `{k}`; allowed sections: {allowed}")
                allowed = ", ".join(sorted(_TOP))
                raise BonesimError(f"{origin}unknown scenario key `{k}`; allowed top-level keys: {allowed}")
        values = _defaults()
        given: set[tuple[str, str]] = set()
        include = data.get("include", [])
        if isinstance(include, str):
            include = [include]
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise BonesimError(f"{origin}scenario key `include` must be a list of scenario names")
        for inc in include:
            if inc in _seen:
                raise BonesimError(f"{origin}scenario include cycle through {inc!r}")
            base = load_scenario(inc, _seen=(*_seen, inc))
            for sec, k in _overrides(base):  # an include's keys are its values, not this file's word
                values[sec][k] = base.values[sec][k]
        checked = _check_sections(data, origin)
        for sec, body in checked.items():
            values[sec].update(body)
            given.update((sec, k) for k in body)
        _check_effect(values, checked, origin)
        name = data.get("name", "custom")
        desc = data.get("description", "")
        if not isinstance(name, str) or not isinstance(desc, str):
            raise BonesimError(f"{origin}scenario keys `name` and `description` must be strings")
        return cls(name=name, description=desc, values=values, given=frozenset(given))

    def combine(self, other: Scenario) -> Scenario:
        """Compose two scenarios: non-default values of ``other`` override ``self``.

        >>> s = load_scenario("postmenopausal") + load_scenario("glucocorticoid")
        >>> s.name, s["menopause"]["enabled"], s["glucocorticoid"]["dose_mg_per_day"]
        ('postmenopausal+glucocorticoid', True, 10.0)
        """
        values = copy.deepcopy(self.values)
        keys = _overrides(other)
        for sec, k in keys:
            values[sec][k] = other.values[sec][k]
        return Scenario(
            f"{self.name}+{other.name}",
            f"{self.description} + {other.description}".strip(" +"),
            values,
            self.given | keys,
        )

    __add__ = combine

    def replace(self, **sections: Mapping[str, Any]) -> Scenario:
        """Return a copy with some keys changed, validated: ``scn.replace(vitamin_d={"level_ng_ml": 10})``."""
        values = copy.deepcopy(self.values)
        given = set(self.given)
        checked = _check_sections(sections, "")
        for sec, body in checked.items():
            values[sec].update(body)
            given.update((sec, k) for k in body)
        _check_effect(values, checked, "")
        return Scenario(self.name, self.description, values, frozenset(given))

    def to_toml(self) -> str:
        """The full resolved scenario as TOML text (every key, with units and ranges as comments)."""
        lines = [f"name = {_toml_value(self.name)}", f"description = {_toml_value(self.description)}"]
        for sec, keys in SCHEMA.items():
            lines += ["", f"[{sec}]"]
            for k, key in keys.items():
                rng = (
                    f"one of {', '.join(key.choices)}"
                    if key.choices
                    else (
                        "true/false"
                        if isinstance(key.default, bool)
                        else f"[{key.lo:g}, {key.hi:g}] {key.unit}".strip()
                    )
                )
                lines.append(f"{k} = {_toml_value(self.values[sec][k])}  # {key.doc}; {rng}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str, *, origin: str = "") -> Scenario:
        """Parse and validate TOML text."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BonesimError(f"{origin}invalid TOML: {exc}") from None
        return cls.from_dict(data, origin=origin)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    raise InputTypeError(f"cannot write {v!r} as TOML")


def _preset_dir() -> Path:
    return data_dir() / "scenarios"


def list_scenarios() -> list[str]:
    """Names of the preset scenarios shipped in ``data/scenarios``.

    >>> "healthy-adult" in list_scenarios()
    True
    """
    return sorted(p.stem for p in _preset_dir().glob("*.toml"))


def scenario_path(name_or_path: str | Path) -> Path:
    """The TOML file of a preset name or a path; raise ``BonesimError`` if there is none."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise BonesimError(f"scenario file not found: {p}")
        return p
    cand = _preset_dir() / f"{name_or_path}.toml"
    if cand.is_file():
        return cand
    raise BonesimError(
        f"unknown scenario {str(name_or_path)!r}; presets: {', '.join(list_scenarios())} (or give a .toml file)"
    )


def _overrides(scn: Scenario) -> frozenset:
    """The keys ``scn`` imposes when composed: those it sets explicitly and those off their default."""
    off = {
        (sec, k) for sec, body in scn.values.items() for k, v in body.items() if v != SCHEMA[sec][k].default
    }
    return frozenset(off) | scn.given


def load_scenario(name_or_path: str | Path | Scenario, *, _seen: tuple[str, ...] = ()) -> Scenario:
    """Load a preset by name, a TOML file by path, or compose presets with ``+``.

    ``"postmenopausal+glucocorticoid"`` composes the two presets (later wins).
    """
    if isinstance(name_or_path, Scenario):
        return name_or_path
    s = str(name_or_path)
    if "+" in s and not Path(s).exists():
        parts = [load_scenario(part, _seen=_seen) for part in s.split("+")]
        out = parts[0]
        for part in parts[1:]:
            out = out + part
        return out
    path = scenario_path(s)
    origin = f"{path.name}: "
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BonesimError(f"{origin}invalid TOML: {exc}") from None
    scn = Scenario.from_dict(data, origin=origin, _seen=_seen)
    if "name" not in data:
        scn = Scenario(path.stem, scn.description, scn.values, scn.given)
    return scn
