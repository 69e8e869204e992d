"""Studies with the real CA engine: Dask workers, kill-and-resume, the default run function."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _batch_helpers import calls, engine_run

engine = pytest.importorskip("bonesim.ca.engine")

from bonesim.batch import load_manifest  # noqa: E402
from bonesim.batch.runner import run_study  # noqa: E402

STUDY = """
name = "real"
output = "out"
years = {years}
save_every = {save_every}
spinup_years = 0.02
backend = "numpy"
seeds = {seeds}
scenarios = [{scenarios}]

[[inputs]]
name = "gyroid"
phantom = "gyroid"
shape = 32
voxel_size_um = 20
period = 16
level = 0.3

[[inputs]]
name = "slab"
phantom = "plate"
shape = 32
voxel_size_um = 20
thickness = 12
"""


def _manifest(tmp, *, years=0.1, save_every=30, seeds=1, scenarios=None):
    if scenarios is None:
        (tmp / "constant.toml").write_text("")
        scenarios = '"constant.toml"'
    p = tmp / "study.toml"
    p.write_text(STUDY.format(years=years, save_every=save_every, seeds=seeds, scenarios=scenarios))
    return p


def _state(path):
    with h5py.File(path) as f:
        return {k: f[f"state/{k}"][...] for k in ("bone", "phase", "timer")}


def test_dask_two_workers_real_engine(tmp_path):
    pytest.importorskip("distributed")
    study = load_manifest(_manifest(tmp_path, seeds=2))
    assert len(study.runs) == 4
    res = run_study(study, scheduler="local", workers=2, run_fn=engine_run)
    assert res.count("done") == 4, [r.get("error") for r in res.records]
    with open(res.summary_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["device"] == "cpu (numpy)" and r["bv_tv_final"] for r in rows)
    # a worker process gives the same bits as this process
    run = study.runs[1]
    ref = engine.simulate(
        run.input.load(),
        years=run.years,
        backend="numpy",
        seed=run.seed,
        save_every=run.save_every,
        spinup_years=run.spinup_years,
    )
    got = _state(run.out)
    for k in got:
        np.testing.assert_array_equal(got[k], ref.state[k])
    # seeds differ
    assert not np.array_equal(_state(study.runs[0].out)["bone"], got["bone"])


def test_sigkill_then_rerun_resumes_bit_for_bit(tmp_path):
    manifest = _manifest(tmp_path, years=0.3, save_every=5)
    study = load_manifest(manifest)
    here = Path(__file__).parent
    script = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(here)!r}, {str(here.parents[1])!r}]
        from _batch_helpers import engine_run
        from bonesim.batch import load_manifest, run_study
        run_study(load_manifest({str(manifest)!r}), workers=1, run_fn=engine_run, summarize=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    run0 = study.runs[0]
    part = engine.partial_path(run0.out)
    deadline = time.time() + 120
    step = -1
    while time.time() < deadline and proc.poll() is None:
        try:
            with h5py.File(part / "checkpoint.h5", "r", locking=False) as f:  # never block the writer
                step = int(f["state"].attrs["step"])
        except (OSError, KeyError):
            step = -1
        if step >= 30:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert step >= 30 and part.exists() and not run0.out.exists()
    res = run_study(study, workers=1, run_fn=engine_run)
    assert res.count("done") == 2
    rec = next(r for r in res.records if r["run_id"] == run0.run_id)
    assert rec["resumed"] is True and rec["attempts"] == 2
    assert f"{run0.run_id} resume=True" in calls(study)
    ref = engine.simulate(
        run0.input.load(),
        years=run0.years,
        backend="numpy",
        seed=run0.seed,
        save_every=run0.save_every,
        spinup_years=run0.spinup_years,
    )
    got = _state(run0.out)
    for k in got:
        np.testing.assert_array_equal(got[k], ref.state[k])
    with h5py.File(run0.out) as f:
        np.testing.assert_array_equal(f["tables/metrics/bv_tv"][...], ref.metrics["bv_tv"])


def test_default_run_fn_with_physiology_and_chunks(tmp_path):
    physiology = pytest.importorskip("bonesim.physiology")
    if not hasattr(physiology, "scenario_table"):
        pytest.skip("bonesim.physiology has no scenario_table yet")
    pytest.importorskip("dask.array")
    name = sorted(physiology.list_scenarios())[0]
    name = getattr(name, "name", name)
    p = _manifest(tmp_path, years=0.05, scenarios=f'"{name}"')
    study = load_manifest(p)
    res = run_study(study, workers=1)
    assert res.count("done") == 2, [r.get("error") for r in res.records]
    with h5py.File(study.runs[0].out) as f:
        assert f["scenario"].attrs["name"] == name
        assert "bonesim batch" in str(f["provenance"].attrs["command"])
    # the same study in chunks gives the same bits
    q = tmp_path / "chunked"
    q.mkdir()
    (q / "study.toml").write_text(p.read_text().replace('output = "out"', 'output = "out"\nchunks = 16'))
    chunked = load_manifest(q / "study.toml")
    assert run_study(chunked, workers=1).count("done") == 2
    for a, b in zip(study.runs, chunked.runs, strict=True):
        sa, sb = _state(a.out), _state(b.out)
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])


@pytest.mark.gpu
def test_dask_cuda_study_on_gpu(tmp_path):
    """One worker per GPU (dask-cuda) runs a 2-run CuPy study; same bits as the NumPy backend."""
    pytest.importorskip("dask_cuda")
    p = _manifest(tmp_path)
    p.write_text(p.read_text().replace('backend = "numpy"', 'backend = "cupy"'))
    study = load_manifest(p)
    res = run_study(study, scheduler="dask-cuda", run_fn=engine_run)
    assert res.count("done") == 2, [r.get("error") for r in res.records]
    assert all("cuda" in r["device"] for r in res.records)
    run = study.runs[0]
    ref = engine.simulate(
        run.input.load(),
        years=run.years,
        backend="numpy",
        seed=run.seed,
        save_every=run.save_every,
        spinup_years=run.spinup_years,
    )
    got = _state(run.out)
    for k in got:
        np.testing.assert_array_equal(got[k], ref.state[k])
