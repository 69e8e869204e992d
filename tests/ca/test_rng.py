"""The counter-based RNG (Philox-4x32-10): known answers, distinct fields per (seed, step), full seed range."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.ca.rng import MAX_SEED, philox4x32_10, seed_words, voxel_random

# Random123's kat_vectors for philox4x32_10 (counter, key, output), as quoted by several test suites.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("ctr", "key", "out"), KAT)
def test_known_answers(ctr, key, out):
    got = philox4x32_10([np.array([c], np.uint32) for c in ctr], *key)
    assert tuple(int(w[0]) for w in got) == out


def _field_signatures(word_fn, seeds, steps, voxels):
    """One sorted tuple of the words at ``voxels`` per (seed, step): equal tuples = a shared field up to a shuffle."""
    sig = np.empty((len(seeds), len(steps), len(voxels)), np.uint32)
    st = np.asarray(steps, np.uint32)
    for i, s in enumerate(seeds):
        for j, v in enumerate(voxels):
            sig[i, :, j] = word_fn(s, st, v)
    sig.sort(axis=2)
    flat = sig.reshape(-1, len(voxels))
    return len(np.unique(flat, axis=0)), flat.shape[0]


def _philox_words(seed, steps, voxel):
    """The activation word of one voxel at many steps (the counter layout of voxel_random)."""
    lo, hi = seed_words(seed)
    full = np.zeros(steps.shape, np.uint32)
    ctr = [full + np.uint32(voxel & 0xFFFFFFFF), full + np.uint32(voxel >> 32), steps, full]
    return philox4x32_10(ctr, lo, hi)[0]


def _old_xor_fmix_words(seed, steps, voxel):
    """The scheme this replaced: seed, step and voxel XOR-combined before 32-bit bijections."""

    def fmix(h):
        h = h.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
        return h

    with np.errstate(over="ignore"):
        key = fmix(fmix(np.full(steps.shape, (seed + 0x9E3779B9) & 0xFFFFFFFF, np.uint32) ^ steps))
    return fmix(key ^ np.uint32(voxel))


VOXELS = (0, 1, 77, 123_457, 2**32 + 5)


def test_no_two_seed_step_pairs_of_a_1000_seed_10_year_study_share_a_field():
    steps = range(int(10 * 365.25) + 1)
    lin = np.full(3, 2**32 + 5, np.uint64)
    assert np.array_equal(
        _philox_words(7, np.arange(3, dtype=np.uint32), 2**32 + 5),
        [voxel_random(7, 0, t, lin[:1])[0] for t in range(3)],
    )
    n_unique, n = _field_signatures(_philox_words, range(1000), steps, VOXELS)
    assert n_unique == n == 1000 * 3653


def test_the_field_test_catches_the_old_scheme():
    """The same check finds shared fields in the XOR-then-hash scheme (it can fail)."""
    n_unique, n = _field_signatures(_old_xor_fmix_words, range(200), range(3653), VOXELS[:4])
    assert n_unique < n


def test_seeds_use_the_full_64_bit_key():
    lin = np.arange(4096, dtype=np.uint64)
    a = voxel_random(*seed_words(0), 5, lin)
    b = voxel_random(*seed_words(2**32), 5, lin)  # the old scheme took seeds modulo 2**32
    c = voxel_random(*seed_words(MAX_SEED), 5, lin)
    assert (a != b).mean() > 0.99 and (a != c).mean() > 0.99
    with pytest.raises(ValueError, match="2\\*\\*63"):
        seed_words(MAX_SEED + 1)
    with pytest.raises(ValueError):
        seed_words(-1)


def test_words_are_uniform():
    w = voxel_random(*seed_words(3), 11, np.arange(200_000, dtype=np.uint64))
    counts = np.bincount((w >> np.uint32(28)).astype(np.int64), minlength=16)
    expected = w.size / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40  # 15 degrees of freedom: p ≈ 5e-4
    thr = np.uint32(int(0.01 * 2**32))
    assert abs(int((w < thr).sum()) - 2000) < 4 * np.sqrt(2000)


def test_engine_refuses_seeds_outside_the_key(tmp_path):
    from bonesim import phantom
    from bonesim.ca.engine import simulate
    from bonesim.errors import BonesimError
    from bonesim.volume import Volume

    vol = Volume(phantom.plate((6, 8, 8), 2, axis=0), voxel_size_um=20.0)
    for bad in (-1, MAX_SEED + 1, 1.5, True):
        with pytest.raises(BonesimError, match="seed"):
            simulate(vol, years=0.01, seed=bad, backend="numpy", out=tmp_path / f"r{bad}.h5")


@pytest.mark.parametrize("n", [1, 7, 2**16, 2**16 + 3, 3 * 2**16 - 1])
def test_cpu_philox_equals_the_generic_rounds(n):
    """The NumPy fast path of voxel_random (uint64 buffers, blocks) equals philox4x32_10 on whole arrays."""
    rng = np.random.default_rng(n)
    lin = rng.integers(0, 2**45, n, dtype=np.uint64)
    lin[0] = 2**32 - 1  # both index words
    for step, stream, k0, k1 in [(0, 0, 0, 0), (123, 0, 0xDEADBEEF, 7), (2**32 - 1, 5, 2**32 - 1, 2**32 - 1)]:
        lo = (lin & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        hi = (lin >> np.uint64(32)).astype(np.uint32)
        ctr = [lo, hi, np.full_like(lo, step), np.full_like(lo, stream)]
        want = philox4x32_10(ctr, k0, k1)[0]
        got = voxel_random(k0, k1, step, lin, stream)
        assert got.dtype == np.uint32
        np.testing.assert_array_equal(got, want)
    assert voxel_random(1, 2, 3, lin.reshape(1, -1)).shape == (1, n)
