"""The time loop of the remodeling CA: spin-up, steps, saves, checkpoints, resume.

:func:`simulate` runs a bone volume through years of remodeling under
constant :class:`~bonesim.params.RemodelingParams` or a daily parameter table
(what ``bonesim.physiology`` produces), on the NumPy or CuPy backend, and
writes a schema-1 result file (see ``docs/simulate.md``).

While it runs, the run lives in the folder ``OUT.partial`` beside ``OUT``:
``input.h5`` (the input volume, the daily parameters, the run's
configuration), one ``frame_NNNNN.h5`` per saved frame and ``checkpoint.h5``
(the CA state, maps, metrics and the integer schedule state). Every one of
these files is written to a temporary name and renamed into place, so a run
killed at any instant (SIGKILL, node failure) leaves a consistent
checkpoint. The checkpoint is refreshed at every save point and on Ctrl-C;
``resume=True`` continues from it, bit for bit as one unbroken run. When the
run completes, ``OUT`` is assembled (again atomically) and the folder removed.

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
import shutil
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
    atomic_output,
    check_output_path,
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
    """The folder of an in-progress run writing ``out``: ``OUT.partial`` beside it."""
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
        for extra in part.glob("frame_*.h5"):  # a frame written after the last checkpoint
            if int(extra.stem.split("_")[1]) >= n_frames:
                extra.unlink()
        _write_input(part, volume, config, table, scen_name, scen_toml, compression)  # the run may be longer
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
        if part.exists():
            shutil.rmtree(part) if part.is_dir() else part.unlink()
        part.mkdir()
        _write_input(part, volume, config, table, scen_name, scen_toml, compression)
        first_checkpoint = True
    else:
        first_checkpoint = False
    rows_from = start  # step index of the first counter row not read yet

    def drain() -> None:
        nonlocal rows_from
        rows = be.read_counters(state)
        if len(rows):
            sched.add_counters(rows, rows_from)
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
            if frame:
                _write_frame(part, n_frames, st["bone"], day, compression)
            _write_checkpoint(part, st, done, day, sched, metrics, n_frames + frame, be, seed, compression)
        if frame:
            n_frames += 1
        t_io += time.perf_counter() - t0
        return st

    t_start = time.perf_counter()
    final_state = None
    nvox = math.prod(shape)
    done = start
    with _sigint_flag() as interrupted:
        if first_checkpoint and start != n_spin:
            save(start, frame=False)  # a run killed during its spin-up can resume too
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
            elif part is not None and done < n_spin and done % save_steps == 0:
                save(done, frame=False)  # checkpoints during the spin-up
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
        provenance = {
            "command": command or f"bonesim.simulate(years={years}, seed={seed}, backend={be.name!r})",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "device": be.device,
            "backend": be.name,
        }
        _assemble(
            part,
            out_path,
            final_state,
            done,
            seed,
            be,
            table_m,
            n_frames,
            provenance,
            timings,
            overwrite=overwrite,
            compression=compression,
        )
        shutil.rmtree(part)
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
@contextlib.contextmanager
def _atomic_h5(path: Path):
    """An HDF5 file written under a temporary name and renamed onto ``path`` when closed."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _write_input(
    part: Path, volume: Volume, config: dict, table: Mapping, name: str, toml: str, compression: str
) -> None:
    with _atomic_h5(part / "input.h5") as f:
        write_root_attrs(f, volume.voxel_size_um)
        g = f.create_group("volume")
        ds = create_array(g, "bone", volume.data, compression=compression)
        write_json_attr(ds, "metadata", volume.metadata)
        write_json_attr(f, "config", config)
        write_table(f.create_group("tables"), "physiology", table)
        sc = f.create_group("scenario")
        sc.attrs["name"] = name
        sc.attrs["toml"] = toml


def _write_frame(part: Path, index: int, bone: np.ndarray, day: float, compression: str) -> None:
    with _atomic_h5(part / f"frame_{index:05d}.h5") as f:
        create_array(f, "bone", bone, compression=compression)
        f.attrs["day"] = float(day)


def _write_state(f: h5py.File, st: Mapping[str, np.ndarray], compression: str) -> h5py.Group:
    s = f.create_group("state")
    for nm in ("bone", "phase", "timer"):
        create_array(s, nm, st[nm], compression=compression)
    m = f.create_group("maps")
    for nm in ("resorbed_day", "formed_day"):
        create_array(m, nm, st[nm], compression=compression)
    return s


def _write_checkpoint(
    part: Path,
    st: Mapping[str, np.ndarray],
    done: int,
    day: float,
    sched: Schedule,
    metrics: _Metrics,
    n_frames: int,
    be: Any,
    seed: int,
    compression: str,
) -> None:
    with _atomic_h5(part / "checkpoint.h5") as f:
        s = _write_state(f, st, compression)
        write_table(f.create_group("tables"), "metrics", metrics.table())
        s.attrs["step"] = int(done)
        s.attrs["day"] = float(day)
        s.attrs["seed"] = int(seed)
        s.attrs["backend"] = be.name
        s.attrs["device"] = be.device
        write_json_attr(s, "schedule", sched.get_state())
        write_json_attr(s, "metrics_acc", metrics.get_state())
        s.attrs["n_frames"] = int(n_frames)


def _read_checkpoint(part: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        with h5py.File(part / "input.h5", "r") as f:
            stored = read_json_attr(f, "config", {})
        f = h5py.File(part / "checkpoint.h5", "r")
    except (OSError, FileNotFoundError) as exc:
        raise BonesimError(
            f"checkpoint in {part} is missing or unreadable ({exc}); start over with --overwrite"
        ) from None
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
            f.close()
            raise BonesimError(
                f"cannot resume {part}: {key} differs (checkpoint {stored.get(key)!r}, now {config.get(key)!r}); "
                "resume with the same input, parameters and options, or start over with --overwrite"
            )
    with f:
        s = f["state"]
        n_frames = int(s.attrs["n_frames"])
        state = {nm: s[nm][...] for nm in ("bone", "phase", "timer")}
        state.update({nm: f["maps"][nm][...] for nm in ("resorbed_day", "formed_day")})
        t = read_table(f["tables/metrics"])
        rows = [{k: float(t[k][i]) for k in t} for i in range(len(t["day"]))] if t else []
        out = {
            "state": state,
            "step": int(s.attrs["step"]),
            "schedule": read_json_attr(s, "schedule"),
            "metrics_acc": read_json_attr(s, "metrics_acc"),
            "rows": rows[:n_frames],
            "n_frames": n_frames,
        }
    prev = None
    if n_frames > 0:
        with h5py.File(part / f"frame_{n_frames - 1:05d}.h5", "r") as fr:
            prev = fr["bone"][...]
    out["prev_bone"] = prev
    return out


def _assemble(
    part: Path,
    out: Path,
    st: Mapping[str, np.ndarray],
    done: int,
    seed: int,
    be: Any,
    metrics: Mapping[str, np.ndarray],
    n_frames: int,
    provenance: Mapping[str, Any],
    timings: Mapping[str, Any],
    *,
    overwrite: bool,
    compression: str,
) -> None:
    """Write the schema-1 result file from the run folder (atomically)."""
    with (
        atomic_output(out, overwrite=overwrite) as tmp,
        h5py.File(tmp, "w") as f,
        h5py.File(part / "input.h5", "r") as inp,
    ):
        for k, v in inp.attrs.items():
            if k != "config":
                f.attrs[k] = v
        inp.copy(inp["volume"], f, "volume")
        inp.copy(inp["scenario"], f, "scenario")
        s = _write_state(f, st, compression)
        s.attrs["step"] = int(done)
        s.attrs["day"] = float(metrics["day"][-1]) if len(metrics["day"]) else 0.0
        s.attrs["seed"] = int(seed)
        s.attrs["backend"] = be.name
        s.attrs["device"] = be.device
        s.attrs["config"] = inp.attrs["config"]
        s.attrs["n_frames"] = int(n_frames)
        s.attrs["complete"] = True
        shape = st["bone"].shape
        se = f.create_group("series")
        sb = create_array(
            se,
            "bone",
            shape=(n_frames, *shape),
            dtype=np.uint8,
            maxshape=(None, *shape),
            compression=compression,
        )
        days = np.empty(n_frames, np.float64)
        for i in range(n_frames):
            with h5py.File(part / f"frame_{i:05d}.h5", "r") as fr:
                sb[i] = fr["bone"][...]
                days[i] = float(fr.attrs["day"])
        create_array(se, "day", days, maxshape=(None,), compression=compression)
        t = f.create_group("tables")
        write_table(t, "metrics", metrics)
        inp.copy(inp["tables/physiology"], t, "physiology")
        g = f.create_group("provenance")
        for k, v in provenance.items():
            g.attrs[k] = v
        write_json_attr(g, "timings", dict(timings))
