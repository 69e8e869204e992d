"""Chunked simulation with halos == the whole volume, bit for bit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from _chunk_toy import run_whole, toy_state, toy_step

from bonesim.ca.halo import normalize_chunks, simulate_chunked

pytest.importorskip("dask.array")
SHAPE = (24, 20, 22)
STEPS = 12


@pytest.fixture(scope="module")
def whole():
    state = toy_state(SHAPE)
    return state, run_whole(state, STEPS)


def _same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in ("bone", "phase", "timer"))


def test_toy_rule_is_not_trivial(whole):
    state, ref = whole
    assert not np.array_equal(state["bone"], ref["bone"])
    assert set(np.unique(ref["phase"]).tolist()) >= {0, 1, 2, 3}


@pytest.mark.parametrize(
    "chunks, k",
    [((12, 10, 11), 1), ((8, 8, 8), 4), ((12, 7, 22), 3), ((5, 20, 6), 5), (11, 2), ((24, 20, 22), 7)],
)
def test_chunked_equals_whole(whole, chunks, k):
    state, ref = whole
    got = simulate_chunked(state, toy_step, STEPS, chunks=chunks, reach=1, steps_per_exchange=k)
    assert _same(got, ref)


@pytest.mark.parametrize("chunks, k", [((8, 8, 8), 3), ((24, 5, 11), 2)])
def test_counters_sum_over_owned_voxels(whole, chunks, k):
    state, _ = whole
    ref, ref_counts = run_whole(state, STEPS, counters=True)
    assert ref_counts.shape == (STEPS, 3) and ref_counts[:, 2].sum() > 0
    got, counts = simulate_chunked(
        state, toy_step, STEPS, chunks=chunks, steps_per_exchange=k, return_counters=True
    )
    assert _same(got, ref)
    np.testing.assert_array_equal(counts, ref_counts)


def test_params_and_first_step(whole):
    state, _ = whole
    ref = run_whole(state, 6, first_step=40, seed=9)
    got = simulate_chunked(
        state, toy_step, 6, chunks=9, steps_per_exchange=2, first_step=40, params=lambda t: {"seed": 9}
    )
    assert _same(got, ref)


def test_wrong_halo_or_origin_breaks_it(whole):
    """The comparison can fail: too thin a halo, or a step that ignores the global origin."""
    state, ref = whole
    thin = simulate_chunked(state, toy_step, STEPS, chunks=12, reach=0, steps_per_exchange=3)
    assert not _same(thin, ref)

    def local_origin(fields, *, origin, global_shape, owned, step):
        return toy_step(fields, origin=(0, 0, 0), global_shape=global_shape, step=step)

    assert not _same(simulate_chunked(state, local_origin, STEPS, chunks=12, steps_per_exchange=4), ref)


def test_streams_hdf5_to_hdf5(tmp_path, whole):
    state, ref = whole
    with h5py.File(tmp_path / "s.h5", "w") as f:
        src = {k: f.create_dataset(f"in/{k}", data=v, chunks=(8, 8, 8)) for k, v in state.items()}
        out = {
            k: f.create_dataset(f"out/{k}", shape=SHAPE, dtype=v.dtype, chunks=(8, 8, 8))
            for k, v in state.items()
        }
        tmp = {
            k: f.create_dataset(f"tmp/{k}", shape=SHAPE, dtype=v.dtype, chunks=(8, 8, 8))
            for k, v in state.items()
        }
        simulate_chunked(
            src, toy_step, STEPS, chunks=(16, 8, 8), steps_per_exchange=3, out=out, scratch=tmp, num_workers=2
        )
        got = {k: ds[...] for k, ds in out.items()}
    assert _same(got, ref)


def test_normalize_chunks_errors():
    with pytest.raises(ValueError, match="thinner than the halo"):
        normalize_chunks((20, 20, 20), 3, 4)
    assert normalize_chunks((20, 20, 20), 50, 4) == ((20,), (20,), (20,))


@pytest.mark.gpu
def test_chunked_cupy_equals_whole_numpy(whole):
    state, ref = whole
    got = simulate_chunked(state, toy_step, STEPS, chunks=8, steps_per_exchange=4, device="cupy")
    assert _same(got, ref)
