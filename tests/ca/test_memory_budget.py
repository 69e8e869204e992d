"""Host bytes per voxel of a run (issue 15 item 2): save points stream the state in slabs.

A save point used to download the whole state (12 bytes per voxel, plus the
unpacking temporaries) and queue that copy for the writer; it now hands the
writer z-slabs within a byte budget. These tests bound what a save point adds
(tracemalloc: NumPy allocations, all threads) and check that the streamed
files are the files of the old whole-state path, bit for bit.
"""

from __future__ import annotations

import math
import tracemalloc

import h5py
import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim.ca import engine
from bonesim.ca.backends.numpy_backend import NumpyBackend
from bonesim.ca.engine import partial_path, simulate
from bonesim.io.result import RunFolder
from tests.ca.ca_helpers import result_arrays
from tests.ca.test_engine import FAST

#: A tall volume: 200 planes = 4 slabs (the last one partial), so a slab is a small part of it.
SHAPE = (200, 40, 40)
KW = dict(years=0.1, spinup_years=0.03, save_every=9, backend="numpy", seed=4)


@pytest.fixture(scope="module")
def vol() -> Volume:
    return Volume(phantom.gyroid(SHAPE, 20, phantom.gyroid_sheet_level_for(0.35), sheet=True), 20.0)


class _WholeState:
    """The NumPy backend without ``download_slab`` and ``release``: the engine's old path (whole downloads)."""

    def __init__(self) -> None:
        self._be = NumpyBackend()
        self.name, self.device = self._be.name, self._be.device

    def upload(self, *a, **k):
        return self._be.upload(*a, **k)

    def step(self, *a, **k):
        return self._be.step(*a, **k)

    def read_counters(self, st):
        return self._be.read_counters(st)

    def download(self, st):
        return self._be.download(st)

    def download_bone(self, st):
        return self._be.download_bone(st)

    def set_mechanics(self, *a):
        return self._be.set_mechanics(*a)


def test_a_save_point_adds_a_bounded_number_of_bytes_per_voxel(vol, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "SAVE_BUFFER_MIN_BYTES", 0)  # the budget of a large volume: 0.5 B/voxel
    nvox = math.prod(SHAPE)
    real, peaks = engine._Loop.save, []

    def measured(self, **kw):
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        real(self, **kw)
        self.flush()  # the writer's slabs are counted until they are written
        peaks.append((tracemalloc.get_traced_memory()[1] - base) / nvox)

    monkeypatch.setattr(engine._Loop, "save", measured)
    tracemalloc.start()
    try:
        simulate(vol, FAST, out=tmp_path / "run.h5", **KW)
    finally:
        tracemalloc.stop()
    assert len(peaks) >= 5
    # one int32 slab of 64 of 200 planes is 1.3 B/voxel, the first frame allocates the previous-frame
    # bone (1 B/voxel); the old path held the unpacked state and the maps (12 B/voxel) and more
    assert max(peaks) < 3.0, peaks
    assert sorted(peaks)[-2] < 2.0, peaks


def test_streamed_save_points_write_the_files_of_whole_state_downloads(vol, tmp_path, monkeypatch):
    ref = simulate(vol, FAST, out=tmp_path / "whole.h5", **{**KW, "backend": _WholeState()})
    monkeypatch.setattr(engine, "SAVE_BUFFER_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "SAVE_BUFFER_BYTES_PER_VOXEL", 0.01)  # back-pressure on every slab
    res = simulate(vol, FAST, out=tmp_path / "slabs.h5", **KW)
    a, b = result_arrays(tmp_path / "whole.h5"), result_arrays(tmp_path / "slabs.h5")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for k in ("bone", "phase", "timer", "resorbed_day", "formed_day"):
        np.testing.assert_array_equal(ref.state[k], res.state[k], err_msg=k)
    assert res.volume.data.flags.c_contiguous


def test_a_streamed_checkpoint_carries_the_digest_of_the_whole_state(vol, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "SAVE_BUFFER_MIN_BYTES", 0)
    out = tmp_path / "run.h5"
    steps = []

    def stop(info):
        steps.append(info["step"])
        if info["step"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(vol, FAST, out=out, progress=stop, **KW)
    folder = RunFolder(out)
    ck = folder.read_checkpoint(SHAPE)  # verifies the stored digest against the arrays read back
    from bonesim.io.result import digest_arrays

    with h5py.File(partial_path(out) / "checkpoint.h5", "r") as f:
        stored = f["state"].attrs["state_digest"]
    assert (stored.decode() if isinstance(stored, bytes) else str(stored)) == digest_arrays(ck.state)
    # a checkpoint whose bytes change no longer matches it
    with h5py.File(partial_path(out) / "checkpoint.h5", "r+") as f:
        t = f["state/timer"][...]
        t[150, 3, 3] ^= 1
        del f["state/timer"]
        f["state"].create_dataset("timer", data=t)
    with pytest.raises(Exception, match="digest"):
        folder.read_checkpoint(SHAPE)


def test_a_failed_write_never_leaves_the_loop_waiting_for_room(vol, tmp_path, monkeypatch):
    """A checkpoint job that fails before reading its slabs: the loop's puts stop, the error surfaces."""
    import errno
    import threading

    from bonesim.errors import BonesimError

    monkeypatch.setattr(engine, "SAVE_BUFFER_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "SAVE_BUFFER_BYTES_PER_VOXEL", 0.01)  # the slabs never fit at once
    calls = []

    def failing(self, st, **kw):
        calls.append(kw["step"])
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, st, **kw)

    real = RunFolder.write_checkpoint
    monkeypatch.setattr(RunFolder, "write_checkpoint", failing)
    outcome = []

    def run():
        try:
            simulate(vol, FAST, out=tmp_path / "run.h5", **KW)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(240)
    assert not t.is_alive(), "the run hangs on a failed writer"
    assert len(outcome) == 1 and isinstance(outcome[0], BonesimError), outcome
    assert "checkpoint" in str(outcome[0]) and "Input/output error" in str(outcome[0])
    assert RunFolder(tmp_path / "run.h5").has_checkpoint()  # the first checkpoint stays
