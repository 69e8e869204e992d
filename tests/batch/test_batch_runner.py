"""Running studies: local pools and Dask, skipping, resuming, failures, summaries."""

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
from _batch_helpers import calls, fake_run, write_study

from bonesim.batch import load_manifest
from bonesim.batch.execute import execute_run
from bonesim.batch.runner import plan, run_one, run_study
from bonesim.batch.status import run_state


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_inline_study_summary(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=2))
    res = run_study(study, scheduler="local", workers=1, run_fn=fake_run)
    assert res.count("done") == 8 and not res.failed
    assert sorted(c.split()[0] for c in calls(study)) == sorted(r.run_id for r in study.runs)
    rows = _rows(res.summary_csv)
    assert [r["run_id"] for r in rows] == [r.run_id for r in study.runs]
    row = rows[1]  # slab, healthy, seed 1: bv_tv = 0.5 - 0.02 * day / 365
    assert row["status"] == "done" and row["device"] == "fake-cpu" and row["seed"] == "1"
    assert float(row["bv_tv_start"]) == pytest.approx(0.5)
    assert float(row["bv_tv_final"]) == pytest.approx(0.5 - 0.02 * 360 / 365, rel=1e-5)
    assert float(row["bv_tv_y1"]) == pytest.approx(float(row["bv_tv_final"]))
    assert float(row["formed_vox_final"]) == 12
    # ensemble across the 2 seeds: slopes 0.01 and 0.02 -> mean 0.015, SD 0.01/sqrt(2)
    ens = [
        r
        for r in _rows(res.ensemble_csv)
        if r["input"] == "slab"
        and r["scenario"] == "healthy"
        and r["metric"] == "bv_tv"
        and r["day"] == "360"
    ]
    assert len(ens) == 1 and ens[0]["n"] == "2"
    assert float(ens[0]["mean"]) == pytest.approx(0.5 - 0.015 * 360 / 365, rel=1e-5)
    assert float(ens[0]["sd"]) == pytest.approx(0.01 / np.sqrt(2) * 360 / 365, rel=1e-4)
    with h5py.File(res.summary_h5) as f:
        assert f["runs/run_id"].asstr()[...].tolist() == [r.run_id for r in study.runs]
        assert f["ensemble/slab__ovx/bv_tv_mean"].shape == (13,)
        assert "trajectories/gyroid16__ovx__s1/bv_tv" in f
    assert sorted(p.name for p in res.plots) == [
        "input_gyroid16.png",
        "input_slab.png",
        "scenario_healthy.png",
        "scenario_ovx.png",
    ]
    assert all(p.stat().st_size > 1000 for p in res.plots)


def test_failed_run_recorded_others_finish(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=1, scenarios=("healthy.toml", "fail.toml")))
    res = run_study(study, workers=1, run_fn=fake_run)
    assert res.count("done") == 2 and res.count("failed") == 2
    rows = {r["run_id"]: r for r in _rows(res.summary_csv)}
    assert rows["slab__fail__s0"]["status"] == "failed"
    assert rows["slab__fail__s0"]["error"] == "RuntimeError: boom in slab__fail__s0"
    assert rows["slab__healthy__s0"]["status"] == "done"
    # a rerun retries only the failed runs
    run_study(study, workers=1, run_fn=fake_run)
    assert [c.split()[0] for c in calls(study)].count("slab__healthy__s0") == 1
    assert [c.split()[0] for c in calls(study)].count("slab__fail__s0") == 2


def test_interrupted_run_resumes(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=1))
    run = study.runs[0]
    assert run_state(run) == "pending"
    run.out.parent.mkdir(parents=True)
    run.out.with_name(run.out.name + ".partial").write_text("left by a killed run")
    rec = execute_run(run, run_fn=fake_run)
    assert rec["status"] == "done" and rec["resumed"] is True
    assert calls(study) == [f"{run.run_id} resume=True"]
    assert execute_run(run, run_fn=fake_run)["status"] == "skipped"
    assert len(calls(study)) == 1
    assert run_one(study, 1, run_fn=fake_run)["resumed"] is False


def test_dask_local_cluster_two_workers(tmp_path):
    """A local Dask cluster with 2 worker processes runs a 4-run study."""
    pytest.importorskip("distributed")
    study = load_manifest(write_study(tmp_path, seeds=1))
    assert len(study.runs) == 4
    res = run_study(study, scheduler="local", workers=2, run_fn=fake_run)
    assert res.count("done") == 4
    pids = {r["pid"] for r in res.records}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(r.out.is_file() for r in study.runs)
    # rerun: nothing is redone
    res2 = run_study(study, scheduler="local", workers=2, run_fn=fake_run)
    assert res2.count("skipped") == 4 and len(calls(study)) == 4


def test_process_pool_without_dask(tmp_path, monkeypatch):
    import bonesim.batch.schedulers as sch

    study = load_manifest(write_study(tmp_path, seeds=1))
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    got = []
    sch.run_on_cluster("local", study, study.runs[:2], fake_run, got.append, workers=2)
    assert sorted(r["status"] for r in got) == ["done", "done"]


def test_kill_and_rerun(tmp_path):
    """SIGKILL a study half way; the rerun redoes neither finished nor started-and-finished runs."""
    manifest = write_study(tmp_path, seeds=2)
    here = Path(__file__).parent
    script = textwrap.dedent(f"""
        import sys; sys.path[:0] = [{str(here)!r}, {str(here.parents[1])!r}]
        from _batch_helpers import fake_run
        from bonesim.batch import load_manifest, run_study
        run_study(load_manifest({str(manifest)!r}), workers=1, run_fn=fake_run, summarize=False)
    """)
    env = {**os.environ, "BONESIM_FAKE_DELAY": "0.4"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    study = load_manifest(manifest)
    deadline = time.time() + 60
    while time.time() < deadline:
        states = [s for _, s in plan(study)]
        if states.count("done") >= 3 and "running" in states:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    states = dict((r.run_id, s) for r, s in plan(study))
    finished = {k for k, s in states.items() if s == "done"}
    assert 3 <= len(finished) < 8
    interrupted = {k for k, s in states.items() if s == "running"}
    assert len(interrupted) == 1
    before = calls(study)
    res = run_study(study, workers=1, run_fn=fake_run)
    assert res.count("skipped") == len(finished) and res.count("done") == 8 - len(finished)
    redone = calls(study)[len(before) :]
    assert not {c.split()[0] for c in redone} & finished
    # the run killed mid-way left its checkpoint and was resumed
    for rid in interrupted:
        assert f"{rid} resume=True" in redone


def test_progress_counts_every_run(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=1))
    run_study(study, workers=1, run_fn=fake_run, only=[0, 2], summarize=False)
    seen = []
    run_study(
        study,
        workers=1,
        run_fn=fake_run,
        summarize=False,
        progress=lambda rec, n, total: seen.append((rec["status"], n, total)),
    )
    assert seen == [("skipped", 1, 4), ("skipped", 2, 4), ("done", 3, 4), ("done", 4, 4)]


def _slow_exit_run(run, *, resume=False):
    """fake_run in a worker whose process takes 4.5 s to exit (more than the nanny's 4-s kill budget)."""
    import atexit

    atexit.register(time.sleep, 4.5)
    return fake_run(run, resume=resume)


def test_local_cluster_shuts_down_without_killing_workers(tmp_path, caplog):
    pytest.importorskip("distributed")
    import logging

    import bonesim.batch.schedulers as sch

    study = load_manifest(write_study(tmp_path, seeds=1))
    got = []
    with caplog.at_level(logging.WARNING, logger="distributed"):
        sch.run_on_cluster("local", study, study.runs[:1], _slow_exit_run, got.append, workers=1)
    assert [r["status"] for r in got] == ["done"]
    killed = [r.getMessage() for r in caplog.records if "still alive" in r.getMessage()]
    assert not killed, killed
