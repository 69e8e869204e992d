"""The simulation engine: result files, checkpoints, resume, daily tables, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim import Volume, phantom
from bonesim.ca.engine import METRIC_COLUMNS, partial_path, simulate
from bonesim.ca.params import constant_table
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import read_table, write_volume
from tests.ca.ca_helpers import result_arrays
from tests.fast_params import fast

FAST = fast(
    acf_per_year=6,
    erosion_depth_um=50,
    footprint_radius_um=60,
    resorption_days=15,
    reversal_days=5,
    mar_um_per_day=2.0,
)


@pytest.fixture(scope="module")
def vol() -> Volume:
    bone = phantom.gyroid((20, 22, 24), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    return Volume(bone, voxel_size_um=20.0, metadata={"kind": "gyroid"})


def test_result_file_layout(vol, tmp_path):
    out = tmp_path / "run.h5"
    res = simulate(vol, FAST, years=0.2, spinup_years=0.1, save_every=10, out=out, backend="numpy", seed=1)
    assert res.path == out and out.exists() and not partial_path(out).exists()
    with h5py.File(out, "r") as f:
        assert f.attrs["bonesim_schema"] == 1 and f.attrs["voxel_size_um"] == 20.0
        assert np.array_equal(f["volume/bone"][...], vol.data)
        days = f["series/day"][...]
        assert days[0] == 0 and np.all(np.diff(days) > 0) and days[-1] == pytest.approx(73)
        assert f["series/bone"].shape == (len(days), *vol.shape)
        assert np.array_equal(f["series/bone"][-1], f["state/bone"][...])
        for nm in ("bone", "phase", "timer"):
            assert f[f"state/{nm}"].shape == vol.shape
        assert f["state/timer"].dtype == np.uint16
        rmap, fmap = f["maps/resorbed_day"][...], f["maps/formed_day"][...]
        assert rmap.dtype == np.int32 and (rmap >= 0).any() and (fmap >= 0).any()
        assert rmap.max() < 73 and rmap[rmap >= 0].min() >= 0
        m = read_table(f["tables/metrics"])
        assert list(m) == list(METRIC_COLUMNS) and len(m["day"]) == len(days)
        phys = read_table(f["tables/physiology"])
        assert phys["formation_efficiency"][0] == 0.9 and phys["day"][0] == 0
        assert f["scenario"].attrs["name"] == "constant"
        assert f["provenance"].attrs["backend"] == "numpy"
        assert f["state"].attrs["step"] == round(0.1 * 365.25) + 73
    # mass accounting carried into the metrics: ΔBV/TV = added - removed between frames
    m = res.metrics
    np.testing.assert_allclose(np.diff(m["bv_tv"]), m["bone_added"][1:] - m["bone_removed"][1:], atol=1e-12)
    assert m["bone_removed"][1:].sum() > 0 and m["recruited"][1:].sum() > 0
    assert np.isnan(m["acf_realised"][0]) and np.all(m["acf_realised"][1:] >= 0)
    assert res.volume.shape == vol.shape and res.backend == "numpy"


def test_no_output_means_nothing_written_and_same_bits(vol, tmp_path):
    a = simulate(vol, FAST, years=0.1, spinup_years=0.05, backend="numpy", seed=3)
    b = simulate(vol, FAST, years=0.1, spinup_years=0.05, backend="numpy", seed=3, out=tmp_path / "x.h5")
    for k in a.state:
        assert np.array_equal(a.state[k], b.state[k])
    np.testing.assert_array_equal(a.metrics["bv_tv"], b.metrics["bv_tv"])


def test_refuses_existing_output_and_stale_checkpoint(vol, tmp_path):
    out = tmp_path / "run.h5"
    out.write_bytes(b"")
    with pytest.raises(BonesimError, match="exists"):
        simulate(vol, FAST, years=0.05, out=out, backend="numpy", spinup_years=0)
    out.unlink()
    partial_path(out).write_bytes(b"")
    with pytest.raises(BonesimError, match=r"nothing to resume.*overwrite=True") as exc:
        simulate(vol, FAST, years=0.05, out=out, backend="numpy", spinup_years=0)
    assert "--" not in str(exc.value) and "pass --overwrite" in exc.value.cli_message  # one spelling each
    with pytest.raises(BonesimError, match="nothing to resume"):
        simulate(vol, FAST, years=0.05, out=tmp_path / "other.h5", backend="numpy", resume=True)


def test_resume_after_ctrl_c_equals_one_run(vol, tmp_path):
    kw = dict(years=0.25, spinup_years=0.1, save_every=7, backend="numpy", seed=9)
    one = tmp_path / "one.h5"
    simulate(vol, FAST, out=one, **kw)
    two = tmp_path / "two.h5"

    def interrupt(info):
        if info["step"] == 80:  # mid-interval, after the spin-up
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=two, progress=interrupt, **kw)
    assert not two.exists() and partial_path(two).exists()
    with h5py.File(partial_path(two) / "checkpoint.h5", "r") as f:
        assert f["state"].attrs["step"] == 80
    with pytest.raises(BonesimError, match="differs"):
        simulate(vol, FAST, out=two, resume=True, **{**kw, "seed": 10})
    simulate(vol, FAST, out=two, resume=True, **kw)
    a, b = result_arrays(one), result_arrays(two)
    # a resumed run may be asked for more years than it started with
    three = tmp_path / "three.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=three, progress=interrupt, **kw)
    longer = simulate(vol, FAST, out=three, resume=True, **{**kw, "years": 0.3})
    assert longer.metrics["day"][-1] == pytest.approx(round(0.3 * 365.25))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


_CHILD = """
import sys
from bonesim import Volume, phantom
from bonesim.ca.engine import simulate
from tests.ca.test_engine import FAST
bone = phantom.gyroid((20, 22, 24), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
simulate(Volume(bone, 20.0, {"kind": "gyroid"}), FAST, years=float(sys.argv[2]), spinup_years=0.1, save_every=3,
         backend="numpy", seed=9, out=sys.argv[1], resume=sys.argv[3] == "1")
"""


def test_resume_after_sigkill_equals_one_run(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    subprocess.run([sys.executable, "-c", _CHILD, str(one), "0.6", "0"], check=True, cwd=root, env=env)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(two), "0.6", "0"], cwd=root, env=env)
    part = partial_path(two)
    deadline = time.time() + 120
    step = -1
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with h5py.File(part / "checkpoint.h5", "r", locking=False) as f:  # never block the writer
                step = int(f["state"].attrs["step"])
        except (OSError, KeyError):
            continue
        if step >= 100:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if two.exists():
        pytest.skip("run finished before it could be killed (machine too fast)")
    assert step >= 100
    subprocess.run([sys.executable, "-c", _CHILD, str(two), "0.6", "1"], check=True, cwd=root, env=env)
    a, b = result_arrays(one), result_arrays(two)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_daily_table_drives_the_run(vol, tmp_path):
    table = constant_table(FAST, 60)
    table["formation_efficiency"][20:] = 0.5
    table["calcium_mM"] = np.full(60, 2.4)  # explanatory columns are kept
    out = tmp_path / "t.h5"
    res = simulate(
        vol, table, base_params=FAST, years=60 / 365.25, spinup_years=0.05, out=out, backend="numpy"
    )
    with h5py.File(out, "r") as f:
        phys = read_table(f["tables/physiology"])
    np.testing.assert_array_equal(phys["formation_efficiency"], table["formation_efficiency"])
    assert "calcium_mM" in phys
    const = simulate(vol, FAST, years=60 / 365.25, spinup_years=0.05, backend="numpy")
    assert res.metrics["bv_tv"][-1] < const.metrics["bv_tv"][-1]


def test_bad_arguments(vol):
    with pytest.raises(ValueError, match="years"):
        simulate(vol, FAST, years=-1)
    with pytest.raises(BonesimError, match="uint8"):
        simulate(Volume(np.zeros((4, 4, 4), np.float32), 10.0), FAST, years=1)
    with pytest.raises(ValueError, match="backend"):
        simulate(vol, FAST, years=0.01, backend="gpu")
    with pytest.raises(ValueError, match="footprint_radius_um"):
        simulate(Volume(vol.data, 0.5), FAST, years=0.01, backend="numpy")


# ----------------------------------------------------------------------- CLI --
def test_cli_simulate_params_and_resume(vol, tmp_path):
    from bonesim.cli import main

    src = tmp_path / "in.h5"
    write_volume(src, vol, xdmf=False)
    toml = tmp_path / "p.toml"
    toml.write_text("[remodeling]\nacf_per_year = 6\nfootprint_radius_um = 60\nresorption_days = 15\n")
    out = tmp_path / "out.h5"
    r = CliRunner().invoke(
        main,
        [
            "simulate",
            str(src),
            str(out),
            "--years",
            "0.1",
            "--spinup-years",
            "0.05",
            "--params",
            str(toml),
            "--backend",
            "numpy",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "BV/TV" in r.output and out.exists()
    r = CliRunner().invoke(main, ["simulate", str(src), str(out), "--years", "0.1", "--backend", "numpy"])
    assert r.exit_code == 1 and "exists" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(
        main, ["simulate", str(src), str(tmp_path / "o2.h5"), "--resume", "--backend", "numpy"]
    )
    assert r.exit_code == 1 and "nothing to resume" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text("acf_per_yr = 1\n")
    r = CliRunner().invoke(main, ["simulate", str(src), str(tmp_path / "o3.h5"), "--params", str(bad)])
    assert r.exit_code == 1 and "acf_per_yr" in r.output


def test_cli_scenario(vol, tmp_path):
    """--scenario goes through bonesim.physiology.scenario_table (or says clearly that it is missing)."""
    from bonesim.cli import main

    src = tmp_path / "in.h5"
    write_volume(src, vol, xdmf=False)
    out = tmp_path / "o.h5"
    args = [
        "simulate",
        str(src),
        str(out),
        "--scenario",
        "healthy-adult",
        "--years",
        "0.05",
        "--spinup-years",
        "0.02",
        "--backend",
        "numpy",
        "--no-progress",
    ]
    r = CliRunner().invoke(main, args)
    try:
        from bonesim.physiology import scenario_table  # noqa: F401
    except ImportError:
        assert r.exit_code == 1 and "physiology" in r.output and "Traceback" not in r.output
        return
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        assert f["scenario"].attrs["name"] == "healthy-adult"
        assert "acf_per_year" in f["tables/physiology"]
    r = CliRunner().invoke(main, [*args[:4], "no-such-scenario", *args[5:]])
    assert r.exit_code == 1 and "Traceback" not in r.output


def test_cli_help_has_examples():
    from bonesim.cli import main

    r = CliRunner().invoke(main, ["simulate", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output and "--resume" in r.output


def test_two_day_steps_and_6_neighbourhood(vol):
    p = FAST.replace(dt_days=2.0, neighbourhood=6)
    res = simulate(vol, p, years=0.2, spinup_years=0.05, save_every=10, backend="numpy", seed=2)
    m = res.metrics
    assert m["day"][0] == 0 and np.all(np.diff(m["day"])[:-1] == 10)
    assert m["day"][-1] == pytest.approx(2 * round(0.2 * 365.25 / 2))
    assert m["bone_removed"].sum() > 0
    rmap = res.state["resorbed_day"]
    assert rmap.max() <= m["day"][-1] and (rmap[rmap >= 0] % 2 == 0).all()


def test_scenario_object_is_stored(vol, tmp_path):
    from types import SimpleNamespace

    table = constant_table(FAST, 40)
    table["formation_efficiency"][10:] = 0.8
    table["estrogen"] = np.linspace(1, 0.5, 40)
    scen = SimpleNamespace(name="test-menopause", toml='name = "test-menopause"\n', table=table)
    out = tmp_path / "s.h5"
    simulate(
        vol, scenario=scen, base_params=FAST, years=40 / 365.25, spinup_years=0.02, out=out, backend="numpy"
    )
    with h5py.File(out, "r") as f:
        assert f["scenario"].attrs["name"] == "test-menopause"
        assert "test-menopause" in f["scenario"].attrs["toml"]
        phys = read_table(f["tables/physiology"])
    np.testing.assert_array_equal(phys["estrogen"], table["estrogen"])
    np.testing.assert_array_equal(phys["formation_efficiency"], table["formation_efficiency"])


def test_spinup_turnover_survives_a_resume_during_the_spin_up(vol, tmp_path):
    """The spin-up's removal counters (the day-0 turnover of vBMD) are part of the checkpoint."""
    kw = dict(years=0.05, spinup_years=0.2, save_every=7, backend="numpy", seed=3)
    one = tmp_path / "one.h5"
    simulate(vol, FAST, out=one, **kw)
    two = tmp_path / "two.h5"
    seen = []

    def interrupt(info):
        seen.append(info["step"])
        if info["day"] < -10 and info["step"] >= 45 and len(seen) > 1:  # late in the spin-up
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=two, progress=interrupt, **kw)
    with h5py.File(partial_path(two) / "checkpoint.h5", "r") as f:
        assert f["state"].attrs["day"] < 0  # interrupted in the spin-up
    simulate(vol, FAST, out=two, resume=True, **kw)
    with h5py.File(one, "r") as a, h5py.File(two, "r") as b:
        k = a["state"].attrs["spinup_removed_per_day"]
        assert k > 0 and b["state"].attrs["spinup_removed_per_day"] == k
        np.testing.assert_array_equal(a["series/formed_day_new"][...], b["series/formed_day_new"][...])
