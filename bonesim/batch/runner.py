"""Run a study: schedule its runs, skip finished ones, resume interrupted ones, summarise.

Each run writes ``<output>/runs/<run_id>.h5`` (a schema-1 result) and a small
status record ``<output>/status/<run_id>.json`` (state, error, timings, host,
device). A run counts as finished when its status says ``done`` and its result
file is there (or, without a status record, when the result file holds the
whole simulated period), so rerunning a study — after a crash, a killed job or
a changed manifest — only does what is missing. A failed run is recorded with
its error and never stops the others.

The scheduling itself is left to existing engines (see
:mod:`bonesim.batch.schedulers`): a Dask ``LocalCluster`` (or a
``concurrent.futures`` process pool without Dask), ``dask_cuda.LocalCUDACluster``,
``dask_jobqueue.SLURMCluster`` or a plain SLURM array job.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonesim.batch.manifest import Run, Study
from bonesim.errors import BonesimError

log = logging.getLogger(__name__)

SCHEDULERS = ("local", "dask-cuda", "slurm")
#: A run function: ``fn(run, *, resume) -> dict`` (extra fields for the record); the default calls the engine.
RunFn = Callable[..., Any]
Progress = Callable[[dict[str, Any], int, int], None]


@dataclass
class StudyResult:
    """What :func:`run_study` did: one record per run and the summary files."""

    study: Study
    records: list[dict[str, Any]]
    summary_csv: Path | None = None
    summary_h5: Path | None = None
    ensemble_csv: Path | None = None
    plots: list[Path] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.get("status") == status)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "failed"]


# ------------------------------------------------------------- status ----
def read_status(run: Run) -> dict[str, Any] | None:
    """The status record of ``run``, or None if it never started."""
    p = _status_file(run)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _status_file(run: Run) -> Path:
    # runs/<id>.h5 -> status/<id>.json (the run knows its output folder through ``out``)
    return run.out.parent.parent / "status" / f"{run.run_id}.json"


def _write_status(run: Run, record: dict[str, Any]) -> None:
    p = _status_file(run)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{socket.gethostname()}.{os.getpid()}.tmp")  # umask permissions
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=1, default=str)
    os.replace(tmp, p)


def days_per_year() -> float:
    """Days in a simulated year, as the engine counts them (365 if the engine is not installed)."""
    try:
        from bonesim.ca import engine

        return float(getattr(engine, "DAYS_PER_YEAR", 365.0))
    except ImportError:
        return 365.0


def result_complete(run: Run) -> bool:
    """True when ``run.out`` is a finished result of ``run``.

    The status record says ``done`` and the file exists, or the file itself
    says so: the engine marks ``/state`` ``complete`` (it only renames a run
    onto ``OUT`` when it has finished), or its latest state reaches the run's
    last day (results made outside ``bonesim batch``).
    """
    if not run.out.is_file():
        return False
    st = read_status(run)
    if st is not None and st.get("status") == "done":
        return True
    return _file_reaches_end(run)


def _file_reaches_end(run: Run) -> bool:
    from bonesim.io.hdf5 import open_bonesim

    try:
        with open_bonesim(run.out) as f:
            if "state" not in f:
                return False
            attrs = f["state"].attrs
            if "complete" in attrs:
                return bool(attrs["complete"])
            day = float(attrs.get("day", -1))
    except (BonesimError, OSError):
        return False
    return day >= run.years * days_per_year() - 0.5


def run_state(run: Run) -> str:
    """``done``, ``failed``, ``running`` (started, not finished: resumable) or ``pending``."""
    if result_complete(run):
        return "done"
    st = read_status(run)
    if st is None:
        return "pending"
    return "failed" if st.get("status") == "failed" else "running"


# ---------------------------------------------------------- one run ----
def default_run_fn(run: Run, *, resume: bool = False, progress: Callable | None = None) -> dict[str, Any]:
    """Simulate ``run`` with :func:`bonesim.ca.engine.simulate` and the run's scenario.

    Returns the device and backend the engine used (from the result's provenance).
    """
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
    if run.manifest is not None and "command" in inspect.signature(simulate).parameters:
        kwargs["command"] = f"bonesim batch {run.manifest} --run-index {run.index}"
    if run.chunks is not None:
        from bonesim.ca.backends.chunked import simulate_in_chunks

        simulate_in_chunks(
            volume, scenario.table, chunks=run.chunks, steps_per_exchange=run.steps_per_exchange, **kwargs
        )
    else:
        simulate(volume, scenario.table, **kwargs)
    return _provenance(run.out)


def _provenance(path: Path) -> dict[str, Any]:
    from bonesim.io.hdf5 import open_bonesim, read_json_attr

    out: dict[str, Any] = {}
    with contextlib.suppress(BonesimError, OSError), open_bonesim(path) as f:
        if "provenance" in f:
            attrs = f["provenance"].attrs
            for key in ("device", "backend"):
                if key in attrs:
                    v = attrs[key]
                    out[key] = v.decode() if isinstance(v, bytes) else str(v)
            timings = read_json_attr(f["provenance"], "timings", None)
            if isinstance(timings, dict):
                out["engine_timings"] = timings
        if "state" in f and "backend" not in out and "backend" in f["state"].attrs:
            v = f["state"].attrs["backend"]
            out["backend"] = v.decode() if isinstance(v, bytes) else str(v)
    return out


def has_checkpoint(run: Run) -> bool:
    """True when an interrupted run left a checkpoint to resume from.

    The engine builds its output in ``OUT.partial`` (also the checkpoint) and
    renames it onto ``OUT`` when the run completes; see
    :func:`bonesim.ca.engine.partial_path`.
    """
    try:
        from bonesim.ca.engine import partial_path
    except ImportError:  # engine not installed: the same convention
        return run.out.with_name(run.out.name + ".partial").exists()
    return partial_path(run.out).exists()


def execute_run(run: Run, *, run_fn: RunFn | None = None, force: bool = False) -> dict[str, Any]:
    """Run one simulation of a study (on whatever worker calls it) and return its record.

    Skips a finished run (``status='skipped'``) unless ``force``; resumes an
    interrupted one; catches every exception into ``status='failed'`` with the
    error message and traceback, so one bad run never stops a study.
    """
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
    record = {**base, "status": "running", "started": _iso(started), "attempts": attempts, "resumed": resume}
    _write_status(run, record)
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
    _write_status(run, record)
    return record


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


# -------------------------------------------------------------- study ----
def plan(study: Study, *, only: Iterable[int | str] | None = None) -> list[tuple[Run, str]]:
    """Each selected run with its state (``done``, ``failed``, ``running``, ``pending``)."""
    runs = study.runs if only is None else [study.run(k) for k in only]
    return [(r, run_state(r)) for r in runs]


def run_study(
    study: Study,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    only: Iterable[int | str] | None = None,
    run_fn: RunFn | None = None,
    summarize: bool = True,
    progress: Progress | None = None,
    cluster_options: dict[str, Any] | None = None,
    client: Any = None,
) -> StudyResult:
    """Run every unfinished run of ``study`` and write the study summary.

    Parameters
    ----------
    study : Study
        From :func:`bonesim.batch.load_manifest`.
    scheduler : {'local', 'dask-cuda', 'slurm'}
        ``local``: a process pool here (a Dask ``LocalCluster``; a
        ``concurrent.futures`` pool without Dask; in-process for one worker);
        ``dask-cuda``: one worker per visible GPU; ``slurm``: workers in SLURM
        jobs from ``dask_jobqueue.SLURMCluster`` with the manifest's ``[slurm]`` options.
    workers : int, optional
        Local processes, GPUs (dask-cuda: default all visible) or SLURM jobs.
    only : iterable of int or str, optional
        Run indices or ids to consider (default: all).
    run_fn : callable, optional
        ``run_fn(run, *, resume) -> dict``, replacing the engine call (tests, custom pipelines).
    summarize : bool
        Write ``summary.csv``, ``summary.h5``, ``ensemble.csv`` and plots afterwards.
    progress : callable, optional
        Called as ``progress(record, n_finished, n_total)`` after each run.
    cluster_options : dict, optional
        Extra keywords for the Dask cluster (override the manifest's ``[dask]``/``[slurm]``).
    client : distributed.Client, optional
        Use this Dask client instead of starting a cluster.

    Returns
    -------
    StudyResult
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f"`scheduler` must be one of {', '.join(map(repr, SCHEDULERS))}, got {scheduler!r}")
    t0 = time.perf_counter()
    prepare_output(study)
    states = plan(study, only=only)
    todo = [r for r, s in states if s != "done"]
    records: list[dict[str, Any]] = []
    total = len(states)
    log.info("study %s: %d runs, %d finished, %d to do", study.name, total, total - len(todo), len(todo))
    for r, s in states:
        if s == "done":
            rec = {
                **(read_status(r) or {}),
                "run_index": r.index,
                "run_id": r.run_id,
                "status": "skipped",
                "previous_status": "done",
            }
            records.append(rec)
            if progress:
                progress(rec, len(records), total)

    def _done(rec: dict[str, Any]) -> None:
        records.append(rec)
        if progress:
            progress(rec, len(records), total)

    if todo:
        from bonesim.batch import schedulers

        opts = dict(cluster_options or {})
        n = workers or schedulers.default_workers(study, scheduler, len(todo))
        if client is not None:
            schedulers.run_with_client(client, todo, run_fn, _done)
        elif scheduler == "local" and n == 1:
            for r in todo:
                _done(execute_run(r, run_fn=run_fn))
        else:
            schedulers.run_on_cluster(scheduler, study, todo, run_fn, _done, workers=n or None, options=opts)
    records.sort(key=lambda rec: rec.get("run_index", -1))
    result = StudyResult(study=study, records=records)
    if summarize:
        from bonesim.batch.summary import write_summary

        paths = write_summary(study)
        result.summary_csv, result.summary_h5 = paths["csv"], paths["h5"]
        result.ensemble_csv, result.plots = paths["ensemble_csv"], paths["plots"]
    result.wall_s = time.perf_counter() - t0
    return result


def run_one(
    study: Study, key: int | str, *, run_fn: RunFn | None = None, force: bool = False
) -> dict[str, Any]:
    """Run a single run of ``study`` in this process (what a SLURM array task does)."""
    prepare_output(study)
    return execute_run(study.run(key), run_fn=run_fn, force=force)


def prepare_output(study: Study) -> None:
    """Create the output folders and keep a copy of the manifest beside the results."""
    for sub in ("runs", "status", "logs"):
        (study.output / sub).mkdir(parents=True, exist_ok=True)
    if study.toml:
        copy = study.output / "study.toml"
        if not copy.exists() or copy.read_text(encoding="utf-8") != study.toml:
            copy.write_text(study.toml, encoding="utf-8")
