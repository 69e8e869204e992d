"""Where runs execute: Dask clusters (local, dask-cuda, SLURM) and SLURM array scripts.

bonesim writes no scheduler of its own. Runs are independent tasks handed to

- ``local``: ``distributed.LocalCluster`` (one single-threaded process per
  worker), or a ``concurrent.futures.ProcessPoolExecutor`` when Dask is not installed;
- ``dask-cuda``: ``dask_cuda.LocalCUDACluster``, one worker per visible GPU;
- ``slurm``: ``dask_jobqueue.SLURMCluster``, each SLURM job one worker with
  its GPU(s), scaled to the number of jobs asked for;

or, for sites without Dask, to a plain ``sbatch`` array script
(:func:`slurm_array_script`) whose tasks each run ``bonesim batch study.toml
--run-index $SLURM_ARRAY_TASK_ID``. Dask, dask-cuda and dask-jobqueue are
imported only here and only when used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from bonesim.batch.execute import execute_run
from bonesim.batch.manifest import Run, Study
from bonesim.batch.status import write_status
from bonesim.errors import BonesimError, InputError

log = logging.getLogger(__name__)

DEFAULT_SLURM = {
    "gpus_per_task": 1,
    "cpus_per_task": 4,
    "mem": "32G",
    "time": "04:00:00",
    "bonesim": "bonesim",
}


def default_workers(study: Study, scheduler: str, n_runs: int) -> int:
    """Workers to start when none are asked for.

    ``local``: one per CPU core for the NumPy backend, one otherwise (a GPU is
    shared best by a few processes at most; ask for more with ``--workers``);
    ``slurm``: one job per run up to ``[slurm] jobs`` (default 4).
    """
    if study.dask.get("workers"):
        return int(study.dask["workers"])
    if scheduler == "local":
        return max(1, min(os.cpu_count() or 1, n_runs)) if study.backend == "numpy" else 1
    if scheduler == "slurm":
        return max(1, min(int(study.slurm.get("jobs", 4)), n_runs))
    return 0  # dask-cuda: all visible GPUs


# ------------------------------------------------------------ clusters ----
def _need(module: str, scheduler: str, pip: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        tail = f" needs the {pip} package, which is not installed: pip install {pip} (or pip install 'bonesim[hpc]')"
        raise BonesimError(
            f"the scheduler {scheduler!r}{tail}", cli=f"--scheduler {scheduler}{tail}"
        ) from None


def make_cluster(
    scheduler: str, study: Study, *, workers: int | None = None, options: dict[str, Any] | None = None
) -> Any:
    """Start (and return) the Dask cluster for ``scheduler``."""
    opts = dict(options or {})
    if scheduler == "local":
        distributed = _need("distributed", scheduler, "distributed")
        kw = {
            "n_workers": workers or 1,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
        for key in ("threads_per_worker", "memory_limit"):
            if key in study.dask:
                kw[key] = study.dask[key]
        kw.update(opts)
        if kw.get("processes", True) and "worker_class" not in kw:
            kw["worker_class"] = _patient_nanny()
        return distributed.LocalCluster(**kw)
    if scheduler == "dask-cuda":
        dask_cuda = _need("dask_cuda", scheduler, "dask-cuda")
        kw = {"threads_per_worker": 1, "dashboard_address": None}
        if workers:
            kw["n_workers"] = workers
        kw.update(opts)
        return dask_cuda.LocalCUDACluster(**kw)
    if scheduler == "slurm":
        jobqueue = _need("dask_jobqueue", scheduler, "dask-jobqueue")
        kw = slurm_cluster_kwargs(study)
        kw.update(opts)
        cluster = jobqueue.SLURMCluster(**kw)
        cluster.scale(jobs=workers or 1)
        return cluster
    raise InputError(f"`scheduler` must be 'local', 'dask-cuda' or 'slurm', got {scheduler!r}")


def slurm_cluster_kwargs(study: Study) -> dict[str, Any]:
    """Keywords for ``dask_jobqueue.SLURMCluster`` from the manifest's ``[slurm]`` table.

    Each job is one Dask worker process with a ``GPU`` resource equal to its
    GPU count (1 for a CPU job: the resource is then a slot); every run asks
    for one ``GPU``, so a job runs as many simulations at once as it has GPUs,
    a CPU job one. ``--gres`` as :func:`gpus_per_task` says.
    """
    s = {**DEFAULT_SLURM, **study.slurm}
    gpus = s["gpus_per_task"] = gpus_per_task(study)
    directives = slurm_directives(s, array=False)
    kw: dict[str, Any] = {
        "cores": int(s["cpus_per_task"]),
        "processes": 1,
        "memory": _dask_memory(str(s["mem"])),
        "walltime": str(s["time"]),
        "job_name": f"bonesim-{study.name}",
        "job_extra_directives": directives,
        "job_script_prologue": list(s.get("setup", [])),
        "log_directory": str(study.output / "logs"),
        "worker_extra_args": ["--resources", f"GPU={max(gpus, 1)}"],
    }
    if s.get("partition"):
        kw["queue"] = s["partition"]
    if s.get("account"):
        kw["account"] = s["account"]
    if s.get("python"):
        kw["python"] = s["python"]
    return kw


def gpus_per_task(study: Study) -> int:
    """GPUs a SLURM job or array task asks for (``--gres``): ``[slurm] gpus_per_task`` when given,
    else 1 for a study with a CuPy run and 0 otherwise (a NumPy study needs none, and "auto"
    without a GPU falls back to NumPy on the node): a CPU study never waits for a GPU node.
    """
    if "gpus_per_task" in study.slurm:
        return int(study.slurm["gpus_per_task"])
    return max(1, int(DEFAULT_SLURM["gpus_per_task"])) if any(r.backend == "cupy" for r in study.runs) else 0


def _dask_memory(mem: str) -> str:
    """SLURM ``--mem`` (``32G``, ``32000M``) → a Dask memory string (``32GB``)."""
    m = mem.strip().upper()
    if m and m[-1] in "KMGT" and not m.endswith("B"):
        return m + "B"
    if m.isdigit():  # SLURM default unit: megabytes
        return m + "MB"
    return m


def slurm_directives(s: dict[str, Any], *, array: bool) -> list[str]:
    """``#SBATCH`` options (without the prefix) for GPUs, CPUs, memory and the extras.

    For a Dask cluster, dask-jobqueue writes partition, account, time, CPUs and
    memory itself; only the rest is returned.
    """
    gpus = int(s.get("gpus_per_task", 1))
    out = []
    if array:
        for key, flag in (
            ("partition", "partition"),
            ("account", "account"),
            ("time", "time"),
            ("cpus_per_task", "cpus-per-task"),
            ("mem", "mem"),
        ):
            if s.get(key):
                out.append(f"--{flag}={s[key]}")
    if gpus > 0:
        gtype = f"{s['gpu_type']}:" if s.get("gpu_type") else ""
        out.append(f"--gres=gpu:{gtype}{gpus}")
    for key in ("qos", "constraint"):
        if s.get(key):
            out.append(f"--{key}={s[key]}")
    extra = s.get("extra", [])
    out.extend([extra] if isinstance(extra, str) else list(extra))
    return out


def run_on_cluster(
    scheduler: str,
    study: Study,
    runs: Sequence[Run],
    run_fn: Callable | None,
    on_done: Callable[[dict[str, Any]], None],
    *,
    workers: int | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Start the cluster for ``scheduler``, run ``runs`` on it and stop it."""
    n = workers or default_workers(study, scheduler, len(runs))
    if scheduler == "local":
        try:
            import distributed  # noqa: F401
        except ImportError:
            log.info("distributed is not installed: using a concurrent.futures process pool")
            _run_process_pool(runs, run_fn, on_done, n)
            return
    with _quiet_dask():
        cluster = make_cluster(scheduler, study, workers=n, options=options)
        client = None
        try:
            from distributed import Client

            client = Client(cluster)
            if scheduler == "slurm":
                log.warning("waiting for SLURM jobs to start workers (dashboard: %s)", client.dashboard_link)
            run_with_client(client, runs, run_fn, on_done, gpu_resource=(scheduler == "slurm"))
        finally:
            shutdown(client, cluster)


#: Seconds a local worker process gets to exit when a study ends, before its nanny kills it
#: (Dask's own budget is 4 s, which a loaded node misses: "Worker process still alive ... killing").
WORKER_EXIT_S = 30.0
#: Seconds the client and then the cluster get to close.
SHUTDOWN_TIMEOUT_S = 60.0


def _patient_nanny() -> type:
    """``distributed.Nanny`` whose close waits up to WORKER_EXIT_S for its worker process."""
    from distributed import Nanny

    class PatientNanny(Nanny):
        async def close(self, timeout: float = WORKER_EXIT_S / 0.8, reason: str = "nanny-close") -> Any:
            return await super().close(timeout=timeout, reason=reason)

    return PatientNanny


def shutdown(client: Any, cluster: Any, timeout: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Stop a study's Dask cluster cleanly: close the client, then the cluster, each with ``timeout``.

    The local cluster's nannies (:func:`_patient_nanny`) give each worker
    process WORKER_EXIT_S to exit, so a slow exit on a loaded node is waited
    for instead of killed.
    """
    if client is not None:
        with contextlib.suppress(Exception):  # a dead scheduler: nothing to say goodbye to
            client.close(timeout=timeout)
    try:
        cluster.close(timeout=timeout)
    except TimeoutError:  # the results are written; only the cluster's own teardown hangs
        log.warning("the Dask cluster did not close within %.0f s; its processes end with this one", timeout)


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Keep Dask's own INFO chatter (scheduler, nanny start/stop) out of the output unless -v asked for it."""
    logger = logging.getLogger("distributed")
    old = logger.level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def run_with_client(
    client: Any,
    runs: Iterable[Run],
    run_fn: Callable | None,
    on_done: Callable[[dict[str, Any]], None],
    *,
    gpu_resource: bool = False,
) -> None:
    """Submit each run as one Dask task and report records as they finish (any order)."""
    from distributed import as_completed

    futures = {}
    for r in runs:
        kw: dict[str, Any] = {"key": f"bonesim-run-{r.run_id}", "pure": False, "retries": 0}
        if gpu_resource:
            kw["resources"] = {"GPU": 1}
        fut = client.submit(execute_run, r, run_fn=run_fn, **kw)
        futures[fut] = r
    for fut in as_completed(list(futures)):
        r = futures[fut]
        try:
            rec = fut.result()
        except Exception as exc:  # the worker died (killed, out of memory): record it, go on
            rec = {
                "run_index": r.index,
                "run_id": r.run_id,
                "out": str(r.out),
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}",
            }
            write_status(r, rec)
        on_done(rec)


def _run_process_pool(
    runs: Sequence[Run], run_fn: Callable | None, on_done: Callable[[dict[str, Any]], None], workers: int
) -> None:
    import concurrent.futures as cf
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # CUDA does not survive fork
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = {pool.submit(execute_run, r, run_fn=run_fn): r for r in runs}
        for fut in cf.as_completed(futs):
            r = futs[fut]
            try:
                rec = fut.result()
            except Exception as exc:
                rec = {
                    "run_index": r.index,
                    "run_id": r.run_id,
                    "status": "failed",
                    "error": f"{type(exc).__name__}: {exc}",
                }
                write_status(r, rec)
            on_done(rec)


# --------------------------------------------------------- SLURM array ----
def index_ranges(indices: Iterable[int]) -> str:
    """SLURM ``--array`` syntax for a set of indices.

    >>> index_ranges([0, 1, 2, 5, 7, 8])
    '0-2,5,7-8'
    """
    idx = sorted(set(int(i) for i in indices))
    parts: list[str] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        parts.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ",".join(parts)


def slurm_array_script(
    study: Study, *, indices: Iterable[int] | None = None, manifest: str | os.PathLike | None = None
) -> str:
    """A plain ``sbatch`` array script: one run of ``study`` per array index.

    Parameters
    ----------
    study : Study
        Its ``[slurm]`` table sets partition, account, time, GPUs
        (``gpus_per_task``, ``gpu_type`` → ``--gres=gpu[:type]:N``; without
        ``gpus_per_task`` a GPU is asked for only when a run's backend is
        ``cupy``, not for ``numpy`` or ``auto``), CPUs,
        memory, ``array_parallelism`` (``%N``: at most N tasks at once), the
        environment ``setup`` lines and the ``bonesim`` command.
    indices : iterable of int, optional
        Run indices to include (default: every run); finished runs are
        skipped by the tasks anyway.
    manifest : path-like, optional
        The manifest the tasks read (default: the study's own file).
    """
    s = {**DEFAULT_SLURM, **study.slurm}
    idx = list(range(len(study.runs))) if indices is None else sorted(set(indices))
    if not idx:
        raise BonesimError(f"study {study.name!r}: no run left to submit")
    manifest = manifest or study.manifest
    if manifest is None:
        raise BonesimError("a SLURM array script needs the study's manifest file")
    array = index_ranges(idx)
    if s.get("array_parallelism"):
        array += f"%{int(s['array_parallelism'])}"
    note = []
    s["gpus_per_task"] = gpus_per_task(study)
    if (
        not s["gpus_per_task"]
        and "gpus_per_task" not in study.slurm
        and any(r.backend == "auto" for r in study.runs)
    ):
        note = [
            '# backend "auto" and no [slurm] gpus_per_task: no GPU requested, the runs use NumPy.',
            '# For GPUs set backend = "cupy" (or [slurm] gpus_per_task = 1) and write the script again.',
        ]
    logs = study.output / "logs"
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=bonesim-{_safe_token(study.name)}",
        f"#SBATCH --array={array}",
        f"#SBATCH --output={_sbatch_path(f'{logs}/%x-%A_%a.out')}",
        *(f"#SBATCH {d}" for d in slurm_directives(s, array=True)),
        "",
        f"# bonesim study {study.name!r}: {len(study.runs)} runs, this array holds {len(idx)}.",
        "# Finished runs are skipped; interrupted runs resume from their checkpoint.",
        *note,
        f"# Results: {study.runs_dir}/<run_id>.h5; status: {study.output}/status/",
        "# Afterwards build the summary with:",
        f"#   {s['bonesim']} batch {shlex.quote(str(manifest))} --summarize",
        "set -euo pipefail",
        *[str(line) for line in s.get("setup", [])],
        'echo "bonesim run $SLURM_ARRAY_TASK_ID on $(hostname), GPUs: ${CUDA_VISIBLE_DEVICES:-none}"',
        f'{s["bonesim"]} batch {shlex.quote(str(manifest))} --run-index "$SLURM_ARRAY_TASK_ID"',
        "",
    ]
    return "\n".join(lines)


def _safe_token(text: str) -> str:
    """``text`` reduced to characters that need no quoting anywhere in a job script."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "study"


def _sbatch_path(path: str) -> str:
    """A path for an ``#SBATCH`` option: double-quoted when it holds spaces; no newlines or quotes."""
    if any(ord(c) < 32 for c in path) or '"' in path:
        raise BonesimError(
            f"the path {path!r} holds a newline, control character or quote; choose another folder"
        )
    return f'"{path}"' if any(c.isspace() for c in path) else path


def slurm_dask_job_script(study: Study) -> str:
    """The job script dask-jobqueue would submit for each worker (no cluster is started)."""
    jobqueue = _need("dask_jobqueue", "slurm", "dask-jobqueue")
    kw = slurm_cluster_kwargs(study)
    return jobqueue.slurm.SLURMJob(scheduler="tcp://SCHEDULER:8786", name="bonesim-worker", **kw).job_script()
