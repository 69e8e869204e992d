"""`--slurm-array` asks for `--gres` only for a CuPy study or an explicit gpus_per_task (issue 17)."""

from __future__ import annotations

import pytest
from _batch_helpers import write_study

from bonesim.batch import load_manifest
from bonesim.batch.schedulers import slurm_array_script

SLURM = '\n[slurm]\ntime = "01:00:00"\n'


def _script(tmp_path, backend, slurm=SLURM):
    manifest = write_study(tmp_path, seeds=1, extra=slurm)
    manifest.write_text(manifest.read_text().replace('backend = "numpy"', f'backend = "{backend}"'))
    return slurm_array_script(load_manifest(manifest))


def _gres(script):
    return [ln for ln in script.splitlines() if ln.startswith("#SBATCH --gres")]


def test_numpy_study_asks_for_no_gpu(tmp_path):
    script = _script(tmp_path, "numpy")
    assert _gres(script) == []
    assert "#SBATCH --time=01:00:00" in script


def test_cupy_study_asks_for_one_gpu(tmp_path):
    assert _gres(_script(tmp_path, "cupy")) == ["#SBATCH --gres=gpu:1"]


def test_auto_study_asks_for_no_gpu_and_says_how(tmp_path):
    script = _script(tmp_path, "auto")
    assert _gres(script) == []
    assert 'backend = "cupy"' in script and "gpus_per_task = 1" in script


@pytest.mark.parametrize(
    ("backend", "n", "expected"), [("numpy", 2, ["#SBATCH --gres=gpu:2"]), ("cupy", 0, [])]
)
def test_explicit_gpus_per_task_wins(tmp_path, backend, n, expected):
    script = _script(tmp_path, backend, SLURM + f"gpus_per_task = {n}\n")
    assert _gres(script) == expected


@pytest.mark.parametrize(
    ("backend", "slurm", "expected"),
    [
        ("numpy", SLURM, []),
        ("auto", SLURM, []),
        ("cupy", SLURM, ["--gres=gpu:1"]),
        ("numpy", SLURM + "gpus_per_task = 2\n", ["--gres=gpu:2"]),
    ],
)
def test_dask_jobqueue_jobs_ask_for_gpus_like_the_array(tmp_path, backend, slurm, expected):
    """The SLURMCluster jobs follow the array's rule (a NumPy study's worker once waited for a GPU node)."""
    from bonesim.batch.schedulers import slurm_cluster_kwargs

    manifest = write_study(tmp_path, seeds=1, extra=slurm)
    manifest.write_text(manifest.read_text().replace('backend = "numpy"', f'backend = "{backend}"'))
    kw = slurm_cluster_kwargs(load_manifest(manifest))
    assert [d for d in kw["job_extra_directives"] if d.startswith("--gres")] == expected
    assert kw["worker_extra_args"] == [
        "--resources",
        f"GPU={max(1, int(expected[0][-1]) if expected else 1)}",
    ]
