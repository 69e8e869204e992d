"""Batch studies through a real SLURM: the ``--slurm-array`` script and the dask-jobqueue scheduler.

The CI starts a single-node SLURM (``scripts/ci/slurm-local.sh``) and exports
``SLURM_CONF``; without a responding ``sinfo`` these tests skip with the reason.
Each runs a two-run study of tiny phantoms (NumPy) to the end and checks both
results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bonesim.io.result import Result

pytestmark = pytest.mark.slurm


def _slurm_ready() -> str | None:
    """None when a SLURM controller answers with an idle node, else why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "SLURM is not installed (the CI installs slurm-wlm and starts scripts/ci/slurm-local.sh)"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if r.returncode or ("idle" not in r.stdout and "mix" not in r.stdout):
        return f"no SLURM node is up (sinfo: {(r.stdout + r.stderr).strip()[:120]!r})"
    return None


@pytest.fixture(scope="module")
def slurm():
    why = _slurm_ready()
    if why:
        pytest.skip(why)


def _study(tmp: Path) -> Path:
    """Two runs (one phantom, one scenario, seeds 0 and 1); the jobs run this interpreter's bonesim."""
    bonesim = f"{sys.executable} -m bonesim"
    text = f"""
name = "slurmci"
output = "out"
years = 0.05
save_every = 9
spinup_years = 0
backend = "numpy"
seeds = 2
scenarios = ["healthy-adult"]

[[inputs]]
name = "slab"
phantom = "plate"
shape = 16
voxel_size_um = 20
thickness = 8

[slurm]
time = "00:10:00"
cpus_per_task = 1
mem = "1G"
bonesim = "{bonesim}"
python = "{sys.executable}"
"""
    p = tmp / "study.toml"
    p.write_text(text)
    return p


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _check_results(tmp: Path) -> None:
    results = sorted((tmp / "out").rglob("*.h5"))
    names = {p.name for p in results}
    assert {"slab__healthy-adult__s0.h5", "slab__healthy-adult__s1.h5"} <= names, names
    for p in results:
        if p.name.startswith("slab__"):
            r = Result.open(p)
            assert r.has_series and r.days[-1] == pytest.approx(0.05 * 365.25, abs=1.0)
            assert r.state_attrs.get("complete") in (True, 1, "true")


def test_slurm_array_script_runs_a_two_run_study(slurm, tmp_path):
    study = _study(tmp_path)
    script = tmp_path / "study.sbatch"
    run = [sys.executable, "-m", "bonesim", "batch", str(study), "--slurm-array", str(script)]
    r = subprocess.run(run, capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    text = script.read_text()
    assert "--array=0-1" in text and "--gres" not in text  # a NumPy study asks for no GPU
    r = subprocess.run(
        ["sbatch", "--wait", str(script)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=600,
    )
    logs = (
        "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*.out"))
        if (tmp_path / "out").exists()
        else ""
    )
    assert r.returncode == 0, r.stdout + r.stderr + logs
    _check_results(tmp_path)


def test_dask_jobqueue_scheduler_runs_a_two_run_study(slurm, tmp_path):
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is in the [hpc] extra")
    study = _study(tmp_path)
    run = [sys.executable, "-m", "bonesim", "batch", str(study), "--scheduler", "slurm", "--workers", "1"]
    r = subprocess.run(run, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    _check_results(tmp_path)
