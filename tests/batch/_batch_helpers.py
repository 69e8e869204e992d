"""Helpers for the batch tests: a fake run function that writes a schema-1-like result.

The fake run records every call in ``<output>/calls.log`` so tests can see
which runs were (re)done and whether they resumed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np

from bonesim.io.hdf5 import atomic_output, create_array, write_json_attr, write_root_attrs, write_table


def write_study(tmp: Path, *, seeds=2, scenarios=("healthy.toml", "ovx.toml"), years=1.0, extra="") -> Path:
    """A manifest with two tiny phantom inputs; scenario files are created beside it."""
    for s in scenarios:
        if s.endswith(".toml"):
            (tmp / s).write_text(f'name = "{Path(s).stem}"\n')
    sc = ", ".join(f'"{s}"' for s in scenarios)
    text = f"""
name = "t"
output = "out"
years = {years}
save_every = 30
spinup_years = 0.1
backend = "numpy"
seeds = {seeds}
scenarios = [{sc}]
{extra}
[[inputs]]
name = "slab"
phantom = "plate"
shape = 16
voxel_size_um = 20
thickness = 8

[[inputs]]
phantom = "gyroid"
shape = [16, 16, 16]
voxel_size_um = 20
period = 16
"""
    p = tmp / "study.toml"
    p.write_text(text)
    return p


def fake_run(run, *, resume=False):
    """Write a small result for ``run``; scenario names containing 'fail' raise."""
    calls = run.out.parent.parent / "calls.log"
    with open(calls, "a") as fh:
        fh.write(f"{run.run_id} resume={resume}\n")
    if "fail" in run.scenario.name:
        raise RuntimeError(f"boom in {run.run_id}")
    ckpt = run.out.with_name(run.out.name + ".partial")
    ckpt.write_text("checkpoint")
    time.sleep(float(os.environ.get("BONESIM_FAKE_DELAY", "0")))
    vol = run.input.load()
    days = np.arange(0, run.years * 365 + 1, run.save_every, dtype=np.float64)
    slope = 0.01 * (1 + run.seed) * (2 if "ovx" in run.scenario.name else 1)
    bv = vol.bv_tv - slope * days / 365
    with atomic_output(run.out, overwrite=True) as tmp, h5py.File(tmp, "w") as f:
        write_root_attrs(f, vol.voxel_size_um)
        create_array(f.require_group("volume"), "bone", vol.data)
        g = f.create_group("state")
        g.attrs["day"] = float(days[-1])
        g.attrs["seed"] = run.seed
        t = f.create_group("tables")
        write_table(t, "metrics", {"day": days, "bv_tv": bv, "formed_vox": np.arange(len(days))})
        p = f.create_group("provenance")
        p.attrs["device"] = "fake-cpu"
        p.attrs["backend"] = "numpy"
        write_json_attr(p, "timings", {"total_s": 0.0})
    ckpt.unlink()
    return {"device": "fake-cpu", "backend": "numpy"}


def calls(study) -> list[str]:
    p = study.output / "calls.log"
    return p.read_text().splitlines() if p.exists() else []


def engine_run(run, *, resume=False):
    """Run ``run`` with the real engine under constant default parameters (no physiology needed)."""
    from bonesim.ca.engine import simulate
    from bonesim.ca.params import RemodelingParams

    calls = run.out.parent.parent / "calls.log"
    with open(calls, "a") as fh:
        fh.write(f"{run.run_id} resume={resume}\n")
    res = simulate(
        run.input.load(),
        RemodelingParams(),
        years=run.years,
        backend=run.backend,
        seed=run.seed,
        save_every=run.save_every,
        out=run.out,
        spinup_years=run.spinup_years,
        resume=resume,
    )
    return {"device": res.device, "backend": res.backend}
