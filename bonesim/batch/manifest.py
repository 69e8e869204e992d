"""Study manifests: many volumes × scenarios × seeds described in one TOML file.

A manifest (``study.toml``) names the inputs (bonesim HDF5 files or phantom
specs), the physiological scenarios, the seeds and the simulation settings;
:func:`load_manifest` validates it up front and expands it into a list of
runs with stable ids ``<input>__<scenario>__s<seed>``. Every problem found is
reported at once, one line each, before any run starts.

Example manifest::

    name = "ovx-sweep"
    output = "results/ovx"          # relative to this file
    years = 5
    save_every = 30                 # days between saved frames
    spinup_years = 1.0
    backend = "auto"                # auto | cupy | numpy
    # chunks = 256                  # step volumes in chunks with halos (larger than the GPU)
    seeds = 4                       # or a list: [0, 1, 7]
    scenarios = ["healthy-adult", "postmenopausal", "my_scenario.toml"]

    [[inputs]]
    file = "data/sample.h5"         # name defaults to the file stem

    [[inputs]]
    name = "gyroid64"
    phantom = "gyroid"              # any function of bonesim.phantom
    shape = 64                      # int or [z, y, x]
    voxel_size_um = 20
    period = 32

    [slurm]                         # used by --scheduler slurm / --slurm-array
    partition = "gpu"
    gpus_per_task = 1
    time = "04:00:00"
    setup = ["module load cuda/12.4", "source ~/venvs/bonesim/bin/activate"]
"""

from __future__ import annotations

import difflib
import glob
import inspect
import logging
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bonesim.ca.rng import MAX_SEED
from bonesim.errors import BonesimError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cupy", "numpy")
STUDY_KEYS = (
    "name",
    "description",
    "output",
    "years",
    "save_every",
    "spinup_years",
    "backend",
    "seeds",
    "scenarios",
    "inputs",
    "slurm",
    "dask",
    "chunks",
    "steps_per_exchange",
)
INPUT_FILE_KEYS = ("name", "file", "glob")
INPUT_PHANTOM_KEYS = ("name", "phantom", "shape", "voxel_size_um")
SLURM_KEYS = (
    "partition",
    "account",
    "qos",
    "time",
    "gpus_per_task",
    "gpu_type",
    "cpus_per_task",
    "mem",
    "constraint",
    "array_parallelism",
    "jobs",
    "setup",
    "extra",
    "python",
    "bonesim",
    "log_dir",
)
DASK_KEYS = ("workers", "threads_per_worker", "memory_limit")
# phantom functions that are helpers, not volume generators
_NOT_PHANTOMS = {"gyroid_field", "gyroid_fraction", "gyroid_sheet_level_for", "lattice_loops"}
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ------------------------------------------------------------ dataclasses ----
@dataclass(frozen=True)
class InputSpec:
    """One input volume of a study: a bonesim HDF5 file or a phantom recipe.

    Attributes
    ----------
    name : str
        Short name, used in run ids and summaries.
    file : Path or None
        Absolute path of a bonesim HDF5 file (``/volume/bone``).
    phantom : str or None
        Name of a :mod:`bonesim.phantom` function.
    shape : tuple of int or None
        Phantom shape ``(z, y, x)``.
    voxel_size_um : float or None
        Phantom voxel size.
    options : dict
        Further keyword arguments of the phantom function.
    """

    name: str
    file: Path | None = None
    phantom: str | None = None
    shape: tuple[int, int, int] | None = None
    voxel_size_um: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def load(self):
        """Return the input as a :class:`bonesim.volume.Volume` (reads the file or builds the phantom)."""
        from bonesim.volume import Volume

        if self.file is not None:
            from bonesim.io.hdf5 import read_volume

            return read_volume(self.file)
        from bonesim import phantom

        data = getattr(phantom, self.phantom)(self.shape, **self.options)
        meta = {"phantom": self.phantom, "shape": list(self.shape), **self.options}
        return Volume(data, self.voxel_size_um, meta)

    def describe(self) -> str:
        if self.file is not None:
            return str(self.file)
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        shape = "x".join(str(n) for n in self.shape or ())
        return f"phantom {self.phantom} {shape} @ {self.voxel_size_um:g} um" + (f" ({opts})" if opts else "")


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario of a study: a preset name or a TOML file (``path`` set)."""

    name: str
    path: Path | None = None

    @property
    def ref(self) -> str:
        """What :func:`bonesim.physiology.scenario_table` is given: the name or the file path."""
        return str(self.path) if self.path is not None else self.name


@dataclass(frozen=True)
class Run:
    """One simulation of a study: an input, a scenario and a seed.

    ``out`` is the result file; the run is finished when it is complete.
    """

    index: int
    run_id: str
    input: InputSpec
    scenario: ScenarioSpec
    seed: int
    years: float
    save_every: int
    spinup_years: float
    backend: str
    out: Path
    chunks: tuple[int, int, int] | None = None
    steps_per_exchange: int = 16
    manifest: Path | None = None

    def settings(self) -> dict[str, Any]:
        """What makes this run's bits: compared with the record of a finished run before it counts as done.

        The backend and the chunking are not part of it (they give the same bits).
        """
        return {
            "input": self.input.describe(),
            "scenario": self.scenario.ref,
            "seed": int(self.seed),
            "years": float(self.years),
            "spinup_years": float(self.spinup_years),
            "save_every": int(self.save_every),
        }


@dataclass(frozen=True)
class Study:
    """A validated study: settings plus its expanded list of runs."""

    name: str
    manifest: Path | None
    root: Path
    output: Path
    years: float
    save_every: int
    spinup_years: float
    backend: str
    seeds: tuple[int, ...]
    inputs: tuple[InputSpec, ...]
    scenarios: tuple[ScenarioSpec, ...]
    runs: tuple[Run, ...]
    slurm: dict[str, Any] = field(default_factory=dict)
    dask: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    toml: str = ""

    @property
    def runs_dir(self) -> Path:
        return self.output / "runs"

    def run(self, key: int | str) -> Run:
        """The run with array index ``key`` (int) or run id ``key`` (str)."""
        if isinstance(key, (int, np.integer)):
            if not 0 <= int(key) < len(self.runs):
                raise BonesimError(
                    f"run index {key} out of range: study {self.name!r} has {len(self.runs)} runs "
                    f"(0..{len(self.runs) - 1})"
                )
            return self.runs[int(key)]
        for r in self.runs:
            if r.run_id == key:
                return r
        raise BonesimError(f"no run {key!r} in study {self.name!r}")


# ------------------------------------------------------------- loading ----
def load_manifest(path: str | os.PathLike, *, check_scenarios: bool = True) -> Study:
    """Read and validate a study manifest and expand it into runs.

    Parameters
    ----------
    path : path-like
        The ``study.toml`` file. Relative paths inside it are relative to its folder.
    check_scenarios : bool
        Check scenario names against :func:`bonesim.physiology.list_scenarios`
        (when the physiology module is installed).

    Returns
    -------
    Study

    Raises
    ------
    BonesimError
        The file is missing or not TOML, or the manifest has problems; the
        message lists every problem, one per line.
    """
    p = Path(path)
    if not p.exists():
        raise BonesimError(f"manifest not found: {p}")
    if p.is_dir():
        raise BonesimError(f"manifest {p} is a directory, expected a .toml file")
    text = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BonesimError(f"manifest {p} is not valid TOML: {exc}") from None
    return study_from_dict(
        data, root=p.resolve().parent, manifest=p.resolve(), toml=text, check_scenarios=check_scenarios
    )


def study_from_dict(
    data: Mapping[str, Any],
    *,
    root: str | os.PathLike = ".",
    manifest: Path | None = None,
    toml: str = "",
    check_scenarios: bool = True,
) -> Study:
    """Validate a manifest given as a dict (the parsed TOML) and expand it into a :class:`Study`.

    Examples
    --------
    >>> s = study_from_dict({
    ...     "name": "demo", "output": "out", "years": 1, "seeds": 2, "scenarios": ["healthy"],
    ...     "inputs": [{"name": "slab", "phantom": "plate", "shape": 16, "voxel_size_um": 20,
    ...                 "thickness": 6}],
    ... }, check_scenarios=False)
    >>> [r.run_id for r in s.runs]
    ['slab__healthy__s0', 'slab__healthy__s1']
    >>> study_from_dict({"years": -1, "scenarios": ["healthy"], "inputs": []}, check_scenarios=False)
    Traceback (most recent call last):
    ...
    bonesim.errors.BonesimError: invalid manifest:
      - `years` must be > 0, got -1
      - `inputs` must list at least one input ([[inputs]] with `file`, `glob` or `phantom`)
    """
    root = Path(root).resolve()
    errors: list[str] = []

    _unknown_keys(data, STUDY_KEYS, "manifest", errors)
    name = str(data.get("name") or (manifest.stem if manifest else "study"))
    if any(ord(c) < 32 or c in "\"'`$\\" for c in name) or len(name) > 100:
        errors.append(
            f"`name` {name!r} must be one line of at most 100 characters without quotes, `$` or backslashes "
            "(it goes into job names and scripts)"
        )
        name = _safe(name)
    out_raw = data.get("output", "results")
    if not isinstance(out_raw, str) or not out_raw:
        errors.append(f"`output` must be a folder name, got {out_raw!r}")
        out_raw = "results"
    output = (root / out_raw).resolve()

    years = _number(data, "years", errors, required=True, positive=True)
    spinup = _number(data, "spinup_years", errors, default=1.0, minimum=0.0)
    save_every = _integer(data, "save_every", errors, default=30, minimum=1)
    backend = data.get("backend", "auto")
    if backend not in BACKENDS:
        errors.append(f"`backend` must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
        backend = "auto"
    seeds = _seeds(data.get("seeds", [0]), errors)
    chunks = _chunks(data.get("chunks"), errors)
    k = _integer(data, "steps_per_exchange", errors, default=16, minimum=1)
    scenarios = _scenarios(data.get("scenarios"), root, errors, check_scenarios)
    inputs = _inputs(data.get("inputs"), root, errors, exclude=output)
    slurm = _table(data, "slurm", SLURM_KEYS, errors)
    dask = _table(data, "dask", DASK_KEYS, errors)
    if "setup" in slurm and isinstance(slurm["setup"], str):
        slurm["setup"] = [slurm["setup"]]

    runs: list[Run] = []
    seen: dict[str, str] = {}
    if not errors:
        for inp in inputs:
            for sc in scenarios:
                for seed in seeds:
                    rid = run_id(inp.name, sc.name, seed)
                    what = f"{inp.describe()} × {sc.ref} × seed {seed}"
                    if rid in seen:
                        errors.append(
                            f"duplicate run id {rid!r}: {seen[rid]} and {what}; give the inputs "
                            "or scenarios distinct names"
                        )
                        continue
                    seen[rid] = what
                    runs.append(
                        Run(
                            index=len(runs),
                            run_id=rid,
                            input=inp,
                            scenario=sc,
                            seed=seed,
                            years=float(years),
                            save_every=int(save_every),
                            spinup_years=float(spinup),
                            backend=str(backend),
                            out=output / "runs" / f"{rid}.h5",
                            chunks=chunks,
                            steps_per_exchange=k,
                            manifest=manifest,
                        )
                    )
    if errors:
        where = f" {manifest}" if manifest else ""
        raise BonesimError(f"invalid manifest{where}:\n  - " + "\n  - ".join(errors))
    return Study(
        name=name,
        manifest=manifest,
        root=root,
        output=output,
        years=float(years),
        save_every=int(save_every),
        spinup_years=float(spinup),
        backend=str(backend),
        seeds=tuple(seeds),
        inputs=tuple(inputs),
        scenarios=tuple(scenarios),
        runs=tuple(runs),
        slurm=slurm,
        dask=dask,
        description=str(data.get("description", "")),
        toml=toml,
    )


def _positive_triple(raw: Any) -> tuple[int, int, int] | None:
    """``n`` or ``[z, y, x]`` of positive integers as a 3-tuple; None when it is neither."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw] * 3
    if (
        not isinstance(raw, list)
        or len(raw) != 3
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in raw)
    ):
        return None
    return tuple(raw)  # type: ignore[return-value]


def _chunks(raw: Any, errors: list[str]) -> tuple[int, int, int] | None:
    if raw is None:
        return None
    chunks = _positive_triple(raw)
    if chunks is None:
        shown = [raw] * 3 if isinstance(raw, int) and not isinstance(raw, bool) else raw
        errors.append(f"`chunks` must be a positive integer or [z, y, x], got {shown!r}")
    return chunks


#: Longest part of a run id taken from a name; longer names keep a prefix and a hash of the whole.
MAX_ID_PART = 60


def run_id(input_name: str, scenario_name: str, seed: int) -> str:
    """The stable id of a run: ``<input>__<scenario>__s<seed>`` (file-name safe, at most ~140 characters).

    >>> run_id("femur head", "postmenopausal", 3)
    'femur-head__postmenopausal__s3'
    >>> len(run_id("x" * 300, "a/b", 0)) < 100, run_id("x", "a/b", 0)
    (True, 'x__a-b__s0')
    """
    return f"{_id_part(input_name)}__{_id_part(scenario_name)}__s{int(seed)}"


def _id_part(name: str) -> str:
    import hashlib

    s = _safe(name)
    if len(s) <= MAX_ID_PART:
        return s
    return f"{s[: MAX_ID_PART - 9]}-{hashlib.sha1(str(name).encode()).hexdigest()[:8]}"


# ------------------------------------------------------------- helpers ----
def _safe(name: str) -> str:
    s = _ID_UNSAFE.sub("-", str(name)).strip("-")
    return s or "x"


def _unknown_keys(
    table: Mapping[str, Any],
    allowed: tuple[str, ...],
    where: str,
    errors: list[str],
    extra_ok: tuple[str, ...] = (),
) -> None:
    for key in table:
        if key in allowed or key in extra_ok:
            continue
        hint = difflib.get_close_matches(key, list(allowed) + list(extra_ok), n=1)
        errors.append(f"unknown key {key!r} in {where}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def _number(
    data: Mapping[str, Any],
    key: str,
    errors: list[str],
    *,
    required: bool = False,
    default: float | None = None,
    positive: bool = False,
    minimum: float | None = None,
) -> float:
    if key not in data:
        if required:
            errors.append(f"`{key}` is required")
            return 1.0
        return float(default)  # type: ignore[arg-type]
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        errors.append(f"`{key}` must be a number, got {v!r}")
        return 1.0
    if positive and v <= 0:
        errors.append(f"`{key}` must be > 0, got {v!r}")
    if minimum is not None and v < minimum:
        errors.append(f"`{key}` must be >= {minimum:g}, got {v!r}")
    return float(v)


def _integer(data: Mapping[str, Any], key: str, errors: list[str], *, default: int, minimum: int) -> int:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        errors.append(f"`{key}` must be an integer, got {v!r}")
        return default
    if v < minimum:
        errors.append(f"`{key}` must be >= {minimum}, got {v!r}")
    return int(v)


def _seeds(raw: Any, errors: list[str]) -> list[int]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            errors.append(f"`seeds` as a count must be >= 1, got {raw}")
            return [0]
        return list(range(raw))
    if not isinstance(raw, list) or not raw:
        errors.append(f"`seeds` must be a count or a non-empty list of integers, got {raw!r}")
        return [0]
    bad = [s for s in raw if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED]
    if bad:
        errors.append(f"`seeds` must be integers in [0, 2**63 - 1], got {bad!r}")
        return [0]
    dups = sorted({s for s in raw if raw.count(s) > 1})
    if dups:
        errors.append(f"`seeds` lists {dups} more than once")
    return list(dict.fromkeys(raw))


def available_scenarios() -> list[str]:
    """Names of the scenario presets."""
    from bonesim.physiology import list_scenarios

    names = []
    for item in list_scenarios():
        names.append(item if isinstance(item, str) else getattr(item, "name", str(item)))
    return names


def _scenarios(raw: Any, root: Path, errors: list[str], check: bool) -> list[ScenarioSpec]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s for s in raw):
        errors.append(f"`scenarios` must be a non-empty list of preset names or .toml files, got {raw!r}")
        return []
    known = available_scenarios() if check else None
    out: list[ScenarioSpec] = []
    for s in raw:
        if s.endswith(".toml") or "/" in s or os.sep in s:
            path = (root / s).resolve()
            if not path.is_file():
                errors.append(f"scenario file not found: {s} (looked for {path})")
                continue
            out.append(ScenarioSpec(name=path.stem, path=path))
        else:
            if known is not None and s not in known:
                hint = difflib.get_close_matches(s, known, n=1)
                errors.append(
                    f"unknown scenario {s!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; presets: {', '.join(known) or 'none'}"
                )
                continue
            out.append(ScenarioSpec(name=s))
    names = [sc.name for sc in out]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        errors.append(f"scenarios {dups} are listed more than once (by name or file stem)")
    return out


def phantom_kinds() -> dict[str, inspect.Signature]:
    """The phantom generators usable in a manifest and their signatures."""
    from bonesim import phantom

    kinds = {}
    for name, fn in vars(phantom).items():
        if name.startswith("_") or name in _NOT_PHANTOMS or not inspect.isfunction(fn):
            continue
        if fn.__module__ != phantom.__name__:
            continue
        sig = inspect.signature(fn)
        if next(iter(sig.parameters), None) == "shape":
            kinds[name] = sig
    return kinds


def _inputs(raw: Any, root: Path, errors: list[str], exclude: Path | None = None) -> list[InputSpec]:
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        errors.append("`inputs` must list at least one input ([[inputs]] with `file`, `glob` or `phantom`)")
        return []
    out: list[InputSpec] = []
    for i, item in enumerate(raw):
        where = f"inputs[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{where} must be a table, got {item!r}")
            continue
        kinds = [k for k in ("file", "glob", "phantom") if k in item]
        if len(kinds) != 1:
            errors.append(f"{where} needs exactly one of `file`, `glob` or `phantom`, got {kinds or 'none'}")
            continue
        if "phantom" in item:
            spec = _phantom_input(item, where, errors)
            if spec is not None:
                out.append(spec)
            continue
        _unknown_keys(item, INPUT_FILE_KEYS, where, errors)
        if "glob" in item:
            if "name" in item:
                errors.append(f"{where}: `name` cannot be given with `glob` (each file is named by its stem)")
            files = sorted(
                Path(f)
                for f in glob.glob(str(root / item["glob"]), recursive=True)
                if not _inside(Path(f), exclude)  # never the study's own results
            )
            if not files:
                errors.append(f"{where}: glob {item['glob']!r} matches no file under {root}")
            for f in files:
                spec = _file_input(f.stem, f, where, errors)
                if spec is not None:
                    out.append(spec)
            continue
        f = (root / str(item["file"])).resolve()
        spec = _file_input(str(item.get("name") or f.stem), f, where, errors)
        if spec is not None:
            out.append(spec)
    names = [inp.name for inp in out]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        errors.append(f"input names {dups} are used more than once; set `name` for each input")
    return out


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _file_input(name: str, path: Path, where: str, errors: list[str]) -> InputSpec | None:
    if not path.is_file():
        errors.append(f"{where}: input file not found: {path}")
        return None
    from bonesim.io.hdf5 import open_bonesim

    try:
        with open_bonesim(path) as f:
            if "volume/bone" not in f:
                errors.append(f"{where}: {path} has no /volume/bone dataset")
                return None
    except BonesimError as exc:
        errors.append(f"{where}: {exc} (convert it with `bonesim import`)")
        return None
    return InputSpec(name=name, file=path)


def _phantom_input(item: Mapping[str, Any], where: str, errors: list[str]) -> InputSpec | None:
    kinds = phantom_kinds()
    kind = item["phantom"]
    if kind not in kinds:
        errors.append(f"{where}: unknown phantom {kind!r}; choose one of {', '.join(sorted(kinds))}")
        return None
    sig = kinds[kind]
    fn_keys = tuple(k for k in sig.parameters if k != "shape")
    _unknown_keys(item, INPUT_PHANTOM_KEYS, f"{where} (phantom {kind!r})", errors, extra_ok=fn_keys)
    shape = _positive_triple(item.get("shape"))
    if shape is None:
        errors.append(f"{where}: `shape` must be a positive integer or [z, y, x], got {item.get('shape')!r}")
        return None
    vs = item.get("voxel_size_um")
    if isinstance(vs, bool) or not isinstance(vs, (int, float)) or not (math.isfinite(vs) and vs > 0):
        errors.append(f"{where}: `voxel_size_um` must be a number > 0, got {vs!r}")
        return None
    options = {k: v for k, v in item.items() if k in fn_keys}
    try:
        sig.bind(shape, **options)
    except TypeError as exc:
        errors.append(f"{where}: phantom {kind!r}: {exc}")
        return None
    name = str(item.get("name") or f"{kind}{shape[0]}")
    return InputSpec(name=name, phantom=kind, shape=shape, voxel_size_um=float(vs), options=options)


def _table(data: Mapping[str, Any], key: str, allowed: tuple[str, ...], errors: list[str]) -> dict[str, Any]:
    raw = data.get(key, {})
    if not isinstance(raw, Mapping):
        errors.append(f"[{key}] must be a table, got {raw!r}")
        return {}
    _unknown_keys(raw, allowed, f"[{key}]", errors)
    return {k: v for k, v in raw.items() if k in allowed}
