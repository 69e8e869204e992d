"""Shared pieces of the CA backends: state packing, step inputs, the protocol (random numbers: ``bonesim.ca.rng``).

The CA state is one 32-bit word per voxel::

    bits  0-7   bone  (uint8 mineral fraction, 255 = full)
    bits  8-15  phase (uint8: bits 0-1 phase, bits 2-7 payload)
    bits 16-31  timer (uint16)

The HDF5 results keep the three fields as separate arrays
(``/state/bone``, ``/state/phase``, ``/state/timer``); :func:`pack` and
:func:`unpack` convert. See ``docs/model.md`` for the meaning of every field.

>>> w = pack(np.array([200], np.uint8), np.array([1], np.uint8), np.array([7], np.uint16))
>>> hex(int(w[0]))
'0x701c8'
>>> [a.tolist() for a in unpack(w)]
[[200], [1], [7]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: The word a neighbour outside the global volume reads as (inert: neither marrow nor bone).
INERT = np.uint32(0x00000400)
#: Phase codes (bits 0-1 of the phase byte).
PH_Q, PH_R, PH_V, PH_F = 0, 1, 2, 3
#: Per-step counters every backend reports, in this order.
#: ``modeled``: marrow voxels that started modeling-based formation (``bonesim.ca.mechano``).
COUNTERS = ("removed", "added", "recruited", "seeds", "surface", "perforated", "modeled")
EV_RECRUIT, EV_SEED, EV_SURFACE, EV_PERF, EV_MODEL = 1, 2, 4, 8, 16

#: Neighbour k in 0..26 sits at (k//9-1, (k//3)%3-1, k%3-1); 13 is the voxel itself.
OFFSETS = np.array([(k // 9 - 1, (k // 3) % 3 - 1, k % 3 - 1) for k in range(27)], dtype=np.int64)
#: Neighbour indices of the 6- and 26-neighbourhoods (in the fixed tie-break order).
NEIGH = {6: (4, 10, 12, 14, 16, 22), 26: tuple(k for k in range(27) if k != 13)}


def pack(bone: np.ndarray, phase: np.ndarray, timer: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Pack the three state arrays into one uint32 word per voxel (into ``out`` if given).

    In place: one uint32 temporary at a time (8 bytes per voxel at the peak, not 16).
    """
    word = np.empty(np.shape(bone), np.uint32) if out is None else out
    word[...] = timer
    word <<= np.uint32(8)
    word |= phase
    word <<= np.uint32(8)
    word |= bone
    return word


def unpack(word: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split packed words into ``bone`` (uint8), ``phase`` (uint8), ``timer`` (uint16)."""
    return (
        (word & np.uint32(0xFF)).astype(np.uint8),
        ((word >> np.uint32(8)) & np.uint32(0xFF)).astype(np.uint8),
        (word >> np.uint32(16)).astype(np.uint16),
    )


#: The host fields of a state (``download``) and their dtypes.
FIELD_DTYPES = {
    "bone": np.uint8,
    "phase": np.uint8,
    "timer": np.uint16,
    "resorbed_day": np.int32,
    "formed_day": np.int32,
}


def field_of(word: Any, name: str) -> Any:
    """``bone``, ``phase`` or ``timer`` of packed words (NumPy or CuPy), a new array.

    >>> field_of(np.array([0x701c8], np.uint32), "timer").tolist()
    [7]
    """
    if name == "bone":
        return (word & np.uint32(0xFF)).astype(np.uint8)
    if name == "phase":
        return ((word >> np.uint32(8)) & np.uint32(0xFF)).astype(np.uint8)
    if name == "timer":
        return (word >> np.uint32(16)).astype(np.uint16)
    raise ValueError(f"not a packed field: {name!r}")


@dataclass(frozen=True)
class StepInputs:
    """Integer inputs of one CA step, computed on the host (see ``bonesim.ca.engine``).

    All fields are unsigned 32-bit integers; the kernels see exactly these.
    """

    act_thr: int
    erode: int
    depth: int
    form: int
    rev_steps: int
    f_q16: int
    lat0: int
    cost1: int
    cost2: int
    cost3: int
    seed_lo: int
    seed_hi: int
    step: int
    mech_on: int = 0
    mod_on: int = 0

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.act_thr,
            self.erode,
            self.depth,
            self.form,
            self.rev_steps,
            self.f_q16,
            self.lat0,
            self.cost1,
            self.cost2,
            self.cost3,
            self.seed_lo,
            self.seed_hi,
            self.step,
            self.mech_on,
            self.mod_on,
        )


class Backend(Protocol):
    """What the engine needs from a backend.

    A backend holds the state of one run on its device between save points:
    ``upload`` it once, ``step`` it many times (the state stays put), read
    counters every few steps and download arrays only at save points.
    """

    name: str
    device: str

    def upload(
        self,
        bone: np.ndarray,
        phase: np.ndarray,
        timer: np.ndarray,
        resorbed_day: np.ndarray,
        formed_day: np.ndarray,
        *,
        neighbourhood: int,
    ) -> Any: ...

    def step(self, state: Any, inputs: StepInputs, *, step: int, map_day: int) -> None: ...

    def read_counters(self, state: Any) -> np.ndarray:
        """Counters of the steps since the last read: uint64 [n_steps, len(COUNTERS)]."""
        ...

    def download(self, state: Any) -> dict[str, np.ndarray]:
        """``bone, phase, timer, resorbed_day, formed_day`` as NumPy arrays."""
        ...

    def download_bone(self, state: Any) -> np.ndarray: ...

    # Optional (the engine falls back to ``download`` without them):
    #
    # def download_slab(self, state, name: str, z0: int, z1: int) -> np.ndarray:
    #     """Planes ``z0:z1`` of field ``name`` (of FIELD_DTYPES, or the packed ``word``): an owned host copy."""
    #
    # def release(self, state) -> dict[str, np.ndarray]:
    #     """``download`` at the end of a run; the state is not used afterwards (its memory may be reused)."""

    def set_mechanics(self, state: Any, mech: np.ndarray | None, lut: np.ndarray | None) -> None:
        """Mechanoregulation of the following steps: uint8 signal class per voxel, uint32[256] class weights."""
        ...


def take_maps(resorbed_day: Any, formed_day: Any, own_maps: bool) -> tuple[np.ndarray, np.ndarray]:
    """The two int32 map arrays a backend state keeps and updates in place.

    With ``own_maps`` an array given as C-contiguous, writeable, int32 and owning its data is kept
    as it is (the engine hands over arrays it no longer uses); anything else is copied. The two
    maps never alias.

    >>> a = np.zeros(4, np.int32)
    >>> r, f = take_maps(a, a, True)
    >>> r is a, f is a
    (True, False)
    """

    def take(m: Any) -> np.ndarray:
        if own_maps and isinstance(m, np.ndarray) and m.dtype == np.int32 and m.flags.c_contiguous:
            if m.flags.writeable and m.base is None:
                return m
        return np.array(m, np.int32, order="C", copy=True)

    rmap = take(resorbed_day)
    fmap = take(formed_day)
    if fmap is rmap:  # the same array given twice: the maps must not alias
        fmap = fmap.copy()
    return rmap, fmap


def released_fields(
    b4: np.ndarray, h16: np.ndarray, rmap: np.ndarray, fmap: np.ndarray
) -> dict[str, np.ndarray]:
    """The fields of a released state from views of its packed words (little-endian hosts).

    ``b4`` views the words as bytes (shape + (4,)) and ``h16`` as 16-bit halves (shape + (2,)):
    ``phase`` and ``timer`` are read-only views of them, ``bone`` a new array copied in 16-plane
    slabs (no whole-volume temporary); the maps are handed over as they are.

    >>> w = np.array([[[0x00050103]]], np.uint32)
    >>> f = released_fields(w.view(np.uint8).reshape(1, 1, 1, 4), w.view(np.uint16).reshape(1, 1, 1, 2),
    ...                     np.zeros((1, 1, 1), np.int32), np.zeros((1, 1, 1), np.int32))
    >>> int(f["bone"][0, 0, 0]), int(f["phase"][0, 0, 0]), int(f["timer"][0, 0, 0])
    (3, 1, 5)
    """
    phase, timer = b4[..., 1], h16[..., 1]
    phase.flags.writeable = timer.flags.writeable = False
    bone = np.empty(phase.shape, np.uint8)
    for z0 in range(0, bone.shape[0], 16):
        bone[z0 : z0 + 16] = b4[z0 : z0 + 16, ..., 0]
    return {"bone": bone, "phase": phase, "timer": timer, "resorbed_day": rmap, "formed_day": fmap}
