"""The time loop of the remodeling CA: plan, open (fresh or resumed), the day loop, finish.

:func:`simulate` runs a bone volume through years of remodeling under
constant :class:`~bonesim.ca.params.RemodelingParams` or a daily parameter
table (what ``bonesim.physiology`` produces), on any backend, and writes a
schema-1 result file (see ``docs/simulate.md``). It is four named steps:

1. :func:`plan_run` — check the arguments, resolve the daily parameters, fix
   the step counts and the run's identity (what a resume must share);
2. :func:`_open_run` — a fresh run folder, or the verified checkpoint of an
   interrupted one (:class:`bonesim.io.result.RunFolder` owns the files);
3. :meth:`_Loop.run` — the day loop: calibrate, step, save, checkpoint;
4. :func:`_finish` — assemble ``OUT`` from the run folder, provenance, XDMF.

A run killed at any instant leaves a consistent checkpoint in ``OUT.partial``;
``resume=True`` continues from it, bit for bit as one unbroken run.

>>> import numpy as np
>>> from bonesim import Volume, phantom
>>> vol = Volume(phantom.plate((12, 12, 12), 6), voxel_size_um=20)
>>> res = simulate(vol, RemodelingParams(), years=0.1, spinup_years=0, backend="numpy")
>>> res.metrics["day"][:2].tolist(), res.volume.shape
([0.0, 30.0], (12, 12, 12))
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import inspect
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bonesim._validation import check_in_range, check_positive
from bonesim.ca.backends import resolve_backend
from bonesim.ca.backends.base import field_of
from bonesim.ca.kernel_abi import MECH_WEIGHT_ONE, N_MECH_CLASSES
from bonesim.ca.mechano import MechanoParams, Mechanoregulation
from bonesim.ca.metrics import FRAME_COUNTS, METRIC_COLUMNS, Metrics, frame_counts
from bonesim.ca.params import TABLE_COLUMNS, RemodelingParams, check_table, constant_table, params_from_table
from bonesim.ca.rng import MAX_SEED
from bonesim.ca.schedule import Schedule, combine_modeling
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError, InputTypeError
from bonesim.io.hdf5 import check_output_path
from bonesim.io.result import (
    STATE_DTYPES,
    RunFolder,
    Streamed,
    digest_arrays,
    partial_path,
    slabs,
    volume_digest,
)
from bonesim.io.writer import BackgroundWriter
from bonesim.preflight import check_disk, check_memory
from bonesim.volume import Volume

log = logging.getLogger(__name__)

__all__ = ["METRIC_COLUMNS", "RunPlan", "SimulationResult", "partial_path", "plan_run", "simulate"]

#: Host bytes per voxel the pre-flight asks for before a run (whole-volume backends). By count: the
#: NumPy backend's floor is 14.1 (packed state 4, maps 8, surface bits 0.125, previous frame's bone 1,
#: the input volume 1) plus at most 0.5 of save-point slabs; a resume reads the checkpoint (12) beside
#: the new state (about 20 at its peak). Measured (2026-12-07, /usr/bin/time -v, docs/performance.md):
#: 15.4 and 17.8 B/voxel above the interpreter at 512³ and 256³, 19.9 for a resume at 256³. Kept above.
#: A backend may ask for another figure with a ``host_bytes_per_voxel`` attribute (the chunked one does).
HOST_BYTES_PER_VOXEL = 32
#: Added to it while a day of the run has the physiology's modeling-based formation (anabolic drugs), by
#: count: the class-0 field (1) and the NumPy backend's index of the voxels with a modeling threshold,
#: every voxel then (8; docs/treatments.md, Modeling-based formation in the CA).
DRUG_MODELING_BYTES_PER_VOXEL = 9
#: Save points the background writer may hold waiting while it writes another (back-pressure beyond).
WRITER_QUEUE_DEPTH = 1
#: Host bytes of state slabs a save point may queue for the writer: this many per voxel, at least
#: ``SAVE_BUFFER_MIN_BYTES`` (a small run's whole save point, so it overlaps the steps entirely).
SAVE_BUFFER_BYTES_PER_VOXEL = 0.5
SAVE_BUFFER_MIN_BYTES = 32 * 2**20


def save_buffer_bytes(nvox: int) -> int:
    """The writer's byte budget for the state slabs of a run of ``nvox`` voxels."""
    return max(SAVE_BUFFER_MIN_BYTES, int(SAVE_BUFFER_BYTES_PER_VOXEL * nvox))


class _Slabs:
    """z-slabs of a backend's state on the host (owned copies), for a save point.

    Backends with ``download_slab`` copy only the slab; others are downloaded once (the
    whole state, the old way) and sliced.
    """

    def __init__(self, be: Any, state: Any, shape: tuple[int, ...]) -> None:
        self.be, self.state, self.shape = be, state, shape
        self._full: dict[str, np.ndarray] | None = None

    def slab(self, name: str, z0: int, z1: int) -> np.ndarray:
        if hasattr(self.be, "download_slab"):
            if name in ("bone", "phase", "timer") and z1 - z0 > 16:  # unpack a few planes at a time
                out = np.empty((z1 - z0, *self.shape[1:]), STATE_DTYPES[name])
                for a in range(z0, z1, 16):
                    out[a - z0 : min(a + 16, z1) - z0] = self.be.download_slab(
                        self.state, name, a, min(a + 16, z1)
                    )
                return out
            return self.be.download_slab(self.state, name, z0, z1)
        if self._full is None:
            self._full = self.be.download(self.state)
        if name == "word":
            from bonesim.ca.backends.base import pack

            f = self._full
            return pack(f["bone"][z0:z1], f["phase"][z0:z1], f["timer"][z0:z1])
        return np.array(self._full[name][z0:z1], copy=True)


#: Longest run accepted, in simulated years.
MAX_YEARS = 1000.0
#: A CA step must be at most this fraction of the resorption period (else cavities never form).
MAX_DT_FRACTION_OF_RESORPTION = 0.5


@dataclass
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    volume : Volume
        Bone fraction at the end of the run.
    metrics : dict of ndarray
        The ``/tables/metrics`` columns, one row per saved frame.
    path : Path or None
        The result file (None when run without ``out``).
    state : dict of ndarray
        Final ``bone, phase, timer, resorbed_day, formed_day``.
    backend, device : str
    timings : dict
    """

    volume: Volume
    metrics: dict[str, np.ndarray]
    path: Path | None
    state: dict[str, np.ndarray] = field(repr=False)
    backend: str = ""
    device: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def _resolve_daily(params: Any, scenario: Any, base_params: RemodelingParams | None, n_days: int):
    """(list of daily RemodelingParams, the daily table to store, scenario name, scenario toml)."""
    if params is None and scenario is None:
        params = base_params or RemodelingParams()
    if params is None:
        params = scenario.table
    if isinstance(params, RemodelingParams):
        daily = [params]
        table = constant_table(params, n_days)
        name, toml = "constant", _params_toml(params)
    elif isinstance(params, Mapping):
        table = check_table(params)
        daily = params_from_table(table, base_params)
        name, toml = "table", ""
        if len(daily) < n_days:
            log.warning("daily table covers %d days of %d; its last row holds after that", len(daily), n_days)
    else:
        raise InputTypeError(
            f"`params` must be a RemodelingParams or a daily table (dict of arrays), got {type(params)}"
        )
    if scenario is not None:
        name = str(getattr(scenario, "name", name))
        toml = str(getattr(scenario, "toml", toml))
    return daily, table, name, toml


def _params_toml(p: RemodelingParams) -> str:
    lines = ["[remodeling]"]
    for k, v in p.to_dict().items():
        if k == "modeling_um_per_day" and v == 0.0:  # as written before the field existed
            continue
        lines.append(f"{k} = {v!r}")
    return "\n".join(lines) + "\n"


@dataclass
class RunPlan:
    """Everything fixed before the first step: parameters, step counts and the run's identity."""

    volume: Volume
    daily: list[RemodelingParams]
    table: Mapping[str, np.ndarray]
    scenario_name: str
    scenario_toml: str
    years: float
    seed: int
    dt: float
    n_spin: int
    n_main: int
    save_steps: int
    config: dict[str, Any]
    mechanics: MechanoParams | None = None
    load_magnitude: np.ndarray | None = None

    @property
    def total(self) -> int:
        return self.n_spin + self.n_main

    def day_of(self, step: int) -> float:
        return (step - self.n_spin) * self.dt

    def magnitude_at(self, step: int) -> float:
        """The habitual-load multiplier on the day of ``step`` (the spin-up takes day 0's)."""
        if self.load_magnitude is None or len(self.load_magnitude) == 0:
            return 1.0
        day = min(max(int(self.day_of(step)), 0), len(self.load_magnitude) - 1)
        return float(self.load_magnitude[day])


def plan_run(
    volume: Volume,
    params: Any,
    *,
    years: float,
    seed: int,
    save_every: float,
    spinup_years: float,
    scenario: Any = None,
    base_params: RemodelingParams | None = None,
    mechanics: MechanoParams | bool | None = None,
) -> RunPlan:
    """Check the arguments and fix what the run will do (no files, no device)."""
    if not isinstance(volume, Volume):
        raise InputTypeError(f"`volume` must be a bonesim.Volume, got {type(volume).__name__}")
    if not volume.is_bone_fraction:
        raise BonesimError(
            f"simulate needs a uint8 bone-fraction volume, got {volume.data.dtype}; segment it first"
        )
    years = check_in_range(check_positive(years, name="years"), 0.0, MAX_YEARS, name="years")
    save_every = check_positive(save_every, name="save_every")
    spinup_years = check_in_range(spinup_years, 0.0, 100.0, name="spinup_years")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise BonesimError(f"`seed` must be an integer in [0, 2**63 - 1], got {seed!r}")
    n_days = math.ceil(years * DAYS_PER_YEAR)
    check_memory(n_days * 8 * (len(TABLE_COLUMNS) + 1) * 2, what=f"the daily table of {years:g} years")
    daily, table, scen_name, scen_toml = _resolve_daily(params, scenario, base_params, n_days)
    dt = daily[0].dt_days
    if dt > years * DAYS_PER_YEAR:
        raise BonesimError(f"dt_days = {dt:g} is longer than the run ({years * DAYS_PER_YEAR:g} days)")
    short = min(p.resorption_days for p in daily[: max(1, n_days)])
    if dt > MAX_DT_FRACTION_OF_RESORPTION * short:
        raise BonesimError(
            f"dt_days = {dt:g} is too long for a resorption period of {short:g} days: a BMU needs at least "
            f"{1 / MAX_DT_FRACTION_OF_RESORPTION:g} steps to resorb; use dt_days <= "
            f"{MAX_DT_FRACTION_OF_RESORPTION * short:g}"
        )
    n_spin = round(spinup_years * DAYS_PER_YEAR / dt)
    n_main = max(1, round(years * DAYS_PER_YEAR / dt))
    save_steps = max(1, round(save_every / dt))
    mech = _mechanics(mechanics, scenario)
    load = table.get("load_magnitude") if mech is not None else None
    if load is not None:
        load = np.asarray(load, np.float64)
        if not np.all(np.isfinite(load)) or load.min() < 0 or load.max() > 10:
            raise BonesimError("the daily table's `load_magnitude` must lie in [0, 10]")
    constant = isinstance(params, RemodelingParams) or (params is None and scenario is None)
    config = {
        "input_digest": volume_digest(volume),
        "seed": int(seed),
        # constant parameters: their values (so a resumed run may ask for more years); tables: the table
        "table_digest": digest_arrays(
            {
                k: np.atleast_1d(np.float64(v))
                for k, v in daily[0].to_dict().items()
                if not (k == "modeling_um_per_day" and v == 0.0)  # digests of runs before this field
            }
            if constant
            else {k: np.ascontiguousarray(v, np.float64) for k, v in table.items()}
        ),
        "neighbourhood": daily[0].neighbourhood,
        "footprint_radius_um": daily[0].footprint_radius_um,
        "dt_days": dt,
        "spinup_steps": n_spin,
        "save_steps": save_steps,
        "total_steps": n_spin + n_main,
        "shape": list(volume.shape),
        "voxel_size_um": volume.voxel_size_um,
        "mechanics": None if mech is None else mech.to_dict(),
    }
    return RunPlan(
        volume,
        daily,
        table,
        scen_name,
        scen_toml,
        years,
        int(seed),
        dt,
        n_spin,
        n_main,
        save_steps,
        config,
        mechanics=mech,
        load_magnitude=load,
    )


def _mechanics(mechanics: MechanoParams | bool | None, scenario: Any) -> MechanoParams | None:
    """The run's mechanoregulation: explicit settings, True (defaults, the scenario's load axis) or off."""
    if mechanics is None or mechanics is False:
        return None
    if mechanics is True:
        axis = getattr(scenario, "load_axis", None)
        return MechanoParams(axis=axis) if axis else MechanoParams()
    if not isinstance(mechanics, MechanoParams):
        raise InputTypeError(
            f"`mechanics` must be a MechanoParams, True or None, got {type(mechanics).__name__}"
        )
    return mechanics


@dataclass
class _Start:
    """Where the loop starts: the initial state and what a checkpoint carries."""

    state: dict[str, np.ndarray]
    step: int = 0
    n_frames: int = 0
    prev_bone: np.ndarray | None = None
    schedule: dict[str, Any] | None = None
    metrics_acc: dict[str, Any] | None = None
    rows: list[dict[str, float]] = field(default_factory=list)
    fresh: bool = True
    mechanics: dict[str, Any] = field(default_factory=dict)


def _initial_state(volume: Volume) -> dict[str, np.ndarray]:
    shape = volume.shape
    return {
        "bone": volume.data,
        "phase": np.zeros(shape, np.uint8),
        "timer": np.zeros(shape, np.uint16),
        "resorbed_day": np.full(shape, -1, np.int32),
        "formed_day": np.full(shape, -1, np.int32),
    }


def _open_run(
    plan: RunPlan,
    folder: RunFolder | None,
    *,
    resume: bool,
    overwrite: bool,
    host_bytes_per_voxel: float = HOST_BYTES_PER_VOXEL,
) -> _Start:
    """The start of the loop: a fresh state, or the verified checkpoint of ``folder``."""
    if folder is None:
        if resume:
            raise BonesimError("resume=True needs `out` (the run's result file)")
        return _Start(_initial_state(plan.volume))
    check_output_path(folder.out, overwrite=overwrite)
    nvox = math.prod(plan.volume.shape)
    check_memory(nvox * host_bytes_per_voxel, what=f"simulating {plan.volume.shape} voxels")
    check_disk(folder.out, nvox * 14, what=f"the checkpoint of {plan.volume.shape} voxels")
    if not resume:
        if folder.exists() and not folder.path.is_dir():
            if not overwrite:
                what = f"{folder.path} exists but is not a run folder: nothing to resume; remove it or pass"
                raise BonesimError(
                    f"{what} overwrite=True to replace it", cli=f"{what} --overwrite to replace it"
                )
        elif folder.exists():
            folder.lock()  # refuses while another process writes this run
            if folder.has_checkpoint() and not overwrite:
                folder.unlock()
                what = f"an interrupted run exists in {folder.path}: pass"
                raise BonesimError(
                    f"{what} resume=True to continue it or overwrite=True to start over",
                    cli=f"{what} --resume to continue it or --overwrite to start over",
                )
            folder.unlock()
        return _Start(_initial_state(plan.volume))
    if not folder.exists():
        raise BonesimError(
            f"nothing to resume: no checkpoint in {folder.path} (the run completed or never started)"
        )
    folder.lock()
    if not folder.has_checkpoint():  # the run failed before its first checkpoint: nothing to lose
        log.warning("%s holds no checkpoint yet; the run starts from its beginning", folder.path)
        folder.unlock()
        return _Start(_initial_state(plan.volume))
    try:
        return _resume_point(plan, folder)
    except BaseException:
        folder.unlock()
        raise


def _resume_point(plan: RunPlan, folder: RunFolder) -> _Start:
    """The verified checkpoint of an interrupted run (the folder's lock is held)."""
    folder.check_identity(plan.config)
    ck = folder.read_checkpoint(plan.volume.shape)
    stored_total = folder.stored_config().get("total_steps", plan.total)
    if ck.step > plan.total:
        raise BonesimError(f"checkpoint is at step {ck.step}, beyond the {plan.total} steps asked for")
    if stored_total != plan.total and ck.step == stored_total and (ck.step - plan.n_spin) % plan.save_steps:
        raise BonesimError.fix(
            f"the interrupted run had already saved its final frame (step {ck.step}, off the save grid); "
            "it cannot be extended to more years",
            "resume it with its original `years`, then start a new run",
            "resume it with its original --years, then start a new run",
        )
    bad = folder.missing_frames(ck.n_frames, plan.volume.shape)
    if bad:
        log.warning(
            "frame(s) %s of %s are missing or corrupt; the run restarts from its beginning to rewrite them",
            ", ".join(map(str, bad)),
            folder.path,
        )
        return _Start(_initial_state(plan.volume), fresh=True)
    folder.drop_frames_from(ck.n_frames)
    log.info("resuming %s at step %d of %d", folder.path, ck.step, plan.total)
    return _Start(
        ck.state,
        ck.step,
        ck.n_frames,
        ck.prev_bone,
        ck.schedule,
        ck.metrics_acc,
        ck.rows,
        fresh=False,
        mechanics=ck.mechanics,
    )


def checkpoint_compression_for(checkpoint_compression: str, compression: str) -> str:
    """The checkpoint compression to use: ``"auto"`` is none when the frames are uncompressed, else lz4
    when hdf5plugin is installed, else none (gzip writes 2-4x slower; see docs/performance.md)."""
    from bonesim.io.hdf5 import CHECKPOINT_COMPRESSIONS, require_hdf5plugin

    if checkpoint_compression == "auto":
        if compression == "none":
            return "none"
        try:
            import hdf5plugin  # noqa: F401
        except ImportError:
            return "none"
        return "lz4"
    if checkpoint_compression not in CHECKPOINT_COMPRESSIONS:
        raise BonesimError(
            f"`checkpoint_compression` must be one of auto, {', '.join(CHECKPOINT_COMPRESSIONS)}; "
            f"got {checkpoint_compression!r}"
        )
    if checkpoint_compression in ("lz4", "zstd"):
        require_hdf5plugin(checkpoint_compression)
    return checkpoint_compression


class _Loop:
    """The day loop of one run and what it carries between steps.

    Save points hand an owned host snapshot of the state to a
    :class:`~bonesim.io.writer.BackgroundWriter` (frame first, then the
    checkpoint that counts it) and go on stepping while it is written.
    """

    def __init__(
        self,
        plan: RunPlan,
        be: Any,
        folder: RunFolder | None,
        start: _Start,
        compression: str,
        checkpoint_compression: str = "none",
        checkpoint_every_s: float | None = None,
    ) -> None:
        self.plan, self.be, self.folder, self.compression = plan, be, folder, compression
        self.ck_compression, self.ck_every_s = checkpoint_compression, checkpoint_every_s
        self.last_ck = time.monotonic()
        nvox = math.prod(plan.volume.shape)
        self.writer = (
            BackgroundWriter(WRITER_QUEUE_DEPTH, buffer_bytes=save_buffer_bytes(nvox))
            if folder is not None
            else None
        )
        self.sched = Schedule(plan.daily, plan.volume.voxel_size_um, plan.n_spin)
        self.metrics = Metrics()
        if start.schedule is not None:
            self.sched.set_state(start.schedule)
            self.metrics.set_state(start.metrics_acc)
            self.metrics.rows = start.rows
        self.n_frames, self.prev_bone, self.start = start.n_frames, start.prev_bone, start.step
        # the maps of the start are handed over where the backend can keep them (no copy), and the
        # start's arrays are dropped: from here the backend holds the only copy of the state
        own = {"own_maps": True} if "own_maps" in inspect.signature(be.upload).parameters else {}
        self.state = be.upload(
            *(start.state[k] for k in ("bone", "phase", "timer", "resorbed_day", "formed_day")),
            neighbourhood=self.sched.neighbourhood,
            **own,
        )
        start.state = {}
        self.mechano = None
        if plan.mechanics is not None:
            self.mechano = Mechanoregulation(plan.mechanics, plan.volume.voxel_size_um, plan.dt)
            if start.mechanics:
                self.mechano.set_state(start.mechanics)
        # the class field and table the backend holds are a function of the step (the last FE solve
        # and the day's drug modeling threshold): installed before the first step, fresh or resumed
        self.drug_thr = 0  # modeling threshold of the physiology's modeling-based formation (drugs)
        self.zero_mech: np.ndarray | None = None  # class-0 field of drug modeling without mechanics
        self.tables_dirty = True
        self.t_mech = 0.0
        self.rows_from = start.step  # step index of the first counter row not read yet
        self.done = start.step
        self.t_io = 0.0
        self.final: dict[str, np.ndarray] | None = None

    def drain(self) -> None:
        rows = self.be.read_counters(self.state)
        if len(rows):
            self.sched.add_counters(rows, self.rows_from)
            n_pre = max(0, self.plan.n_spin - self.rows_from)  # rows of spin-up steps
            half = max(0, self.plan.n_spin // 2 - self.rows_from)  # from the middle of the spin-up
            self.metrics.add_spinup(rows[half:n_pre])
            self.metrics.add(rows[n_pre:])
            self.rows_from += len(rows)

    def _checkpoint_due(self) -> bool:
        """At a save point: a checkpoint each time, or once ``ck_every_s`` have passed, and at the end."""
        if self.ck_every_s is None or self.done >= self.plan.total:
            return True
        return time.monotonic() - self.last_ck >= self.ck_every_s

    def save(self, *, frame: bool, checkpoint: bool | None = None) -> None:
        """A save point: a frame (after the spin-up) and/or a checkpoint of step ``self.done``.

        The state is streamed to the writer thread in z-slabs (:class:`_Slabs`), never gathered
        into a full host copy: the frame's job, then its slabs (and the frame's metrics, from
        the same pass), then the checkpoint's job and its slabs, field by field. The slabs are
        owned copies; the writer holds at most ``buffer_bytes`` of them, so the loop waits
        (back-pressure) only for the part of a save point that does not fit, and steps on once
        the last slab is handed over. ``checkpoint``: None = by the checkpoint interval.
        """
        t0 = time.perf_counter()
        if self.writer is not None:
            self.writer.check()  # an error of an earlier write surfaces here
        self.drain()
        day = self.plan.day_of(self.done)
        writing = self.folder is not None and self.writer is not None
        shape = tuple(self.plan.volume.shape)
        src = _Slabs(self.be, self.state, shape)
        streams: list[Any] = []
        try:
            if frame:
                fs = None
                if writing:
                    fs = self.writer.stream()
                    streams.append(fs)
                    self.writer.submit(
                        _write_job,
                        self.folder,
                        "frame",
                        self.folder.write_frame,
                        self.n_frames,
                        Streamed(fs, shape, "frame"),
                        day,
                        self.compression,
                    )
                self._frame_pass(src, day, fs)
            if writing and (checkpoint if checkpoint is not None else self._checkpoint_due()):
                cs = self.writer.stream()
                streams.append(cs)
                self.writer.submit(
                    _write_job,
                    self.folder,
                    "checkpoint",
                    self.folder.write_checkpoint,
                    Streamed(cs, shape),
                    step=self.done,
                    day=day,
                    schedule=copy.deepcopy(self.sched.get_state()),
                    metrics_acc=copy.deepcopy(self.metrics.get_state()),
                    metrics=copy.deepcopy(self.metrics.table()),
                    n_frames=self.n_frames + frame,
                    backend=self.be.name,
                    device=self.be.device,
                    seed=self.plan.seed,
                    compression=self.ck_compression,
                    mechanics=None if self.mechano is None else copy.deepcopy(self.mechano.get_state()),
                )
                ok = True
                plane = math.prod(shape[1:])
                for name, dt in STATE_DTYPES.items():  # the digest's order: field by field, slabs in order
                    for z0, z1 in slabs(shape[0]):
                        nbytes = (z1 - z0) * plane * np.dtype(dt).itemsize
                        ok = ok and cs.put(functools.partial(src.slab, name, z0, z1), nbytes)
                cs.end()
                self.last_ck = time.monotonic()
        except BaseException:
            for st in streams:  # the writer must not wait for slabs that never come
                st.abort()
            raise
        self.n_frames += frame
        self.t_io += time.perf_counter() - t0

    def _frame_pass(self, src: _Slabs, day: float, fs: Any) -> None:
        """One pass over the slabs: the frame's metrics row, ``prev_bone`` updated in place, and the
        bone slabs handed to the frame's stream ``fs`` (if any)."""
        shape = src.shape
        has_prev = self.prev_bone is not None
        if self.prev_bone is None:
            self.prev_bone = np.empty(shape, np.uint8)
        counts = np.zeros(len(FRAME_COUNTS), np.int64)
        ok = True

        def frame_slab(z0: int, z1: int) -> np.ndarray:
            bone = np.empty((z1 - z0, *shape[1:]), np.uint8)  # a new array: the stream owns it
            for a in range(z0, z1, 16):  # a few planes at a time: small temporaries
                b = min(a + 16, z1)
                word = src.slab("word", a, b)
                bone[a - z0 : b - z0] = field_of(word, "bone")
                prev = self.prev_bone[a:b] if has_prev else None
                counts[:] += frame_counts(
                    bone[a - z0 : b - z0], field_of(word, "phase"), field_of(word, "timer"), prev
                )
                del word
            self.prev_bone[z0:z1] = bone
            return bone

        plane = math.prod(shape[1:])
        for z0, z1 in slabs(shape[0]):
            if fs is None or not ok:
                frame_slab(z0, z1)
            else:
                ok = fs.put(functools.partial(frame_slab, z0, z1), (z1 - z0) * plane)
                if not ok:  # the writer failed: the metrics still need this slab
                    frame_slab(z0, z1)
        if fs is not None:
            for z0, z1 in slabs(shape[0]):  # the frame's formed_day map (per-voxel mineral age) follows
                if not ok:
                    break
                ok = fs.put(functools.partial(src.slab, "formed_day", z0, z1), (z1 - z0) * plane * 4)
            fs.end()
        self.metrics.frame_row_from_counts(day, math.prod(shape), counts, self.plan.dt, has_prev)

    def flush(self) -> None:
        """Wait until every queued frame and checkpoint is on disk; raise a writer error here."""
        if self.writer is not None:
            t0 = time.perf_counter()
            self.writer.drain()
            self.t_io += time.perf_counter() - t0

    def close(self, *, failing: bool = False) -> None:
        """Drain and stop the writer; ``failing``: another error propagates, so a writer error is only logged."""
        if self.writer is None:
            return
        try:
            self.flush()
        except BaseException as exc:
            if not failing:
                raise
            log.error("the background writer also failed: %s", exc)
        finally:
            self.writer.close()

    def _save_due(self) -> None:
        p, done = self.plan, self.done
        if done >= p.n_spin and ((done - p.n_spin) % p.save_steps == 0 or done == p.total):
            self.save(frame=True)
        elif self.folder is not None and done < p.n_spin and done % p.save_steps == 0:
            self.save(frame=False)  # checkpoints during the spin-up

    def run(self, interrupted: Callable[[], bool], progress: Callable | None, fresh: bool) -> None:
        """Steps ``start .. total``: mechanics when due, step, save on the grid, report each day."""
        p, t0 = self.plan, time.perf_counter()
        if fresh and self.folder is not None and self.start != p.n_spin:
            self.save(frame=False, checkpoint=True)  # a run killed during its spin-up can resume too
        if self.start == p.n_spin and self.n_frames == 0:
            self.save(frame=True)  # the day-0 frame
        for n in range(self.start, p.total):
            if interrupted():
                self._interrupt()
            if self.mechano is not None and self.mechano.due(n):
                self._solve_mechanics(n)
            self._sync_modeling(n)
            inputs = self.sched.inputs_for_step(n, seed=p.seed, drain=self.drain)
            self.be.step(self.state, inputs, step=n, map_day=int(p.day_of(n)) if n >= p.n_spin else -1)
            self.done = n + 1
            self._save_due()
            if progress is not None and (
                self.done == p.total or math.floor(self.done * p.dt) > math.floor(n * p.dt)
            ):  # once per simulated day (every step when dt >= 1 day), and at the end
                _report(progress, p, self.start, self.done, time.perf_counter() - t0)
        self.flush()  # every frame on disk before the result is assembled

    def _solve_mechanics(self, n: int) -> None:
        """FE on the bone after ``n`` steps: new signal classes and weights for the next steps."""
        t0 = time.perf_counter()
        up = self.mechano.update(self.be.download_bone(self.state), self.plan.magnitude_at(n))
        self.sched.formation_q16 = up.formation_q16
        self.tables_dirty = True  # installed by _sync_modeling, with the drug's modeling
        self.t_mech += time.perf_counter() - t0

    def _sync_modeling(self, n: int) -> None:
        """Install the class field and table of step ``n`` where they changed (docs/treatments.md).

        The physiology's modeling-based formation (``modeling_um_per_day``, anabolic drugs)
        becomes the threshold ``Schedule.modeling_thr(n)`` of the rule's modeling half
        ``lut[256 + class]``. With mechanics it is combined with the mechanical modeling table
        (either process starts formation, :func:`~bonesim.ca.schedule.combine_modeling`);
        without, every voxel is class 0 with activation weight 1 (``MECH_WEIGHT_ONE``: the
        activation threshold ``act_thr · 256 >> 8`` is ``act_thr``, bit for bit), a uint8 field
        allocated only while the threshold is nonzero. Everything installed is a function of
        ``n`` and the checkpointed mechanics state, so resumed runs install the same tables.
        """
        thr = self.sched.modeling_thr(n) if self.sched.any_modeling else 0
        if thr == self.drug_thr and not self.tables_dirty:
            return
        self.drug_thr, self.tables_dirty = thr, False
        if self.mechano is not None:
            if self.mechano.mech is None:  # no FE solve yet: nothing to steer (mechanics solve at step 0)
                return
            lut = self.mechano.lut.copy()
            lut[N_MECH_CLASSES:] = combine_modeling(lut[N_MECH_CLASSES:], thr)
            self.be.set_mechanics(self.state, self.mechano.mech, lut)
            self.sched.mech_on = 1
            self.sched.mod_on = int(self.mechano.p.modeling or thr > 0)
            return
        if thr == 0:
            if self.zero_mech is not None:
                self.be.set_mechanics(self.state, None, None)
                self.zero_mech = None
            self.sched.mech_on = self.sched.mod_on = 0
            return
        if self.zero_mech is None:
            self.zero_mech = np.zeros(tuple(self.plan.volume.shape), np.uint8)
        lut = np.concatenate(
            [np.full(N_MECH_CLASSES, MECH_WEIGHT_ONE, np.uint32), np.full(N_MECH_CLASSES, thr, np.uint32)]
        )
        self.be.set_mechanics(self.state, self.zero_mech, lut)
        self.sched.mech_on = self.sched.mod_on = 1

    def _interrupt(self) -> None:
        if self.folder is not None:
            self.save(frame=False, checkpoint=True)
            self.flush()
            log.warning(
                "interrupted: checkpoint of step %d (day %g) written to %s",
                self.done,
                self.plan.day_of(self.done),
                self.folder.path,
            )
        raise KeyboardInterrupt


def _write_job(folder: RunFolder, what: str, fn: Callable, *args: Any, **kwargs: Any) -> None:
    """One job of the background writer: an I/O error becomes one sentence that says how to go on."""
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise  # "disk full", said once by the CLI
        raise BonesimError(
            f"writing the {what} in {folder.path} failed ({exc.strerror or exc}); the run folder keeps its "
            "last checkpoint: fix the cause and continue with resume=True",
            cli=f"writing the {what} in {folder.path} failed ({exc.strerror or exc}); the run folder keeps "
            "its last checkpoint: fix the cause and continue with --resume",
        ) from None


def _report(progress: Callable, plan: RunPlan, start: int, done: int, elapsed: float) -> None:
    el = max(elapsed, 1e-9)
    nvox = math.prod(plan.volume.shape)
    progress(
        {
            "day": plan.day_of(done),
            "total_days": plan.n_main * plan.dt,
            "step": done,
            "total_steps": plan.total,
            "start_step": start,
            "spinup_days": plan.n_spin * plan.dt,
            "steps_per_s": (done - start) / el,
            "gvox_per_s": (done - start) * nvox / el / 1e9,
        }
    )


def _finish(loop: _Loop, wall: float, *, command: str | None, overwrite: bool) -> dict[str, float]:
    """Timings; and, with a run folder, the assembled result file, its provenance and XDMF."""
    plan, be = loop.plan, loop.be
    ran = plan.total - loop.start
    nvox = math.prod(plan.volume.shape)
    timings = {
        "wall_s": wall,
        "io_s": loop.t_io,
        "io_write_s": loop.writer.busy_s if loop.writer is not None else 0.0,
        "mechanics_s": loop.t_mech,
        "steps": ran,
        "steps_per_s": ran / wall if wall > 0 else float("nan"),
        "gvox_per_s": ran * nvox / (wall - loop.t_io - loop.t_mech) / 1e9
        if wall > loop.t_io + loop.t_mech
        else float("nan"),
    }
    if loop.folder is None:
        return timings
    provenance = {
        "command": command or f"bonesim.simulate(years={plan.years}, seed={plan.seed}, backend={be.name!r})",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "device": be.device,
        "backend": be.name,
    }
    loop.folder.assemble(
        loop.final,
        step=loop.done,
        seed=plan.seed,
        backend=be.name,
        device=be.device,
        metrics=loop.metrics.table(),
        n_frames=loop.n_frames,
        provenance=provenance,
        timings=timings,
        overwrite=overwrite,
        compression=loop.compression,
        state_attrs={
            "spinup_removed_per_day": loop.metrics.spinup_removed_per_day(loop.final["bone"].size, plan.dt)
        },
    )
    loop.folder.remove()
    with contextlib.suppress(Exception):
        from bonesim.io.xdmf import write_xdmf

        write_xdmf(loop.folder.out)
    return timings


def simulate(
    volume: Volume,
    params: RemodelingParams | Mapping[str, Any] | None = None,
    *,
    years: float,
    backend: Any = "auto",
    seed: int = 0,
    save_every: float = 30,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    spinup_years: float = 1.0,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    scenario: Any = None,
    base_params: RemodelingParams | None = None,
    compression: str = "gzip",
    mechanics: MechanoParams | bool | None = None,
    command: str | None = None,
    checkpoint_compression: str = "auto",
    checkpoint_every_minutes: float | None = None,
) -> SimulationResult:
    """Simulate bone remodeling of ``volume`` for ``years``.

    Parameters
    ----------
    volume : Volume
        uint8 bone fraction (255 = bone), isotropic voxel size.
    params : RemodelingParams or dict of arrays, optional
        Constant parameters, or a daily parameter table with columns ``day,
        acf_per_year, erosion_depth_um, resorption_days, reversal_days,
        mar_um_per_day, formation_efficiency`` (day 0 = end of spin-up).
        Default: ``scenario.table`` if a scenario is given, else healthy defaults.
    years : float
        Simulated time after the spin-up.
    backend : {'auto', 'numpy', 'cupy'} or backend object
        A name for :func:`bonesim.ca.backends.resolve_backend`, or a backend it returned.
    seed : int
        Seed of the counter-based RNG; same seed, same bits on every backend.
    save_every : float
        Days between saved frames (frames at day 0, every ``save_every`` days, and the end).
    out : path, optional
        Result file (schema 1). Without it nothing is written.
    overwrite : bool
        Replace ``out`` (and a stale ``out.partial``) if present.
    spinup_years : float
        Spin-up under the baseline (day-0) parameters before day 0, so the
        run starts with remodeling space open as in real bone.
    resume : bool
        Continue the interrupted run checkpointed in ``out.partial``.
    progress : callable, optional
        Called once per simulated day (spin-up included; every step when
        ``dt_days >= 1``) and at the end, with a dict: ``day`` (negative
        during the spin-up), ``total_days`` (after the spin-up),
        ``spinup_days``, ``step``, ``total_steps`` (spin-up + run),
        ``start_step`` (where this call started: > 0 on resume),
        ``steps_per_s`` and ``gvox_per_s`` (measured since the start).
    scenario : object, optional
        With attributes ``name``, ``toml`` and ``table`` (see
        ``bonesim.physiology.scenario_table``); stored in ``/scenario``.
    base_params : RemodelingParams, optional
        Fields a daily table does not hold (footprint, neighbourhood, dt).
    mechanics : MechanoParams or True, optional
        Mechanoregulation (``bonesim.ca.mechano``): the micro-FE is solved every
        ``interval_days`` on the current bone and its sensed strain energy steers
        where BMUs start; the daily table's ``load_magnitude`` column (if any)
        scales the habitual load. ``True``: default settings. Off by default.
    compression : {'gzip', 'zstd', 'none'}
        Compression of the frames and of the result file.
    command : str, optional
        Command line stored in ``/provenance``.
    checkpoint_compression : {'auto', 'none', 'gzip', 'lz4', 'zstd'}
        Compression of ``checkpoint.h5`` in the run folder (never part of the
        result); ``auto``: lz4 when hdf5plugin is installed (none when it is
        not, or when ``compression='none'``). lz4 and zstd need hdf5plugin.
    checkpoint_every_minutes : float, optional
        Write a checkpoint at the first save point after this many wall-clock
        minutes since the last one (and at the end, and on Ctrl-C); frames are
        still written at every save point. Default: a checkpoint at every save
        point. Neither setting changes results, so a run may be resumed with
        other values.

    Returns
    -------
    SimulationResult

    References
    ----------
    The BMU cycle and its parameters: see :mod:`bonesim.ca.params` and ``docs/model.md``.
    """
    plan = plan_run(
        volume,
        params,
        years=years,
        seed=seed,
        save_every=save_every,
        spinup_years=spinup_years,
        scenario=scenario,
        base_params=base_params,
        mechanics=mechanics,
    )
    ck_compression = checkpoint_compression_for(checkpoint_compression, compression)
    if checkpoint_every_minutes is not None and not (
        isinstance(checkpoint_every_minutes, (int, float)) and 0 < checkpoint_every_minutes < math.inf
    ):
        what = f"must be a positive number of minutes, got {checkpoint_every_minutes!r}"
        raise BonesimError(f"`checkpoint_every_minutes` {what}", cli=f"--checkpoint-every-minutes {what}")
    folder = RunFolder(out) if out is not None else None
    per_voxel = HOST_BYTES_PER_VOXEL
    if not isinstance(backend, str):
        per_voxel = getattr(backend, "host_bytes_per_voxel", HOST_BYTES_PER_VOXEL)
    if any(p.modeling_um_per_day > 0.0 for p in plan.daily):
        per_voxel += DRUG_MODELING_BYTES_PER_VOXEL
    start = _open_run(plan, folder, resume=resume, overwrite=overwrite, host_bytes_per_voxel=per_voxel)
    be = resolve_backend(backend) if isinstance(backend, str) else backend
    loop = None
    try:
        loop = _Loop(
            plan,
            be,
            folder,
            start,
            compression,
            ck_compression,
            None if checkpoint_every_minutes is None else 60.0 * checkpoint_every_minutes,
        )
        if folder is not None and start.fresh:  # only once the state is on the device
            folder.create()
            folder.write_input(
                volume, plan.config, plan.table, plan.scenario_name, plan.scenario_toml, compression
            )
        elif folder is not None:  # the run may be longer now
            folder.write_input(
                volume, plan.config, plan.table, plan.scenario_name, plan.scenario_toml, compression
            )
        t0 = time.perf_counter()
        with _sigint_flag() as interrupted:
            loop.run(interrupted, progress, start.fresh)
        # the final state: handed over by the backend (no second copy where it can), and the
        # loop's own copies dropped before the result file is assembled
        loop.prev_bone = None
        loop.final = be.release(loop.state) if hasattr(be, "release") else be.download(loop.state)
        loop.state = None
        timings = _finish(loop, time.perf_counter() - t0, command=command, overwrite=overwrite)
    except BaseException:
        if loop is not None:  # what was queued is written (consistent) before the lock is released
            loop.close(failing=True)
        raise
    else:
        loop.close()
    finally:
        if folder is not None:
            folder.unlock()
    return SimulationResult(
        volume=volume.with_data(loop.final["bone"], simulated_years=years, seed=int(seed)),
        metrics=loop.metrics.table(),
        path=Path(out) if out is not None else None,
        state=loop.final,
        backend=be.name,
        device=be.device,
        timings=timings,
    )


@contextlib.contextmanager
def _sigint_flag():
    """Turn Ctrl-C into a flag the loop checks between steps (main thread only)."""
    import signal
    import threading

    hit = [False]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if hit[0]:  # a second Ctrl-C while checkpointing: stop now
            raise KeyboardInterrupt
        hit[0] = True

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: hit[0]
    finally:
        signal.signal(signal.SIGINT, old)
