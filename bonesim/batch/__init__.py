"""Batch studies: manifests, Dask / dask-cuda / SLURM scheduling, resumable sweeps, summaries.

Nothing here imports Dask (or CuPy) until a scheduler is actually started.
"""

from __future__ import annotations

from bonesim.batch.manifest import InputSpec, Run, ScenarioSpec, Study, load_manifest, run_id

__all__ = ["InputSpec", "Run", "ScenarioSpec", "Study", "load_manifest", "run_id", "run_study"]


def __getattr__(name: str):
    if name == "run_study":
        from bonesim.batch.runner import run_study

        return run_study
    raise AttributeError(f"module 'bonesim.batch' has no attribute {name!r}")
