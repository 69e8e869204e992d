"""A toy BMU-like cellular automaton with the block-step protocol of bonesim.ca.halo.

Local (6-neighbourhood, reach 1), double-buffered, counter-based hash of
(seed, step, global voxel index): exactly the properties that make the real
engine chunk invariant, in a few lines. The outer boundary of the volume is
inert; so are voxels beyond a block's edge (their results are trimmed).
"""

from __future__ import annotations

import numpy as np

from bonesim.ca.rng import voxel_random

ACT = np.uint32(2**27)
FILL = np.uint32(2**30)


def toy_step(fields, *, origin, global_shape, step, owned=None, seed=0, act=ACT, fill=FILL):
    xp = np
    try:  # run on CuPy blocks too
        import cupy

        if isinstance(fields["bone"], cupy.ndarray):
            xp = cupy
    except ImportError:
        pass
    bone, phase, timer = fields["bone"], fields["phase"], fields["timer"]
    shape = bone.shape
    z, y, x = (xp.arange(n, dtype=xp.uint64) + xp.uint64(o) for n, o in zip(shape, origin, strict=True))
    gidx = (z[:, None, None] * xp.uint64(global_shape[1]) + y[None, :, None]) * xp.uint64(global_shape[2]) + x
    h = voxel_random(seed, 0, step, gidx, xp=xp)
    isbone = bone >= 128
    pb = xp.pad(isbone, 1, constant_values=False)
    pm = xp.pad(~isbone, 1, constant_values=False)  # beyond the block: neither bone nor marrow (inert)
    nb = xp.zeros(shape, xp.uint8)
    nm = xp.zeros(shape, xp.uint8)
    for axis in range(3):
        for d in (-1, 1):
            sl = [slice(1, -1)] * 3
            sl[axis] = slice(1 + d, shape[axis] + 1 + d)
            nb += pb[tuple(sl)]
            nm += pm[tuple(sl)]
    new_bone, new_phase, new_timer = bone.copy(), phase.copy(), timer.copy()
    q = phase == 0
    start = q & isbone & (nm > 0) & (h < act)
    new_phase[start], new_timer[start] = 1, 5
    r = phase == 1
    new_bone[r] = xp.where(bone[r] > 40, bone[r] - 40, 0).astype(xp.uint8)
    new_timer[r] = timer[r] - 1
    rev = phase == 2
    new_timer[rev] = timer[rev] - 1
    f = phase == 3
    add = (bone[f].astype(xp.uint16) + 30 + (h[f] & 7)).clip(0, 255)
    new_bone[f] = add.astype(xp.uint8)
    new_timer[f] = timer[f] - 1
    ended = (phase > 0) & (new_timer == 0)
    nxt = xp.where(phase == 1, 2, xp.where(phase == 2, 3, 0)).astype(xp.uint8)
    new_phase[ended] = nxt[ended]
    new_timer[ended & (phase == 1)] = 3
    new_timer[ended & (phase == 2)] = 5
    grow = q & ~isbone & (nb >= 4) & ((h >> 1) < (fill >> 1))
    new_bone[grow] = 255
    new = {"bone": new_bone, "phase": new_phase, "timer": new_timer}
    if owned is None:
        return new
    sl = tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(owned, origin, strict=True))
    old_b, new_b = bone[sl].astype(xp.int64), new_bone[sl].astype(xp.int64)
    counts = [xp.maximum(old_b - new_b, 0).sum(), xp.maximum(new_b - old_b, 0).sum(), start[sl].sum()]
    return new, np.array([int(c) for c in counts], dtype=np.int64)


def toy_state(shape, seed=0):
    from bonesim.phantom import gyroid

    bone = gyroid(shape, period=max(shape) / 2)
    rng = np.random.default_rng(seed)
    phase = np.zeros(shape, np.uint8)
    timer = np.zeros(shape, np.uint16)
    noise = rng.integers(0, 60, shape, dtype=np.uint8)
    bone = np.where(bone > 0, bone - noise, noise // 4).astype(np.uint8)
    return {"bone": bone, "phase": phase, "timer": timer}


def run_whole(state, n_steps, first_step=0, counters=False, **kw):
    s = dict(state)
    shape = s["bone"].shape
    owned = tuple((0, n) for n in shape) if counters else None
    counts = []
    for t in range(first_step, first_step + n_steps):
        s = toy_step(s, origin=(0, 0, 0), global_shape=shape, step=t, owned=owned, **kw)
        if counters:
            s, c = s
            counts.append(c)
    return (s, np.stack(counts)) if counters else s
