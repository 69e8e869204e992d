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

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonesim.batch import schedulers
from bonesim.batch.execute import RunFn, execute_run
from bonesim.batch.manifest import Run, Study
from bonesim.batch.status import changed_settings, read_status, run_state
from bonesim.batch.summary import write_summary
from bonesim.errors import BonesimError, InputError
from bonesim.io.result import RunFolder

log = logging.getLogger(__name__)

SCHEDULERS = ("local", "dask-cuda", "slurm")
#: The copy of the manifest kept beside a study's results.
MANIFEST_COPY = "bonesim-study.toml"
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
    overwrite: bool = False,
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
    overwrite : bool
        Replace the results of runs whose settings changed in the manifest
        (default: refuse, naming them and the settings).

    Returns
    -------
    StudyResult
    """
    if scheduler not in SCHEDULERS:
        raise InputError(f"`scheduler` must be one of {', '.join(map(repr, SCHEDULERS))}, got {scheduler!r}")
    t0 = time.perf_counter()
    prepare_output(study)
    states = plan(study, only=only)
    changed = [r for r, s in states if s == "changed"]
    if changed and not overwrite:
        first = changed[0]
        raise BonesimError.fix(
            f"{len(changed)} run(s) of study {study.name!r} exist with other settings than the manifest's now "
            f"(e.g. {first.run_id}: {'; '.join(changed_settings(first))})",
            "rerun with overwrite=True to replace them, or give the study a new output folder",
            "rerun with --overwrite to replace them, or give the study a new output folder",
        )
    for r in changed:  # overwrite: the old results go before any worker starts
        r.out.unlink(missing_ok=True)
        RunFolder(r.out).remove()
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
        paths = write_summary(study)
        result.summary_csv, result.summary_h5 = paths["csv"], paths["h5"]
        result.ensemble_csv, result.plots = paths["ensemble_csv"], paths["plots"]
    result.wall_s = time.perf_counter() - t0
    return result


def run_one(
    study: Study,
    key: int | str,
    *,
    run_fn: RunFn | None = None,
    force: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run a single run of ``study`` in this process (what a SLURM array task does)."""
    prepare_output(study)
    return execute_run(study.run(key), run_fn=run_fn, force=force, overwrite=overwrite)


def prepare_output(study: Study) -> None:
    """Create the output folders and keep a copy of the manifest beside the results."""
    for sub in ("runs", "status", "logs"):
        (study.output / sub).mkdir(parents=True, exist_ok=True)
    if study.toml:  # bonesim's own name: never a user's study.toml beside the results (output = ".")
        copy = study.output / MANIFEST_COPY
        if copy.is_symlink() or (copy.exists() and not copy.is_file()):
            raise BonesimError(f"{copy} exists and is not a regular file; remove it")
        if not copy.exists() or copy.read_text(encoding="utf-8") != study.toml:
            tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
            tmp.write_text(study.toml, encoding="utf-8")
            os.replace(tmp, copy)
