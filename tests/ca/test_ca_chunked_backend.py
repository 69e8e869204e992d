"""The real CA engine in chunks with halos == the whole volume, bit for bit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("dask.array")
engine = pytest.importorskip("bonesim.ca.engine")

from bonesim import Volume, phantom  # noqa: E402
from bonesim.ca.backends.chunked import ChunkedBackend, shell_boxes, simulate_in_chunks  # noqa: E402
from tests.fast_params import fast  # noqa: E402

SHAPE = (28, 24, 26)
KW = {"years": 0.15, "spinup_years": 0.05, "save_every": 20, "seed": 3, "params": fast(acf_per_year=4)}


@pytest.fixture(scope="module")
def vol():
    return Volume(phantom.gyroid(SHAPE, 14, level=0.3), voxel_size_um=20)


@pytest.fixture(scope="module")
def whole(vol, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "w.h5"
    res = engine.simulate(vol, backend="numpy", out=out, **KW)
    return res, out


def _h5(path):
    with h5py.File(path) as f:
        return {
            k: f[k][...]
            for k in (
                "state/bone",
                "state/phase",
                "state/timer",
                "maps/resorbed_day",
                "maps/formed_day",
                "series/bone",
                "series/day",
            )
        }


def test_reference_run_does_something(whole, vol):
    res, _ = whole
    m = res.metrics
    assert m["recruited"].sum() > 0 and m["bone_removed"].sum() > 0 and m["bone_added"].sum() > 0
    assert not np.array_equal(res.state["bone"], vol.data)


@pytest.mark.parametrize("chunks, k", [(16, 16), ((10, 24, 9), 5), ((28, 7, 26), 1), (12, 6)])
def test_chunked_engine_bit_identical(vol, whole, tmp_path, chunks, k):
    ref, ref_path = whole
    out = tmp_path / "c.h5"
    res = simulate_in_chunks(vol, backend="numpy", chunks=chunks, steps_per_exchange=k, out=out, **KW)
    for key in ("bone", "phase", "timer", "resorbed_day", "formed_day"):
        np.testing.assert_array_equal(res.state[key], ref.state[key], err_msg=key)
    for key, col in ref.metrics.items():
        np.testing.assert_array_equal(res.metrics[key], col, err_msg=key)
    a, b = _h5(out), _h5(ref_path)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert res.backend == "numpy" and f"{k} steps/exchange" in res.device


def test_exchanges_follow_calibration(vol):
    be = ChunkedBackend("numpy", chunks=16, steps_per_exchange=16)
    engine.simulate(vol, backend=be, years=0.1, spinup_years=0, save_every=1000)
    steps = round(0.1 * engine.DAYS_PER_YEAR)
    # one exchange per calibration interval (16 steps), none longer
    assert be.exchanges == -(-steps // 16)


def test_halo_limited_by_thinnest_chunk():
    assert ChunkedBackend("numpy", chunks=(12, 30, 30), steps_per_exchange=16).k == 12


def test_shell_boxes_tile_the_block():
    shape = (7, 6, 5)
    inner = ((2, 5), (1, 6), (0, 3))
    cover = np.zeros(shape, int)
    for box in [inner, *shell_boxes(shape, inner)]:
        cover[tuple(slice(lo, hi) for lo, hi in box)] += 1
    assert (cover == 1).all()


@pytest.mark.gpu
def test_chunked_cupy_engine_equals_numpy(vol, whole):
    ref, _ = whole
    res = simulate_in_chunks(vol, backend="cupy", chunks=(12, 12, 13), steps_per_exchange=8, **KW)
    for key in ("bone", "phase", "timer", "resorbed_day", "formed_day"):
        np.testing.assert_array_equal(res.state[key], ref.state[key], err_msg=key)


def test_cli_simulate_chunks_equals_unchunked(tmp_path):
    """`bonesim simulate --chunks` gives the same frames, maps and state as the plain run."""
    from click.testing import CliRunner

    from bonesim.cli import main
    from bonesim.io.hdf5 import write_volume

    bone = phantom.gyroid((20, 22, 24), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    src = tmp_path / "in.h5"
    write_volume(src, Volume(bone, voxel_size_um=20.0), xdmf=False)
    common = ["--years", "0.1", "--spinup-years", "0.05", "--backend", "numpy", "--no-progress"]
    outs = []
    for extra in ([], ["--chunks", "12", "--steps-per-exchange", "4"]):
        out = tmp_path / f"out{len(outs)}.h5"
        r = CliRunner().invoke(main, ["simulate", str(src), str(out), *common, *extra])
        assert r.exit_code == 0, r.output
        outs.append(out)
    with h5py.File(outs[0], "r") as a, h5py.File(outs[1], "r") as b:
        for name in ("series/bone", "maps/resorbed_day", "maps/formed_day"):
            np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)
        for name in a["state"]:
            np.testing.assert_array_equal(a["state"][name][...], b["state"][name][...], err_msg=name)


def test_chunked_engine_with_modeling_formation_bit_identical(vol):
    """Modeling-based formation (marrow voxels at chunk borders start too) gives the whole volume's bits."""
    from bonesim.ca.mechano import MechanoParams

    mech = MechanoParams(
        interval_days=10, sensing_um=60.0, modeling=True, modeling_threshold=1.2, modeling_rate_per_day=0.2
    )
    ref = engine.simulate(vol, backend="numpy", mechanics=mech, **KW)
    assert ref.metrics["modeled"].sum() > 0
    res = simulate_in_chunks(
        vol, backend="numpy", chunks=(10, 24, 9), steps_per_exchange=5, mechanics=mech, **KW
    )
    for key in ("bone", "phase", "timer", "resorbed_day", "formed_day"):
        np.testing.assert_array_equal(res.state[key], ref.state[key], err_msg=key)
    np.testing.assert_array_equal(res.metrics["modeled"], ref.metrics["modeled"])


def test_chunked_threads_and_thin_slabs_bit_identical(vol, whole, monkeypatch):
    """Blocks stepped two at a time, words stepped in slabs of 3 planes (uneven chunks): the same bits."""
    from bonesim.ca.backends import chunked

    monkeypatch.setattr(chunked.BlockStep, "SLAB", 3)
    ref, _ = whole
    res = simulate_in_chunks(
        vol, backend="numpy", chunks=(9, 11, 10), steps_per_exchange=4, num_workers=2, **KW
    )
    for key in ("bone", "phase", "timer", "resorbed_day", "formed_day"):
        np.testing.assert_array_equal(res.state[key], ref.state[key], err_msg=key)
    for key, col in ref.metrics.items():
        np.testing.assert_array_equal(res.metrics[key], col, err_msg=key)


def test_chunked_resume_after_ctrl_c_equals_one_run(vol, whole, tmp_path):
    """Interrupted mid-exchange-interval and resumed in chunks: the files of the unbroken whole-volume run."""
    import os
    import signal

    from bonesim.io.result import partial_path

    _, ref_path = whole
    out = tmp_path / "c.h5"
    steps_before = 30  # not a multiple of the 7 steps per exchange nor of the save interval

    def interrupt(info):
        if info["step"] == steps_before:
            os.kill(os.getpid(), signal.SIGINT)

    kw = dict(backend="numpy", chunks=(10, 13, 9), steps_per_exchange=7, out=out, **KW)
    with pytest.raises(KeyboardInterrupt):
        simulate_in_chunks(vol, progress=interrupt, **kw)
    with h5py.File(partial_path(out) / "checkpoint.h5", "r") as f:
        assert f["state"].attrs["step"] == steps_before
    simulate_in_chunks(vol, resume=True, **kw)
    a, b = _h5(out), _h5(ref_path)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
