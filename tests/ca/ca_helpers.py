"""Helpers shared by the CA tests: running steps directly on packed words."""

from __future__ import annotations

import h5py
import numpy as np

from bonesim.ca.backends.base import StepInputs, pack
from bonesim.ca.backends.numpy_backend import step_block
from bonesim.ca.params import RemodelingParams
from bonesim.ca.schedule import Schedule


def words_of(bone: np.ndarray) -> np.ndarray:
    z = np.zeros(bone.shape, np.uint8)
    return pack(bone, z, z.astype(np.uint16))


def run_words(
    words,
    params: RemodelingParams,
    voxel_size_um: float,
    steps: int,
    *,
    seed: int = 0,
    step_fn=None,
    start: int = 0,
    record=None,
    mech=None,
    lut=None,
):
    """Run ``steps`` steps of the NumPy rule (or ``step_fn``) on packed words with a calibrated schedule.

    ``mech``/``lut`` switch mechanoregulation on (``step_fn`` must then have been built with them);
    a ``lut`` of 512 entries (with modeling thresholds) also modeling-based formation.
    """
    sched = Schedule([params], voxel_size_um)
    sched.mech_on = int(mech is not None)
    sched.mod_on = int(mech is not None and lut is not None and len(lut) > 256)
    shape = words.shape
    rmap = np.full(shape, -1, np.int32)
    fmap = np.full(shape, -1, np.int32)
    rows = []
    for n in range(start, start + steps):
        inp = sched.inputs_for_step(n, seed=seed)
        if step_fn is None:
            words, c = step_block(
                words,
                inp,
                neighbourhood=params.neighbourhood,
                resorbed_day=rmap,
                formed_day=fmap,
                map_day=n,
                mech=mech,
                lut=lut,
            )
        else:
            words, c = step_fn(words, inp, rmap, fmap, n)
        sched.add_counters(c[None, :])
        rows.append(c)
        if record is not None:
            record(n, words, c)
    return words, np.array(rows, np.uint64), rmap, fmap


def inputs(**kw) -> StepInputs:
    base = dict(
        act_thr=0,
        erode=64,
        depth=255 * 2,
        form=32,
        rev_steps=5,
        f_q16=65536,
        lat0=0,
        cost1=16,
        cost2=23,
        cost3=28,
        seed_lo=0,
        seed_hi=0,
        step=0,
    )
    base.update(kw)
    return StepInputs(**base)


def result_arrays(path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 result by name, provenance left out (to compare two runs bit for bit)."""
    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("provenance"):
                out[name] = obj[...]

        f.visititems(visit)
    return out
