"""The state of each run of a study: status records and what a result file says of itself.

Each run has a small status record ``<output>/status/<run_id>.json`` (state,
error, timings, host, device). A run counts as finished when its status says
``done`` and its result file is there (or, without a status record, when the
result file holds the whole simulated period).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from bonesim.batch.manifest import Run
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError
from bonesim.io.result import RunFolder


def read_status(run: Run) -> dict[str, Any] | None:
    """The status record of ``run``, or None if it never started."""
    p = status_file(run)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def status_file(run: Run) -> Path:
    # runs/<id>.h5 -> status/<id>.json (the run knows its output folder through ``out``)
    return run.out.parent.parent / "status" / f"{run.run_id}.json"


def write_status(run: Run, record: dict[str, Any]) -> None:
    p = status_file(run)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{socket.gethostname()}.{os.getpid()}.tmp")  # umask permissions
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=1, default=str)
    os.replace(tmp, p)


def result_complete(run: Run) -> bool:
    """True when ``run.out`` is a finished result of ``run``.

    The status record says ``done`` and the file exists, or the file itself
    says so: the engine marks ``/state`` ``complete`` (it only renames a run
    onto ``OUT`` when it has finished), or its latest state reaches the run's
    last day (results made outside ``bonesim batch``).
    """
    if not run.out.is_file() or changed_settings(run):
        return False
    st = read_status(run)
    if st is not None and st.get("status") == "done":
        return True
    return _file_reaches_end(run)


def changed_settings(run: Run) -> list[str]:
    """The settings of ``run`` that differ from those its existing result or checkpoint was made with.

    Empty when nothing was made yet, or the record predates settings records.
    """
    st = read_status(run)
    old = (st or {}).get("settings")
    if not isinstance(old, dict) or not (run.out.exists() or RunFolder(run.out).exists()):
        return []
    new = run.settings()
    return [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]


def _file_reaches_end(run: Run) -> bool:
    from bonesim.io.result import Result

    try:
        attrs = Result.open(run.out).state_attrs
    except (BonesimError, OSError):
        return False
    if "complete" in attrs:
        return bool(attrs["complete"])
    return float(attrs.get("day", -1)) >= run.years * DAYS_PER_YEAR - 0.5


def run_state(run: Run) -> str:
    """``done``, ``failed``, ``running`` (started, not finished: resumable), ``pending``, or ``changed``
    (made with other settings than the manifest's now: rerun only with ``overwrite``)."""
    if changed_settings(run):
        return "changed"
    if result_complete(run):
        return "done"
    st = read_status(run)
    if st is None:
        return "pending"
    return "failed" if st.get("status") == "failed" else "running"


def has_checkpoint(run: Run) -> bool:
    """True when an interrupted run left its run folder ``OUT.partial`` (see
    :class:`bonesim.io.result.RunFolder`); the engine resumes from its checkpoint, or
    starts over when the run died before writing one."""
    return RunFolder(run.out).exists()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"
