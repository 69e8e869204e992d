"""`bonesim batch`: --dry-run, SLURM scripts, --run-index, --summarize, errors."""

from __future__ import annotations

import re

import pytest
from _batch_helpers import calls, fake_run, write_study
from click.testing import CliRunner

from bonesim.batch import load_manifest
from bonesim.cli import main

SLURM = """
[slurm]
partition = "gpu"
account = "bone"
time = "02:00:00"
gpus_per_task = 1
gpu_type = "h100"
cpus_per_task = 8
mem = "64G"
array_parallelism = 4
setup = ["module load cuda/12.4", "source /opt/venvs/bonesim/bin/activate"]
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_help_has_examples():
    res = invoke("batch", "--help")
    assert res.exit_code == 0
    assert "Examples:" in res.output and "--slurm-array study.sbatch" in res.output


def test_dry_run_lists_runs(tmp_path):
    manifest = write_study(tmp_path, seeds=2)
    res = invoke("batch", manifest, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "study t: 8 runs (2 inputs × 2 scenarios × 2 seeds)" in res.output
    assert re.search(r"^\s+0\s+slab__healthy__s0\s+pending\s+phantom plate 16x16x16", res.output, re.M)
    assert re.search(r"^\s+7\s+gyroid16__ovx__s1\s+pending", res.output, re.M)
    assert "8 to run, 0 finished" in res.output
    assert "#SBATCH" not in res.output
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_dry_run_slurm_prints_scripts(tmp_path):
    manifest = write_study(tmp_path, seeds=2, extra=SLURM)
    res = invoke("batch", manifest, "--dry-run", "--scheduler", "slurm")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "#SBATCH --array=0-7%4" in out
    assert "#SBATCH --gres=gpu:h100:1" in out
    assert f'bonesim batch {manifest.resolve()} --run-index "$SLURM_ARRAY_TASK_ID"' in out
    assert "module load cuda/12.4" in out
    # the dask-jobqueue worker script asks for the same GPU and one GPU resource per worker
    worker = out.split("dask-jobqueue worker job script")[1]
    assert "#SBATCH -p gpu" in worker and "#SBATCH -A bone" in worker
    assert "#SBATCH --gres=gpu:h100:1" in worker and "--resources GPU=1" in worker
    assert "#SBATCH -t 02:00:00" in worker


def test_slurm_array_file_only_pending(tmp_path, monkeypatch):
    manifest = write_study(tmp_path, seeds=2, extra=SLURM)
    study = load_manifest(manifest)
    monkeypatch.setattr("bonesim.batch.execute.default_run_fn", fake_run)
    for i in (0, 1, 5):
        assert invoke("batch", manifest, "--run-index", i).exit_code == 0
    script_path = tmp_path / "job.sbatch"
    res = invoke("batch", manifest, "--slurm-array", script_path)
    assert res.exit_code == 0, res.output
    assert "5 array tasks of 8 runs" in res.output
    script = script_path.read_text()
    assert script.startswith("#!/bin/bash\n")
    lines = script.splitlines()
    assert "#SBATCH --array=2-4,6-7%4" in lines
    assert "#SBATCH --partition=gpu" in lines and "#SBATCH --account=bone" in lines
    assert "#SBATCH --gres=gpu:h100:1" in lines and "#SBATCH --cpus-per-task=8" in lines
    assert "#SBATCH --mem=64G" in lines and "#SBATCH --time=02:00:00" in lines
    assert f"#SBATCH --output={study.output}/logs/%x-%A_%a.out" in lines
    assert lines[-1] == f'bonesim batch {manifest.resolve()} --run-index "$SLURM_ARRAY_TASK_ID"'
    assert len(calls(study)) == 3


def test_run_index_and_summarize(tmp_path, monkeypatch):
    manifest = write_study(tmp_path, seeds=1)
    monkeypatch.setattr("bonesim.batch.execute.default_run_fn", fake_run)
    res = invoke("batch", manifest, "--run-index", 2)
    assert res.exit_code == 0 and "run 2 (gyroid16__healthy__s0) done in" in res.output
    res = invoke("batch", manifest, "--run-index", 2)
    assert "(finished before)" in res.output
    res = invoke("batch", manifest, "--summarize")
    assert res.exit_code == 0 and "summary.csv" in res.output
    text = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert len(text) == 5 and ",gyroid16__healthy__s0,gyroid16,healthy,0,done," in text[3]
    assert ",pending," in text[1]


def test_run_failure_exit_code(tmp_path, monkeypatch):
    manifest = write_study(tmp_path, seeds=1, scenarios=("fail.toml",))
    monkeypatch.setattr("bonesim.batch.execute.default_run_fn", fake_run)
    res = CliRunner().invoke(main, ["batch", str(manifest), "--run-index", "0"])
    assert res.exit_code == 1
    assert "Error: run 0 (slab__fail__s0) failed: RuntimeError: boom in slab__fail__s0" in res.output
    res = CliRunner().invoke(main, ["batch", str(manifest), "--workers", "1"])
    assert res.exit_code == 1 and "2 failed" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope.toml"], "Error: manifest not found: nope.toml"),
        (["study.toml", "--run-index", "99"], "Error: run index 99 out of range"),
    ],
)
def test_user_errors_one_line(tmp_path, monkeypatch, args, message):
    write_study(tmp_path, seeds=1)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["batch", *args])
    assert res.exit_code == 1 and res.output.startswith(message) and "Traceback" not in res.output


def test_dask_cuda_missing_message(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask_cuda", None)
    manifest = write_study(tmp_path, seeds=1)
    res = CliRunner().invoke(main, ["batch", str(manifest), "--scheduler", "dask-cuda"])
    assert res.exit_code == 1
    assert "--scheduler dask-cuda needs the dask-cuda package, which is not installed" in res.output


def test_slurm_cluster_accepts_options(tmp_path):
    """SLURMCluster takes the manifest's options (no job is submitted: the cluster is never scaled)."""
    jobqueue = pytest.importorskip("dask_jobqueue")
    from bonesim.batch.schedulers import slurm_cluster_kwargs

    study = load_manifest(write_study(tmp_path, seeds=1, extra=SLURM))
    cluster = jobqueue.SLURMCluster(
        **slurm_cluster_kwargs(study), scheduler_options={"dashboard_address": None}
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:h100:1" in script and "module load cuda/12.4" in script
    assert "--resources GPU=1" in script
