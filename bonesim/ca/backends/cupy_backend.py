"""The CuPy backend: the CA step as one fused CUDA kernel (``kernels/remodel.cu``).

The state of a run lives on the device as packed 32-bit words in two
buffers that are swapped after every step (never copied), plus the two
int32 remodeling maps; per-step counters go to a small device ring that is
read every few steps. Host copies happen only at save points. CuPy is
imported inside functions only, so ``import bonesim`` works without it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from typing import Any

import numpy as np

from bonesim._resources import kernel_dir
from bonesim.ca.backends.base import COUNTERS, StepInputs, field_of, pack
from bonesim.ca.kernel_abi import (
    BLOCK,
    N_MECH_CLASSES,
    NCOUNT,
    NSLOT,
    ZBLOCK,
    ZCHUNK,
    check_launch,
    check_mechanics,
    geom_struct,
    grid_for,
    kernel_args,
    step_struct,
    tile_units,
)
from bonesim.errors import BonesimError, InputError

log = logging.getLogger(__name__)

__all__ = ["BLOCK", "NCOUNT", "NSLOT", "ZBLOCK", "ZCHUNK", "CupyBackend", "check_fits", "launch_step"]
#: Kernel variants: "tile" (3-D shared tile per block, the default) and "zm" (z-marching
#: three-plane ring); both give the same bits (tests/test_ca_parity.py), bench times both.
VARIANTS = ("tile", "zm")
DEFAULT_VARIANT = "tile"
#: Blocks per SM the kernel's register budget must allow (__launch_bounds__); 2 compiles
#: without spills on sm_90 (50 registers), 3-4 trade spills for occupancy (see bench --min-blocks).
MIN_BLOCKS = 2
#: Test hook: ``BONESIM_KERNEL_MUTATION=no_barriers`` builds the kernels without their barriers
#: (``-DBONESIM_NO_BARRIERS``), the mutation the GPU parity check must catch (scripts/gpu-check.sh).
MUTATIONS = {"no_barriers": "#define BONESIM_NO_BARRIERS 1\n"}


def _mutation() -> str:
    m = os.environ.get("BONESIM_KERNEL_MUTATION", "")
    if m and m not in MUTATIONS:
        raise InputError(f"BONESIM_KERNEL_MUTATION must be one of {sorted(MUTATIONS)}, got {m!r}")
    if m:
        log.warning("building the CA kernels with the mutation %r (tests only: results are wrong)", m)
    return m


#: Steps of counters kept on the device between reads.
RING = 64
#: Device bytes per voxel: two state buffers (4 + 4) and two int32 maps (4 + 4).
BYTES_PER_VOXEL = 16


def check_fits(shape: tuple[int, ...], free_bytes: int, total_bytes: int | None = None) -> None:
    """Raise a :class:`BonesimError` naming the sizes when a volume cannot fit the device.

    >>> check_fits((64, 64, 64), 10**9)
    >>> check_fits((2048, 2048, 2048), 8 * 2**30)
    Traceback (most recent call last):
    ...
    bonesim.errors.BonesimError: a volume of 2048x2048x2048 voxels needs 128.0 GiB on the GPU (16 bytes per voxel), but only 8.0 GiB are free; crop or downsample it, or run it in chunks with halos
    """
    need = math.prod(shape) * BYTES_PER_VOXEL + RING * NSLOT * NCOUNT * 8
    if need > 0.95 * free_bytes:
        dims = "x".join(str(n) for n in shape)
        raise BonesimError(
            f"a volume of {dims} voxels needs {need / 2**30:.1f} GiB on the GPU ({BYTES_PER_VOXEL} bytes per voxel), "
            f"but only {free_bytes / 2**30:.1f} GiB are free; crop or downsample it, or run it in chunks with halos"
        )


@functools.cache
def _module(
    neighbourhood: int,
    block: tuple[int, int, int],
    device_id: int,
    min_blocks: int = MIN_BLOCKS,
    mutation: str = "",
    skip_uniform: bool = True,
) -> Any:
    """The compiled RawModule for one neighbourhood and block shape (one per device, cached).

    ``skip_uniform=False`` builds the kernels without the uniform-tile skip (the bench's comparison).
    """
    import cupy

    kdir = kernel_dir()
    defines = (
        MUTATIONS.get(mutation, "")
        + f"#define BONESIM_SKIP_UNIFORM {int(skip_uniform)}\n"
        + (
            f"#define BONESIM_NEIGH {neighbourhood}\n#define BONESIM_BX {block[0]}\n"
            f"#define BONESIM_BY {block[1]}\n#define BONESIM_BZ {block[2]}\n#define BONESIM_NSLOT {NSLOT}\n"
            f"#define BONESIM_MIN_BLOCKS {min_blocks}\n#define BONESIM_ZBX {ZBLOCK[0]}\n"
            f"#define BONESIM_ZBY {ZBLOCK[1]}\n#define BONESIM_ZCHUNK {ZCHUNK}\n"
        )
    )
    code = defines + (kdir / "remodel.cu").read_text()
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=code, options=("-std=c++17", f"-I{kdir}"))


def kernel_name(neighbourhood: int, variant: str = DEFAULT_VARIANT) -> str:
    if variant == "tile":
        return f"bonesim_remodel_step_n{neighbourhood}"
    if variant == "zm":
        return f"bonesim_remodel_step_zm_n{neighbourhood}"
    raise InputError(f"`variant` must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}")


def launch_step(
    src: Any,
    dst: Any,
    resorbed_day: Any,
    formed_day: Any,
    counters: Any,
    inputs: StepInputs,
    *,
    neighbourhood: int = 26,
    halo: int = 0,
    origin: tuple[int, int, int] = (0, 0, 0),
    global_shape: tuple[int, int, int] | None = None,
    map_day: int = -1,
    min_blocks: int = MIN_BLOCKS,
    variant: str = DEFAULT_VARIANT,
    mech: Any = None,
    lut: Any = None,
    skip_uniform: bool = True,
    tile_flags: Any = None,
    tile_mode: int = -1,
) -> None:
    """Launch one step on device arrays (asynchronously).

    Active tiles (tile kernel only): ``tile_flags`` a uint8 array of ``2 * tile_units`` flags kept
    between the steps of one state, all 0 before its first step, and ``tile_mode`` 0 and 1 in turn
    (see ``remodel_block.cuh``, bs_tile_block); ``tile_mode=-1`` (the default) steps every tile.

    ``src`` is a C-contiguous uint32 block including ``halo`` voxels on every
    side; ``dst``, the int32 maps and the result are its interior; ``counters`` is a
    uint64 [NSLOT, NCOUNT] array that the step adds to. The same call on chunks
    with a one-voxel halo gives the bits of the whole volume. Buffers of the
    wrong shape, dtype or layout raise :class:`InputError` (checked like the
    NumPy backend, before anything is launched).
    """
    import cupy

    if neighbourhood not in (6, 26):
        raise InputError(f"`neighbourhood` must be 6 or 26, got {neighbourhood}")
    kernel_name(neighbourhood, variant)  # validates the variant
    inner = check_launch(
        src, dst, resorbed_day, formed_day, counters, halo=halo, origin=origin, global_shape=global_shape
    )
    check_mechanics(mech, lut, inner, bool(inputs.mech_on), bool(inputs.mod_on))
    if mech is None or lut is None:
        mech, lut = unused_mechanics()
    mod = _module(neighbourhood, BLOCK, cupy.cuda.Device().id, min_blocks, _mutation(), skip_uniform)
    fn = mod.get_function(kernel_name(neighbourhood, variant))
    grid, block = grid_for(variant, inner)
    if tile_mode >= 0:
        n = 2 * tile_units(variant, inner)
        if variant != "tile" or halo != 0:
            raise InputError("active tiles (tile_mode >= 0) need the tile kernel and halo 0")
        if tile_mode not in (0, 1) or getattr(tile_flags, "dtype", None) != np.uint8 or tile_flags.size != n:
            raise InputError(f"active tiles need `tile_mode` 0 or 1 and `tile_flags` of {n} uint8 flags")
    else:
        tile_flags = cupy.zeros(1, cupy.uint8)
    args = kernel_args(
        src=src,
        dst=dst,
        resorbed_day=resorbed_day,
        formed_day=formed_day,
        counters=counters,
        mech=mech,
        lut=lut,
        geom=geom_struct(tuple(src.shape), halo, tuple(origin), global_shape),
        step=step_struct(inputs),
        map_day=map_day,
        tile_flags=tile_flags,
        tile_mode=tile_mode,
    )
    fn(grid, block, args)


def unused_mechanics() -> tuple[Any, Any]:
    """Valid pointers for steps without mechanoregulation (the kernel never reads them then)."""
    import cupy

    return cupy.zeros(1, cupy.uint8), cupy.zeros(N_MECH_CLASSES, cupy.uint32)


class _CupyState:
    def __init__(self, cur: Any, nxt: Any, rmap: Any, fmap: Any, ring: Any, neighbourhood: int) -> None:
        self.cur, self.nxt = cur, nxt
        self.resorbed_day, self.formed_day = rmap, fmap
        self.ring = ring
        self.rows = 0
        self.host_rows: list[np.ndarray] = []
        self.tiles = [0, 0]  # tiles that applied the rule, tiles launched (drained steps)
        self.tile_flags: Any = None  # active tiles (tile kernel): two planes of flags, 0 = not quiet
        self.tile_mode = 0
        self.neighbourhood = neighbourhood
        self.mech, self.lut = unused_mechanics()

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.cur.shape)  # type: ignore[return-value]


class CupyBackend:
    """CUDA backend: fused RawKernel step, state resident on the device."""

    name = "cupy"

    def __init__(
        self, device_id: int | None = None, variant: str = DEFAULT_VARIANT, active_tiles: bool = True
    ) -> None:
        import cupy

        kernel_name(26, variant)  # validates the variant
        self.variant = variant
        #: skip tiles that were quiet with all their neighbours in the previous step (tile kernel)
        self.active_tiles = bool(active_tiles) and variant == "tile"
        self.device_id = cupy.cuda.Device().id if device_id is None else int(device_id)
        props = cupy.cuda.runtime.getDeviceProperties(self.device_id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        self.device = f"cuda:{self.device_id} {name} ({props['totalGlobalMem'] / 2**30:.0f} GiB)"

    def upload(self, bone, phase, timer, resorbed_day, formed_day, *, neighbourhood: int) -> _CupyState:
        import cupy

        with cupy.cuda.Device(self.device_id):
            free, total = cupy.cuda.runtime.memGetInfo()
            check_fits(bone.shape, free, total)
            cur = cupy.empty(np.shape(bone), cupy.uint32)
            for z0 in range(0, cur.shape[0], 16):  # packed on the host a slab at a time
                z1 = min(z0 + 16, cur.shape[0])
                cur[z0:z1] = cupy.asarray(
                    pack(np.asarray(bone[z0:z1]), np.asarray(phase[z0:z1]), np.asarray(timer[z0:z1]))
                )
            nxt = cupy.empty_like(cur)
            rmap = cupy.asarray(np.ascontiguousarray(resorbed_day, np.int32))
            fmap = cupy.asarray(np.ascontiguousarray(formed_day, np.int32))
            ring = cupy.zeros((RING, NSLOT, NCOUNT), cupy.uint64)
            _module(
                neighbourhood, BLOCK, self.device_id, MIN_BLOCKS, _mutation()
            )  # compile now, not inside the timed loop
            state = _CupyState(cur, nxt, rmap, fmap, ring, neighbourhood)
            if self.active_tiles:  # all "not quiet": the first steps step every tile
                state.tile_flags = cupy.zeros(2 * tile_units(self.variant, state.shape), cupy.uint8)
            return state

    def step(self, state: _CupyState, inputs: StepInputs, *, step: int, map_day: int) -> None:
        import cupy

        if state.rows == RING:
            self._drain(state)
        with cupy.cuda.Device(self.device_id):
            launch_step(
                state.cur,
                state.nxt,
                state.resorbed_day,
                state.formed_day,
                state.ring[state.rows],
                inputs,
                neighbourhood=state.neighbourhood,
                map_day=map_day,
                variant=self.variant,
                mech=state.mech,
                lut=state.lut,
                tile_flags=state.tile_flags,
                tile_mode=-1 if state.tile_flags is None else state.tile_mode,
            )
        state.cur, state.nxt = state.nxt, state.cur  # ping-pong: swap, never copy
        state.tile_mode ^= 1
        state.rows += 1

    def set_mechanics(self, state: _CupyState, mech: np.ndarray | None, lut: np.ndarray | None) -> None:
        """The mechanical-signal classes (uint8, the volume's shape) and class weights of the next steps."""
        import cupy

        with cupy.cuda.Device(self.device_id):
            if mech is None or lut is None:
                state.mech, state.lut = unused_mechanics()
            else:
                state.mech = cupy.asarray(np.ascontiguousarray(mech, np.uint8))
                state.lut = cupy.asarray(np.ascontiguousarray(lut, np.uint32))

    def _drain(self, state: _CupyState) -> None:
        if state.rows:
            sums = state.ring[: state.rows].sum(axis=1)[:, : len(COUNTERS) + 1].get()
            state.ring[: state.rows] = 0
            state.host_rows.extend(sums[:, : len(COUNTERS)])
            state.tiles[0] += int(sums[:, len(COUNTERS)].sum())
            state.tiles[1] += state.rows * tile_units(self.variant, state.shape)
            state.rows = 0

    def tiles_stepped(self, state: _CupyState) -> float:
        """Fraction of the tiles launched so far that applied the rule (the rest were uniform marrow or
        full quiescent bone and kept their words, or quiet with their neighbours: active tiles; see
        kernels/remodel_block.cuh)."""
        self._drain(state)
        return state.tiles[0] / state.tiles[1] if state.tiles[1] else 1.0

    def read_counters(self, state: _CupyState) -> np.ndarray:
        self._drain(state)
        out = np.array(state.host_rows, np.uint64).reshape(-1, len(COUNTERS))
        state.host_rows = []
        return out

    def download(self, state: _CupyState) -> dict[str, np.ndarray]:
        import cupy

        w = state.cur
        return {
            "bone": (w & cupy.uint32(0xFF)).astype(cupy.uint8).get(),
            "phase": ((w >> cupy.uint32(8)) & cupy.uint32(0xFF)).astype(cupy.uint8).get(),
            "timer": (w >> cupy.uint32(16)).astype(cupy.uint16).get(),
            "resorbed_day": state.resorbed_day.get(),
            "formed_day": state.formed_day.get(),
        }

    def download_bone(self, state: _CupyState) -> np.ndarray:
        import cupy

        return (state.cur & cupy.uint32(0xFF)).astype(cupy.uint8).get()

    def download_slab(self, state: _CupyState, name: str, z0: int, z1: int) -> np.ndarray:
        """Planes ``z0:z1`` of ``name`` (a field of ``download``, or the packed ``word``) on the host.

        Only the slab crosses to the host: a save point never holds the whole state there.
        """
        import cupy

        with cupy.cuda.Device(self.device_id):
            if name in ("resorbed_day", "formed_day"):
                return getattr(state, name)[z0:z1].get()
            w = state.cur[z0:z1]
            return w.get() if name == "word" else field_of(w, name).get()
