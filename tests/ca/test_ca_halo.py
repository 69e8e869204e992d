"""Chunked simulation with halos == the whole volume, bit for bit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from _chunk_toy import run_whole, toy_state, toy_step

from bonesim.ca.halo import advance_in_place, normalize_chunks, simulate_chunked

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


def _copy(state):
    return {k: v.copy() for k, v in state.items()}


@pytest.mark.parametrize(
    "chunks, k, workers",
    [((12, 10, 11), 1, 1), ((8, 8, 8), 4, 1), ((9, 7, 10), 3, 2), ((5, 20, 6), 5, 3), (11, 2, 2), (50, 7, 1)],
)
def test_in_place_equals_whole_and_the_two_buffer_run(whole, chunks, k, workers):
    """One copy of the state, updated in place: the same bits and counters as the whole volume."""
    state, _ = whole
    ref, ref_counts = run_whole(state, STEPS, counters=True)
    got = _copy(state)
    counts = advance_in_place(got, toy_step, STEPS, chunks=chunks, steps_per_exchange=k, num_workers=workers)
    assert _same(got, ref)
    np.testing.assert_array_equal(counts, ref_counts)
    # uneven chunks: the last chunk along an axis is shorter or merged, as in simulate_chunked
    assert _same(simulate_chunked(state, toy_step, STEPS, chunks=chunks, steps_per_exchange=k), got)


def test_in_place_local_fields_see_the_owned_box_only(whole):
    """A ``local`` field comes as a view of the owned box; updated in place or returned, it lands."""
    state, ref = whole

    def with_visits(fields, *, origin, global_shape, owned, step):
        visits = fields["visits"]
        box = tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(owned, origin, strict=True))
        assert visits.shape == tuple(s.stop - s.start for s in box)
        base = {n: fields[n] for n in ("bone", "phase", "timer")}
        new, c = toy_step(base, origin=origin, global_shape=global_shape, step=step, owned=owned)
        visits += (new["phase"][box] != 0).astype(np.uint16)  # in place
        if step % 2:
            visits = visits.copy()  # or a new array
        return {**new, "visits": visits}, c

    visits = np.zeros(SHAPE, np.uint16)
    s, expect = dict(state), np.zeros(SHAPE, np.uint16)
    for t in range(STEPS):
        s = toy_step(s, origin=(0, 0, 0), global_shape=SHAPE, step=t)
        expect += (s["phase"] != 0).astype(np.uint16)
    got = {**_copy(state), "visits": visits}
    advance_in_place(got, with_visits, STEPS, chunks=(9, 7, 10), steps_per_exchange=4, local=("visits",))
    assert _same(got, ref)
    np.testing.assert_array_equal(got["visits"], expect)
    assert got["visits"] is visits


def test_in_place_refuses_what_it_cannot_update(whole, tmp_path):
    state, _ = whole
    frozen = _copy(state)
    frozen["bone"].flags.writeable = False
    with pytest.raises(ValueError, match="writable NumPy array"):
        advance_in_place(frozen, toy_step, 2, chunks=8)
    with pytest.raises(ValueError, match="not in `fields`"):
        advance_in_place(_copy(state), toy_step, 2, chunks=8, local=("maps",))


def test_normalize_chunks_errors():
    with pytest.raises(ValueError, match="thinner than the halo"):
        normalize_chunks((20, 20, 20), 3, 4)
    assert normalize_chunks((20, 20, 20), 50, 4) == ((20,), (20,), (20,))


@pytest.mark.gpu
def test_chunked_cupy_equals_whole_numpy(whole):
    state, ref = whole
    got = simulate_chunked(state, toy_step, STEPS, chunks=8, steps_per_exchange=4, device="cupy")
    assert _same(got, ref)
