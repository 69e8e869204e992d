"""The time loop of the remodeling CA: spin-up, steps, saves, checkpoints, resume.

:func:`simulate` runs a bone volume through years of remodeling under
constant :class:`~bonesim.params.RemodelingParams` or a daily parameter table
(what ``bonesim.physiology`` produces), on the NumPy or CuPy backend, and
writes a schema-1 result file (see ``docs/simulate.md``).

While it runs, the output is built in ``OUT.partial`` beside ``OUT`` and
renamed onto ``OUT`` when the run completes. The partial file is also the
checkpoint: it is closed between save points, its ``/state`` is refreshed at
every save point and on Ctrl-C, and ``resume=True`` continues from it, bit for
bit as one unbroken run.

>>> import numpy as np
>>> from bonesim import Volume, phantom
>>> vol = Volume(phantom.plate((12, 12, 12), 6), voxel_size_um=20)
>>> res = simulate(vol, RemodelingParams(), years=0.1, spinup_years=0, backend="numpy")
>>> res.metrics["day"][:2].tolist(), res.volume.shape
([0.0, 30.0], (12, 12, 12))
"""

from __future__ import annotations

import contextlib
import hashlib
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

import h5py
import numpy as np

from bonesim._validation import check_in_range, check_positive
from bonesim.backends import COUNTERS, resolve_backend
from bonesim.backends.base import PH_F, PH_R, PH_V
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import (
    check_output_path,
    check_schema,
    create_array,
    read_json_attr,
    read_table,
    write_json_attr,
    write_root_attrs,
    write_table,
)
from bonesim.params import RemodelingParams, check_table, constant_table, params_from_table
from bonesim.schedule import CAL_EVERY, Schedule
from bonesim.volume import BONE_FULL, Volume

log = logging.getLogger(__name__)

DAYS_PER_YEAR = 365.25
#: Columns of /tables/metrics written by the engine (morphometry adds its own later).
METRIC_COLUMNS = (
    "day",
    "bv_tv",
    "resorbed_vox",
    "formed_vox",
    "bone_removed",
    "bone_added",
    "bmu_resorbing",
    "bmu_reversal",
    "bmu_forming",
    "cavity_vox",
    "surface_vox",
    "recruited",
    "seeds",
    "perforated",
    "acf_realised",
)


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


def partial_path(out: str | os.PathLike) -> Path:
    """The in-progress result and checkpoint file of ``out``: ``OUT.partial`` beside it."""
    p = Path(out)
    return p.with_name(p.name + ".partial")


def _table_digest(table: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(table):
        h.update(k.encode())
        h.update(np.ascontiguousarray(table[k], np.float64).tobytes())
    return h.hexdigest()[:16]


def _params_toml(p: RemodelingParams) -> str:
    lines = ["[remodeling]"]
    for k, v in p.to_dict().items():
        lines.append(f"{k} = {v!r}")
    return "\n".join(lines) + "\n"


class _Metrics:
    """Counters accumulated between two saved frames, and the metrics rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.reset()

    def reset(self) -> None:
        self.sums = np.zeros(len(COUNTERS), np.uint64)
        self.steps = 0

    def add(self, rows: np.ndarray) -> None:
        if len(rows):
            self.sums += np.asarray(rows, np.uint64).sum(axis=0)
            self.steps += len(rows)

    def get_state(self) -> dict[str, Any]:
        return {"sums": [int(v) for v in self.sums], "steps": self.steps}

    def set_state(self, st: Mapping[str, Any]) -> None:
        self.sums = np.array(st["sums"], np.uint64)
        self.steps = int(st["steps"])

    def frame_row(
        self, day: float, state: Mapping[str, np.ndarray], prev_bone: np.ndarray | None, dt: float
    ) -> dict:
        bone, phase, timer = state["bone"], state["phase"], state["timer"]
        n = bone.size
        ph = phase & 3
        c = dict(zip(COUNTERS, (int(v) for v in self.sums), strict=False))
        passive = (ph == PH_R) & (bone == 0) & (timer == 0)
        mean_surface = c["surface"] / self.steps if self.steps else float("nan")
        days = self.steps * dt
        acf = (
            c["recruited"] / mean_surface * DAYS_PER_YEAR / days
            if self.steps and mean_surface > 0
            else float("nan")
        )
        if prev_bone is None:
            resorbed = formed = 0
        else:
            resorbed = int(np.count_nonzero(bone < prev_bone))
            formed = int(np.count_nonzero(bone > prev_bone))
        row = {
            "day": float(day),
            "bv_tv": float(bone.sum(dtype=np.int64)) / (BONE_FULL * n),
            "resorbed_vox": resorbed,
            "formed_vox": formed,
            "bone_removed": c["removed"] / (BONE_FULL * n),
            "bone_added": c["added"] / (BONE_FULL * n),
            "bmu_resorbing": int(np.count_nonzero(ph == PH_R)) - int(np.count_nonzero(passive)),
            "bmu_reversal": int(np.count_nonzero(ph == PH_V)),
            "bmu_forming": int(np.count_nonzero(ph == PH_F)),
            "cavity_vox": int(np.count_nonzero(passive)),
            "surface_vox": mean_surface,
            "recruited": c["recruited"],
            "seeds": c["seeds"],
            "perforated": c["perforated"],
            "acf_realised": acf,
        }
        self.rows.append(row)
        self.reset()
        return row

    def table(self) -> dict[str, np.ndarray]:
        return {k: np.array([r[k] for r in self.rows], dtype=np.float64) for k in METRIC_COLUMNS}


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
        raise TypeError(
            f"`params` must be a RemodelingParams or a daily table (dict of arrays), got {type(params)}"
        )
    if scenario is not None:
        name = str(getattr(scenario, "name", name))
        toml = str(getattr(scenario, "toml", toml))
    return daily, table, name, toml


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
    command: str | None = None,
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
        A name for :func:`bonesim.backends.resolve_backend`, or a backend it returned.
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
        Called every few steps with a dict (``day``, ``total_days``, ``step``,
        ``total_steps``, ``steps_per_s``, ``gvox_per_s``).
    scenario : object, optional
        With attributes ``name``, ``toml`` and ``table`` (see
        ``bonesim.physiology.scenario_table``); stored in ``/scenario``.
    base_params : RemodelingParams, optional
        Fields a daily table does not hold (footprint, neighbourhood, dt).
    compression : {'gzip', 'zstd', 'none'}
    command : str, optional
        Command line stored in ``/provenance``.

    Returns
    -------
    SimulationResult

    References
    ----------
    The BMU cycle and its parameters: see :mod:`bonesim.params` and ``docs/model.md``.
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"`volume` must be a bonesim.Volume, got {type(volume).__name__}")
    if not volume.is_bone_fraction:
        raise BonesimError(
            f"simulate needs a uint8 bone-fraction volume, got {volume.data.dtype}; segment it first"
        )
    years = check_positive(years, name="years")
    save_every = check_positive(save_every, name="save_every")
    spinup_years = check_in_range(spinup_years, 0.0, 100.0, name="spinup_years")
    n_days = math.ceil(years * DAYS_PER_YEAR)
    daily, table, scen_name, scen_toml = _resolve_daily(params, scenario, base_params, n_days)
    dt = daily[0].dt_days
    n_spin = round(spinup_years * DAYS_PER_YEAR / dt)
    n_main = max(1, round(years * DAYS_PER_YEAR / dt))
    total = n_spin + n_main
    save_steps = max(1, round(save_every / dt))
    sched = Schedule(daily, volume.voxel_size_um, n_spin)
    be = resolve_backend(backend) if isinstance(backend, str) else backend
    config = {
        "seed": int(seed),
        # constant parameters: their values (so a resumed run may ask for more years); tables: the table
        "table_digest": _table_digest(
            {k: np.atleast_1d(np.float64(v)) for k, v in daily[0].to_dict().items()}
            if isinstance(params, RemodelingParams) or (params is None and scenario is None)
            else table
        ),
        "neighbourhood": sched.neighbourhood,
        "footprint_radius_um": daily[0].footprint_radius_um,
        "dt_days": dt,
        "spinup_steps": n_spin,
        "save_steps": save_steps,
        "shape": list(volume.shape),
        "voxel_size_um": volume.voxel_size_um,
    }

    shape = volume.shape
    metrics = _Metrics()
    prev_bone: np.ndarray | None = None
    start = 0
    n_frames = 0
    out_path = Path(out) if out is not None else None
    part = partial_path(out_path) if out_path is not None else None
    t_io = 0.0
    create_partial = False

    if resume:
        if part is None:
            raise BonesimError("resume=True needs `out` (the run's result file)")
        if not part.exists():
            raise BonesimError(
                f"nothing to resume: no checkpoint {part} (the run completed or never started)"
            )
        if out_path.exists() and not overwrite:
            raise BonesimError(
                f"output file {out_path} exists; pass overwrite=True (--overwrite) to replace it"
            )
        ck = _read_checkpoint(part, config)
        init = ck["state"]
        start = ck["step"]
        sched.set_state(ck["schedule"])
        metrics.set_state(ck["metrics_acc"])
        metrics.rows = ck["rows"]
        n_frames = ck["n_frames"]
        prev_bone = ck["prev_bone"]
        if start > total:
            raise BonesimError(f"checkpoint is at step {start}, beyond the {total} steps asked for")
        with _open_retry(part, "a") as f:  # drop a frame half-written when the run was killed
            for nm in ("series/bone", "series/day"):
                if f[nm].shape[0] > n_frames:
                    f[nm].resize(n_frames, axis=0)
            write_table(f["tables"], "physiology", table)  # the run may now be longer
        log.info("resuming %s at step %d of %d", part, start, total)
    else:
        init = {
            "bone": volume.data,
            "phase": np.zeros(shape, np.uint8),
            "timer": np.zeros(shape, np.uint16),
            "resorbed_day": np.full(shape, -1, np.int32),
            "formed_day": np.full(shape, -1, np.int32),
        }
        if out_path is not None:
            check_output_path(out_path, overwrite=overwrite)
            if part.exists() and not overwrite:
                raise BonesimError(
                    f"an interrupted run exists in {part}: pass resume=True (--resume) to continue it "
                    "or overwrite=True (--overwrite) to start over"
                )
            create_partial = True

    state = be.upload(
        init["bone"],
        init["phase"],
        init["timer"],
        init["resorbed_day"],
        init["formed_day"],
        neighbourhood=sched.neighbourhood,
    )
    del init
    if create_partial:  # only once the state is on the device: a failed upload leaves no stale checkpoint
        _create_partial(part, volume, config, table, scen_name, scen_toml, compression)
    rows_from = start  # step index of the first counter row not read yet

    def drain() -> None:
        nonlocal rows_from
        rows = be.read_counters(state)
        if len(rows):
            sched.add_counters(rows)
            first_main = max(0, n_spin - rows_from)
            metrics.add(rows[first_main:])
            rows_from += len(rows)

    def save(done: int, *, frame: bool) -> None:
        nonlocal n_frames, prev_bone, t_io
        t0 = time.perf_counter()
        drain()
        st = be.download(state)
        day = (done - n_spin) * dt
        if frame:
            metrics.frame_row(day, st, prev_bone, dt)
            prev_bone = st["bone"].copy()
        if part is not None:
            _write_checkpoint(part, st, done, day, sched, metrics, n_frames, frame, be, seed, compression)
        if frame:
            n_frames += 1
        t_io += time.perf_counter() - t0
        return st

    t_start = time.perf_counter()
    final_state = None
    nvox = math.prod(shape)
    done = start
    with _sigint_flag() as interrupted:
        if start == n_spin and n_frames == 0:
            final_state = save(start, frame=True)  # day-0 frame of a run without spin-up
        for n in range(start, total):
            if interrupted():
                if part is not None:
                    save(done, frame=False)
                    log.warning(
                        "interrupted: checkpoint of step %d (day %g) written to %s",
                        done,
                        (done - n_spin) * dt,
                        part,
                    )
                raise KeyboardInterrupt
            if n % CAL_EVERY == 0:
                drain()
                sched.calibrate()
            inputs = sched.inputs(n, seed=seed)
            map_day = int((n - n_spin) * dt) if n >= n_spin else -1
            be.step(state, inputs, step=n, map_day=map_day)
            done = n + 1
            if done >= n_spin and ((done - n_spin) % save_steps == 0 or done == total):
                final_state = save(done, frame=True)
            if progress is not None and (done % CAL_EVERY == 0 or done == total):
                el = max(time.perf_counter() - t_start, 1e-9)
                progress(
                    {
                        "day": (done - n_spin) * dt,
                        "total_days": n_main * dt,
                        "step": done,
                        "total_steps": total,
                        "steps_per_s": (done - start) / el,
                        "gvox_per_s": (done - start) * nvox / el / 1e9,
                    }
                )
    wall = time.perf_counter() - t_start
    if final_state is None:
        final_state = be.download(state)
    ran = total - start
    timings = {
        "wall_s": wall,
        "io_s": t_io,
        "steps": ran,
        "steps_per_s": ran / wall if wall > 0 else float("nan"),
        "gvox_per_s": ran * nvox / (wall - t_io) / 1e9 if wall > t_io else float("nan"),
    }
    table_m = metrics.table()
    if part is not None:
        with _open_retry(part, "a") as f:
            g = f.require_group("provenance")
            g.attrs["command"] = (
                command or f"bonesim.simulate(years={years}, seed={seed}, backend={backend!r})"
            )
            g.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            g.attrs["host"] = socket.gethostname()
            g.attrs["device"] = be.device
            g.attrs["backend"] = be.name
            write_json_attr(g, "timings", timings)
            f["state"].attrs["complete"] = True
        os.replace(part, out_path)
        with contextlib.suppress(Exception):
            from bonesim.io.xdmf import write_xdmf

            write_xdmf(out_path)
    return SimulationResult(
        volume=volume.with_data(final_state["bone"], simulated_years=years, seed=int(seed)),
        metrics=table_m,
        path=out_path,
        state=final_state,
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


# ------------------------------------------------------------------ files --
def _open_retry(path: Path, mode: str, *, tries: int = 50, wait_s: float = 0.2) -> h5py.File:
    """Open an HDF5 file, retrying while another process (a reader) holds its lock."""
    for i in range(tries):
        try:
            return h5py.File(path, mode)
        except BlockingIOError:
            if i == tries - 1:
                raise BonesimError(f"{path} stays locked by another process; close it and --resume") from None
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def _create_partial(
    part: Path, volume: Volume, config: dict, table: Mapping, name: str, toml: str, compression: str
) -> None:
    shape = volume.shape
    with h5py.File(part, "w") as f:
        write_root_attrs(f, volume.voxel_size_um)
        g = f.create_group("volume")
        ds = create_array(g, "bone", volume.data, compression=compression)
        write_json_attr(ds, "metadata", volume.metadata)
        s = f.create_group("state")
        for nm, dt in (("bone", np.uint8), ("phase", np.uint8), ("timer", np.uint16)):
            create_array(s, nm, shape=shape, dtype=dt, compression=compression)
        m = f.create_group("maps")
        for nm in ("resorbed_day", "formed_day"):
            create_array(m, nm, shape=shape, dtype=np.int32, compression=compression, fillvalue=-1)
        se = f.create_group("series")
        create_array(
            se, "bone", shape=(0, *shape), dtype=np.uint8, maxshape=(None, *shape), compression=compression
        )
        create_array(se, "day", shape=(0,), dtype=np.float64, maxshape=(None,), compression=compression)
        t = f.create_group("tables")
        write_table(t, "physiology", table)
        sc = f.create_group("scenario")
        sc.attrs["name"] = name
        sc.attrs["toml"] = toml
        write_json_attr(s, "config", config)
        s.attrs["step"] = -1
        s.attrs["complete"] = False


def _write_checkpoint(
    part: Path,
    st: Mapping[str, np.ndarray],
    done: int,
    day: float,
    sched: Schedule,
    metrics: _Metrics,
    n_frames: int,
    frame: bool,
    be: Any,
    seed: int,
    compression: str,
) -> None:
    with _open_retry(part, "a") as f:
        if frame:
            sb, sd = f["series/bone"], f["series/day"]
            sb.resize(n_frames + 1, axis=0)
            sd.resize(n_frames + 1, axis=0)
            sb[n_frames] = st["bone"]
            sd[n_frames] = day
            write_table(f["tables"], "metrics", metrics.table())
        s = f["state"]
        for nm in ("bone", "phase", "timer"):
            s[nm][...] = st[nm]
        for nm in ("resorbed_day", "formed_day"):
            f["maps"][nm][...] = st[nm]
        s.attrs["day"] = float(day)
        s.attrs["seed"] = int(seed)
        s.attrs["backend"] = be.name
        s.attrs["device"] = be.device
        write_json_attr(s, "schedule", sched.get_state())
        write_json_attr(s, "metrics_acc", metrics.get_state())
        s.attrs["n_frames"] = n_frames + (1 if frame else 0)
        s.attrs["step"] = int(done)  # written last: marks the checkpoint complete


def _read_checkpoint(part: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        f = h5py.File(part, "r")
    except OSError as exc:
        raise BonesimError(f"checkpoint {part} is unreadable ({exc}); start over with --overwrite") from None
    with f:
        check_schema(f, part)
        s = f["state"]
        stored = read_json_attr(s, "config", {})
        for key in (
            "seed",
            "table_digest",
            "neighbourhood",
            "footprint_radius_um",
            "dt_days",
            "spinup_steps",
            "save_steps",
            "shape",
            "voxel_size_um",
        ):
            if stored.get(key) != config.get(key):
                raise BonesimError(
                    f"cannot resume {part}: {key} differs (checkpoint {stored.get(key)!r}, now {config.get(key)!r}); "
                    "resume with the same input, parameters and options, or start over with --overwrite"
                )
        step = int(s.attrs["step"])
        if step < 0:
            raise BonesimError(f"checkpoint {part} holds no state yet; start over with --overwrite")
        n_frames = int(s.attrs["n_frames"])
        state = {nm: s[nm][...] for nm in ("bone", "phase", "timer")}
        state.update({nm: f["maps"][nm][...] for nm in ("resorbed_day", "formed_day")})
        rows: list[dict[str, float]] = []
        if "tables/metrics" in f:
            t = read_table(f["tables/metrics"])
            rows = [{k: float(t[k][i]) for k in t} for i in range(min(n_frames, len(t["day"])))]
        prev = f["series/bone"][n_frames - 1] if n_frames > 0 else None
        return {
            "state": state,
            "step": step,
            "schedule": read_json_attr(s, "schedule"),
            "metrics_acc": read_json_attr(s, "metrics_acc"),
            "rows": rows,
            "n_frames": n_frames,
            "prev_bone": prev,
        }
