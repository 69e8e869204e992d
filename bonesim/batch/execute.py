"""One run of a study, on whatever worker calls it: skip, resume or run it, and record what happened."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bonesim.batch.manifest import Run
from bonesim.batch.status import (
    _iso,
    changed_settings,
    has_checkpoint,
    read_status,
    result_complete,
    write_status,
)
from bonesim.errors import BonesimError
from bonesim.io.result import RunFolder

log = logging.getLogger(__name__)

#: A run function: ``fn(run, *, resume) -> dict`` (extra fields for the record); the default calls the engine.
RunFn = Callable[..., Any]


def default_run_fn(run: Run, *, resume: bool = False, progress: Callable | None = None) -> dict[str, Any]:
    """Simulate ``run`` with :func:`bonesim.ca.engine.simulate` and the run's scenario.

    Returns the device and backend the engine used (from the result's provenance).
    """
    from bonesim.ca.backends import make_backend
    from bonesim.ca.engine import simulate
    from bonesim.physiology import scenario_table

    volume = run.input.load()
    scenario = scenario_table(run.scenario.ref, run.years)
    kwargs: dict[str, Any] = {
        "years": run.years,
        "backend": run.backend,
        "seed": run.seed,
        "save_every": run.save_every,
        "out": run.out,
        "overwrite": False,
        "spinup_years": run.spinup_years,
        "resume": resume,
        "progress": progress,
        "scenario": scenario,
    }
    if run.manifest is not None:
        kwargs["command"] = f"bonesim batch {run.manifest} --run-index {run.index}"
    kwargs["backend"] = make_backend(
        run.backend, chunks=run.chunks, steps_per_exchange=run.steps_per_exchange
    )
    simulate(volume, scenario.table, **kwargs)
    return _provenance(run.out)


def _provenance(path: Path) -> dict[str, Any]:
    from bonesim.io.result import Result

    try:
        info = Result.open(path)
    except (BonesimError, OSError):
        return {}
    out: dict[str, Any] = {k: str(info.provenance[k]) for k in ("device", "backend") if k in info.provenance}
    if isinstance(info.provenance.get("timings"), dict):
        out["engine_timings"] = info.provenance["timings"]
    if "backend" not in out and "backend" in info.state_attrs:
        out["backend"] = str(info.state_attrs["backend"])
    return out


def execute_run(
    run: Run, *, run_fn: RunFn | None = None, force: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Run one simulation of a study (on whatever worker calls it) and return its record.

    Skips a finished run (``status='skipped'``) unless ``force``; resumes an
    interrupted one; catches every exception into ``status='failed'`` with the
    error message and traceback, so one bad run never stops a study. A result
    or checkpoint made with other settings (years, spin-up, save interval,
    seed, scenario, input) is refused unless ``overwrite``, which replaces it.
    """
    changed = changed_settings(run)
    if changed and not overwrite:
        raise BonesimError.fix(
            f"run {run.run_id} exists with other settings ({'; '.join(changed)})",
            "rerun with overwrite=True to replace it, or give the study a new output folder",
            "rerun with --overwrite to replace it, or give the study a new output folder",
        )
    if changed or (force and overwrite):
        run.out.unlink(missing_ok=True)
        RunFolder(run.out).remove()
    base = {
        "run_index": run.index,
        "run_id": run.run_id,
        "out": str(run.out),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    if not force and result_complete(run):
        prev = read_status(run) or {}
        return {**prev, **base, "status": "skipped", "previous_status": prev.get("status", "done")}
    prev = read_status(run)
    attempts = int(prev.get("attempts", 0)) + 1 if prev else 1
    resume = has_checkpoint(run)
    run.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    record = {
        **base,
        "status": "running",
        "started": _iso(started),
        "attempts": attempts,
        "resumed": resume,
        "settings": run.settings(),
    }
    write_status(run, record)
    fn = run_fn or default_run_fn
    t0 = time.perf_counter()
    try:
        extra = fn(run, resume=resume) or {}
        record.update({k: v for k, v in dict(extra).items() if k not in base})
        record["status"] = "done"
        record["error"] = ""
    except Exception as exc:
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=20)
        log.error("run %s failed: %s", run.run_id, record["error"])
    record["wall_s"] = round(time.perf_counter() - t0, 3)
    record["finished"] = _iso(time.time())
    write_status(run, record)
    return record
