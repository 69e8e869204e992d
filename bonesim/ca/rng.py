"""The CA's random numbers: Philox-4x32-10, counter-based, identical in NumPy, CuPy and CUDA.

A random word is a pure function of (seed, step, global voxel index, stream):
the key is the run's 64-bit seed, the 128-bit counter is ``(voxel index low
word, high word, step, stream)``, and the word is the first of Philox's four
outputs (Salmon et al. 2011). For a fixed key Philox is a bijection of the
counter, so no two (step, voxel, stream) triples of one seed share a counter,
and different seeds are different keys; nothing is folded into 32 bits before
the cipher. ``bonesim/ca/kernels/common.cuh`` (``bs_voxel_random``) is the
CUDA/C++ twin; the CPU parity tests compare both bit for bit.

>>> [hex(int(w)) for w in philox4x32_10([np.uint32(0)] * 4, 0, 0)]
['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']

References
----------
.. [1] Salmon JK, Moraes MA, Dror RO, Shaw DE. Parallel random numbers: as easy
   as 1, 2, 3. Proc. SC'11 (2011). Known-answer vectors: Random123's kat_vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Largest seed: the key is 64 bits; seeds stay below 2**63 so they fit the int64 of HDF5, JSON and TOML.
MAX_SEED = 2**63 - 1
#: The stream (fourth counter word) of the activation draw.
STREAM_ACTIVATION = 0
#: The stream of the modeling-formation draw of a loaded marrow voxel (``BS_STREAM_MODELING``).
STREAM_MODELING = 1

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_M32 = 0xFFFFFFFF


def _mulhilo(m: Any, c: Any) -> tuple[Any, Any]:
    p = m * c.astype(np.uint64)
    return (p >> np.uint64(32)).astype(np.uint32), p.astype(np.uint32)


def philox4x32_10(counter: list[Any], k0: int, k1: int) -> list[Any]:
    """Philox-4x32-10 on four uint32 arrays (NumPy or CuPy, broadcastable) and a key (k0, k1)."""
    c0, c1, c2, c3 = counter
    for _ in range(10):
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint32(k0), lo1, hi0 ^ c3 ^ np.uint32(k1), lo0
        k0, k1 = (k0 + _W0) & _M32, (k1 + _W1) & _M32
    return [c0, c1, c2, c3]


def seed_words(seed: int) -> tuple[int, int]:
    """The two 32-bit key words (low, high) of a seed in [0, MAX_SEED]."""
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must lie in [0, 2**63 - 1], got {seed}")
    return seed & _M32, seed >> 32


def voxel_random(
    seed_lo: int, seed_hi: int, step: int, linear_index: Any, stream: int = STREAM_ACTIVATION, xp: Any = np
) -> Any:
    """Random uint32 word of each voxel (global linear index, uint64) at ``step`` of ``stream``."""
    if xp is np:
        return _voxel_random_numpy(seed_lo, seed_hi, step, linear_index, stream)
    lin = xp.asarray(linear_index, dtype=xp.uint64)
    lo = (lin & xp.uint64(_M32)).astype(xp.uint32)
    hi = (lin >> xp.uint64(32)).astype(xp.uint32)
    full = xp.zeros_like(lo)
    counter = [lo, hi, full + xp.uint32(step & _M32), full + xp.uint32(stream & _M32)]
    return philox4x32_10(counter, seed_lo, seed_hi)[0]


#: Voxels per block of the CPU Philox (six uint64 buffers of 512 KiB): the fastest of 2**13 .. 2**16
#: and whole arrays when timed on 356 000 voxels on the 2-core development machine.
_BLOCK = 1 << 16


def _voxel_random_numpy(seed_lo: int, seed_hi: int, step: int, linear_index: Any, stream: int) -> np.ndarray:
    """:func:`voxel_random` on the CPU: the same Philox rounds, block by block on uint64 buffers in place.

    Each 32-bit counter word lives in a uint64 (so the 32x32-bit product needs no cast), the six
    buffers are rotated instead of allocated, and blocks of ``_BLOCK`` voxels keep them in cache
    (400 000 draws on the development machine: 10 ms, against 30-39 ms for :func:`philox4x32_10`
    on whole arrays); ``tests/ca/test_rng.py`` checks it against :func:`philox4x32_10`.
    """
    lin = np.asarray(linear_index, dtype=np.uint64).reshape(-1)
    out = np.empty(lin.shape, np.uint32)
    for i in range(0, lin.size, _BLOCK):
        out[i : i + _BLOCK] = _philox_block(seed_lo, seed_hi, step, lin[i : i + _BLOCK], stream)
    return out.reshape(np.shape(linear_index))


def _philox_block(seed_lo: int, seed_hi: int, step: int, lin: np.ndarray, stream: int) -> np.ndarray:
    """First Philox-4x32-10 output word of counters (lin low, lin high, step, stream), as uint64."""
    m32 = np.uint64(_M32)
    c0, c1 = lin & m32, lin >> np.uint64(32)
    c2, c3 = np.full_like(c0, step & _M32), np.full_like(c0, stream & _M32)
    hi0, hi1 = np.empty_like(c0), np.empty_like(c0)
    k0, k1 = seed_lo & _M32, seed_hi & _M32
    for _ in range(10):
        np.multiply(c0, _M0, out=c0)  # 64-bit products M0 * c0 and M1 * c2
        np.multiply(c2, _M1, out=c2)
        np.right_shift(c0, np.uint64(32), out=hi0)  # hi0, and c0 becomes lo0
        np.bitwise_and(c0, m32, out=c0)
        np.right_shift(c2, np.uint64(32), out=hi1)  # hi1, and c2 becomes lo1
        np.bitwise_and(c2, m32, out=c2)
        np.bitwise_xor(hi1, c1, out=hi1)  # new c0 = hi1 ^ c1 ^ k0
        np.bitwise_xor(hi1, np.uint64(k0), out=hi1)
        np.bitwise_xor(hi0, c3, out=hi0)  # new c2 = hi0 ^ c3 ^ k1
        np.bitwise_xor(hi0, np.uint64(k1), out=hi0)
        # (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); the old c1, c3 become scratch
        c0, c1, c2, c3, hi0, hi1 = hi1, c2, hi0, c0, c1, c3
        k0, k1 = (k0 + _W0) & _M32, (k1 + _W1) & _M32
    return c0
