"""The I/O pipeline of the engine (issue 15 item 1): background writer, checkpoint settings, resume."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim import Volume, phantom
from bonesim.ca.engine import partial_path, simulate
from bonesim.cli import main
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import write_volume
from bonesim.io.result import RunFolder
from tests.ca.ca_helpers import result_arrays
from tests.ca.test_engine import FAST

ROOT = Path(__file__).resolve().parents[2]
KW = dict(years=0.25, spinup_years=0.1, save_every=7, backend="numpy", seed=9)
#: HDF5 filter ids: deflate, LZ4, Zstandard.
FILTER_ID = {"gzip": 1, "lz4": 32004, "zstd": 32015}


@pytest.fixture(scope="module")
def vol() -> Volume:
    bone = phantom.gyroid((20, 22, 24), 18, phantom.gyroid_sheet_level_for(0.4), sheet=True)
    return Volume(bone, voxel_size_um=20.0, metadata={"kind": "gyroid"})


@pytest.fixture(scope="module")
def one(vol, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "one.h5"
    simulate(vol, FAST, out=out, **KW)
    return result_arrays(out)


def _interrupt_at(step):
    def progress(info):
        if info["step"] == step:
            os.kill(os.getpid(), signal.SIGINT)

    return progress


def _filters(path: Path) -> set[int]:
    with h5py.File(path, "r") as f:
        plist = f["state/bone"].id.get_create_plist()
        return {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}


def test_resume_from_a_background_checkpoint_with_other_checkpoint_settings_equals_one_run(
    vol, one, tmp_path
):
    two = tmp_path / "two.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=two, progress=_interrupt_at(80), checkpoint_compression="lz4", **KW)
    ck = partial_path(two) / "checkpoint.h5"
    with h5py.File(ck, "r") as f:
        assert f["state"].attrs["step"] == 80
    assert FILTER_ID["lz4"] in _filters(ck)
    # checkpoint settings are not part of the run's identity: another compression and interval resume it
    simulate(
        vol, FAST, out=two, resume=True, checkpoint_compression="zstd", checkpoint_every_minutes=0.5, **KW
    )
    b = result_arrays(two)
    assert one.keys() == b.keys()
    for k in one:
        np.testing.assert_array_equal(one[k], b[k], err_msg=k)


@pytest.mark.parametrize("comp", ["none", "gzip", "lz4", "zstd"])
def test_checkpoint_compression_round_trips_in_a_fresh_process(vol, tmp_path, comp):
    out = tmp_path / "c.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=out, progress=_interrupt_at(50), checkpoint_compression=comp, **KW)
    ck = partial_path(out) / "checkpoint.h5"
    filters = _filters(ck)
    assert (FILTER_ID[comp] in filters) if comp != "none" else not (filters & set(FILTER_ID.values()))
    mine = RunFolder(out).read_checkpoint(vol.shape)
    code = textwrap.dedent(f"""
        import numpy as np, sys
        from bonesim.io.result import RunFolder
        assert "hdf5plugin" not in sys.modules
        ck = RunFolder({str(out)!r}).read_checkpoint({tuple(vol.shape)!r})
        np.savez({str(tmp_path / "ck.npz")!r}, step=ck.step, **ck.state)
    """)
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    got = np.load(tmp_path / "ck.npz")
    assert int(got["step"]) == mine.step == 50
    for k, a in mine.state.items():
        np.testing.assert_array_equal(got[k], a, err_msg=k)


def test_an_lz4_checkpoint_without_hdf5plugin_is_one_sentence_naming_the_extra(vol, tmp_path):
    out = tmp_path / "n.h5"
    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=out, progress=_interrupt_at(30), checkpoint_compression="lz4", **KW)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["hdf5plugin"] = None
        from bonesim.errors import BonesimError
        from bonesim.io.result import RunFolder
        try:
            RunFolder({str(out)!r}).read_checkpoint({tuple(vol.shape)!r})
        except BonesimError as exc:
            print(exc)
    """)
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "lz4-compressed, which needs the hdf5plugin package" in r.stdout, r.stdout + r.stderr
    assert "bonesim[io]" in r.stdout and "corrupt" not in r.stdout


def test_lz4_without_hdf5plugin_is_one_sentence_naming_the_extra(vol, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)  # import fails
    for comp in ("lz4", "zstd"):
        with pytest.raises(
            BonesimError, match=rf"{comp} compression needs the hdf5plugin package.*bonesim\[io\]"
        ):
            simulate(vol, FAST, out=tmp_path / "x.h5", checkpoint_compression=comp, **KW)
    assert not partial_path(tmp_path / "x.h5").exists()
    # auto falls back to uncompressed checkpoints
    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=tmp_path / "y.h5", progress=_interrupt_at(40), **KW)
    assert not _filters(partial_path(tmp_path / "y.h5") / "checkpoint.h5") & set(FILTER_ID.values())


def test_checkpoint_every_minutes_decouples_checkpoints_from_frames(vol, tmp_path, monkeypatch):
    real = RunFolder.write_checkpoint
    steps, frames_on_disk = [], []

    def spy(self, st, **kw):
        steps.append(kw["step"])
        # the frames this checkpoint counts are already renamed into place
        frames_on_disk.append(all((self.path / f"frame_{i:05d}.h5").is_file() for i in range(kw["n_frames"])))
        return real(self, st, **kw)

    monkeypatch.setattr(RunFolder, "write_checkpoint", spy)
    res = simulate(vol, FAST, out=tmp_path / "every.h5", **KW)
    n_saves = len(steps)
    assert n_saves > 10 and all(frames_on_disk)
    steps.clear()
    res2 = simulate(vol, FAST, out=tmp_path / "rare.h5", checkpoint_every_minutes=60, **KW)
    # the spin-up's first checkpoint and the final one only; every frame is still written
    assert steps == [0, res2.timings["steps"]] and all(frames_on_disk)
    assert len(res2.metrics["day"]) == len(res.metrics["day"])
    with h5py.File(tmp_path / "every.h5") as f, h5py.File(tmp_path / "rare.h5") as g:
        np.testing.assert_array_equal(f["series/bone"][...], g["series/bone"][...])


def test_a_writer_error_is_one_line_and_leaves_a_resumable_folder(tmp_path, monkeypatch):
    import bonesim.io.result as result

    write_volume(tmp_path / "bone.h5", Volume(phantom.gyroid((20, 20, 20), 12, 0.3, sheet=True), 20.0))
    args = ["--backend", "numpy", "--no-progress", "--years", "0.15", "--spinup-years", "0.05"]
    args += ["--save-every", "10"]
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "bone.h5"), str(tmp_path / "ref.h5"), *args])
    assert r.exit_code == 0, r.output
    real = result.RunFolder.write_checkpoint
    calls = []

    def failing(self, *a, **k):
        calls.append(k["step"])
        if len(calls) == 4:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, *a, **k)

    monkeypatch.setattr(result.RunFolder, "write_checkpoint", failing)
    out = tmp_path / "o.h5"
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "bone.h5"), str(out), *args])
    assert r.exit_code == 1, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in r.output, r.output
    assert "checkpoint" in errors[0] and "Input/output error" in errors[0] and "--resume" in errors[0]
    assert not out.exists() and RunFolder(out).has_checkpoint()
    with h5py.File(partial_path(out) / "checkpoint.h5", "r") as f:
        assert f["state"].attrs["step"] == calls[2]  # the last checkpoint before the failure
    monkeypatch.setattr(result.RunFolder, "write_checkpoint", real)
    bad = ["--checkpoint-every-minutes", "0"]
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "bone.h5"), str(out), *args, "--resume", *bad])
    assert r.exit_code == 1 and "Error: --checkpoint-every-minutes must be a positive" in r.output, r.output
    # the CLI options reach the engine and do not block the resume (not part of the identity)
    opts = ["--checkpoint-compression", "zstd", "--checkpoint-every-minutes", "5"]
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "bone.h5"), str(out), *args, "--resume", *opts])
    assert r.exit_code == 0, r.output
    a, b = result_arrays(tmp_path / "ref.h5"), result_arrays(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
