"""The argument layout of the CA step kernels, in one place.

``kernels/remodel.cu`` takes ``(src, dst, resorbed_day, formed_day, counters,
mech, lut, BsGeom geom, BsStep step, int map_day, tile_flags, int tile_mode)``; the structs go by
value. This module
is the one Python description of that list: the CuPy launcher
(``backends/cupy_backend.launch_step``), the host harness wrapper and the CuPy
stand-in of the tests (``tests/ca``) all build and read arguments through
:data:`KERNEL_ARGS`, :data:`GEOM_DTYPE` and :data:`STEP_DTYPE`, and a test
checks them against the C++ structs (``sizeof``/``offsetof`` from the harness)
and the kernel signature. CuPy passes a NumPy array of size one by value, so a
struct argument is a one-element structured array.

Importing it needs NumPy only (no CuPy).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from bonesim.ca.backends.base import StepInputs
from bonesim.errors import InputError

#: Thread-block shape (x, y, z) of the 3-D tile step kernel.
BLOCK = (32, 4, 4)
#: Thread-block shape (x, y) and planes per block of the z-marching step kernel.
ZBLOCK, ZCHUNK = (32, 8), 16
#: Counter slots per step (spread the block atomics) and counters per slot (kernels/remodel_block.cuh).
NSLOT, NCOUNT = 256, 8

#: ``struct BsGeom`` (kernels/remodel_block.cuh): local shape and halo, global origin and shape.
GEOM_DTYPE = np.dtype(
    [(n, np.int32) for n in ("nz", "ny", "nx", "halo")]
    + [(n, np.int64) for n in ("oz", "oy", "ox", "gz", "gy", "gx")],
    align=True,
)
#: ``struct BsStep`` (kernels/remodel_rules.cuh): the integer inputs of one step, in StepInputs order.
STEP_DTYPE = np.dtype([(f.name, np.uint32) for f in dataclasses.fields(StepInputs)], align=True)


@dataclasses.dataclass(frozen=True)
class KernelArg:
    """One kernel parameter: ``kind`` is "array" (device pointer), "struct" (by value) or "scalar"."""

    name: str
    kind: str
    dtype: np.dtype
    ctype: str


_U8, _U32, _I32, _U64 = np.dtype(np.uint8), np.dtype(np.uint32), np.dtype(np.int32), np.dtype(np.uint64)

#: The kernel's parameters, in order (the signature of both step kernels in remodel.cu).
KERNEL_ARGS: tuple[KernelArg, ...] = (
    KernelArg("src", "array", _U32, "const bs_u32* __restrict__"),
    KernelArg("dst", "array", _U32, "bs_u32* __restrict__"),
    KernelArg("resorbed_day", "array", _I32, "bs_i32* __restrict__"),
    KernelArg("formed_day", "array", _I32, "bs_i32* __restrict__"),
    KernelArg("counters", "array", _U64, "bs_u64* __restrict__"),
    KernelArg("mech", "array", _U8, "const bs_u8* __restrict__"),
    KernelArg("lut", "array", _U32, "const bs_u32* __restrict__"),
    KernelArg("geom", "struct", GEOM_DTYPE, "const BsGeom"),
    KernelArg("step", "struct", STEP_DTYPE, "const BsStep"),
    KernelArg("map_day", "scalar", _I32, "int"),
    KernelArg("tile_flags", "array", _U8, "bs_u8* __restrict__"),
    KernelArg("tile_mode", "scalar", _I32, "int"),
)


def geom_struct(
    shape: tuple[int, int, int],
    halo: int = 0,
    origin: tuple[int, int, int] = (0, 0, 0),
    global_shape: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """The ``BsGeom`` argument (a one-element structured array) of a block of local ``shape``."""
    inner = tuple(n - 2 * halo for n in shape)
    g = tuple(global_shape) if global_shape is not None else inner
    out = np.zeros(1, GEOM_DTYPE)
    out[0] = (*shape, halo, *origin, *g)
    return out


def step_struct(inputs: StepInputs) -> np.ndarray:
    """The ``BsStep`` argument (a one-element structured array) of one step's inputs."""
    vals = inputs.as_tuple()
    if any(not 0 <= int(v) < 2**32 for v in vals):
        raise InputError(f"step inputs must be unsigned 32-bit integers, got {vals}")
    out = np.zeros(1, STEP_DTYPE)
    out[0] = tuple(int(v) for v in vals)
    return out


#: Classes of the mechanical signal (uint8) and the weight of class 0..255 in the lookup table.
N_MECH_CLASSES = 256
#: A lookup-table weight of 1.0 (8.8 fixed point).
MECH_WEIGHT_ONE = 256
#: Entries of a lookup table with modeling: 256 activation weights, then 256 modeling thresholds.
N_MECH_TABLE = 2 * N_MECH_CLASSES


def check_mechanics(mech: Any, lut: Any, inner: tuple[int, ...], on: bool, modeling: bool = False) -> None:
    """Refuse a mechanical-signal field or lookup table the rule would misread (``on``: the step uses them).

    ``modeling`` (the step's ``mod_on``) needs ``on`` and a table of :data:`N_MECH_TABLE` entries
    (the modeling thresholds of the 256 classes after their activation weights).
    """
    if modeling and not on:
        raise InputError("modeling-based formation (mod_on = 1) needs mechanoregulation (mech_on = 1)")
    if not on:
        return
    if mech is None or lut is None:
        raise InputError("a step with mechanoregulation (mech_on = 1) needs the `mech` field and its `lut`")
    flags = getattr(mech, "flags", None)
    if (
        getattr(mech, "dtype", None) != _U8
        or tuple(getattr(mech, "shape", ())) != tuple(inner)
        or not (flags is not None and flags.c_contiguous)
    ):
        raise InputError(
            f"`mech` must be a C-contiguous uint8 array of shape {tuple(inner)}, got {_desc(mech)}"
        )
    sizes = (N_MECH_TABLE,) if modeling else (N_MECH_CLASSES, N_MECH_TABLE)
    if getattr(lut, "dtype", None) != _U32 or tuple(getattr(lut, "shape", ())) not in [(n,) for n in sizes]:
        shapes = " or ".join(f"({n},)" for n in sizes)
        raise InputError(f"`lut` must be a uint32 array of shape {shapes}, got {_desc(lut)}")


def kernel_args(**values: Any) -> tuple[Any, ...]:
    """The argument tuple in :data:`KERNEL_ARGS` order, from keyword arguments named like it."""
    missing = [a.name for a in KERNEL_ARGS if a.name not in values]
    extra = sorted(set(values) - {a.name for a in KERNEL_ARGS})
    if missing or extra:
        raise TypeError(f"kernel arguments: missing {missing}, unexpected {extra}")
    out = []
    for a in KERNEL_ARGS:
        v = values[a.name]
        if a.kind == "scalar":
            v = a.dtype.type(v)
        elif a.kind == "struct" and (not isinstance(v, np.ndarray) or v.dtype != a.dtype or v.size != 1):
            raise TypeError(f"kernel argument `{a.name}` must be a one-element array of dtype {a.dtype}")
        out.append(v)
    return tuple(out)


def grid_for(variant: str, inner: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) of a launch over an interior of shape ``inner`` (z, y, x), in CUDA's (x, y, z) order."""
    if variant == "zm":
        bx, by = ZBLOCK
        return (-(-inner[2] // bx), -(-inner[1] // by), -(-inner[0] // ZCHUNK)), (bx, by, 1)
    if variant == "tile":
        bx, by, bz = BLOCK
        return (-(-inner[2] // bx), -(-inner[1] // by), -(-inner[0] // bz)), BLOCK
    raise InputError(f"`variant` must be 'tile' or 'zm', got {variant!r}")


def tile_units(variant: str, inner: tuple[int, int, int]) -> int:
    """Tiles of one launch, the unit of the kernels' tiles-stepped counter (the eighth counter of a slot):
    a thread block of the tile kernel, one plane of a column of the z-marching kernel."""
    grid, _ = grid_for(variant, inner)
    return grid[0] * grid[1] * (inner[0] if variant == "zm" else grid[2])


def _desc(a: Any) -> str:
    flags = getattr(a, "flags", None)
    contig = bool(getattr(flags, "c_contiguous", False)) if flags is not None else False
    shape = getattr(a, "shape", None)
    return f"{type(a).__name__} of shape {shape}, dtype {getattr(a, 'dtype', None)}, C-contiguous={contig}"


def check_launch(
    src: Any,
    dst: Any,
    resorbed_day: Any,
    formed_day: Any,
    counters: Any,
    *,
    halo: int,
    origin: tuple[int, int, int],
    global_shape: tuple[int, int, int] | None,
) -> tuple[int, int, int]:
    """Refuse buffers the kernel would misread (like the NumPy backend); return the interior shape.

    ``src`` a C-contiguous uint32 (nz, ny, nx) block with ``halo`` voxels on every side,
    ``dst`` and the int32 maps its interior, ``counters`` uint64 (NSLOT, NCOUNT), all distinct.
    """
    if int(halo) < 0:
        raise InputError(f"`halo` must be >= 0, got {halo}")
    shape = tuple(getattr(src, "shape", ()))
    if len(shape) != 3:
        raise InputError(f"`src` must be a 3-D array of packed state words, got {_desc(src)}")
    inner = tuple(n - 2 * halo for n in shape)
    if min(inner) <= 0:
        raise InputError(f"block {shape} with halo {halo} has no interior")
    if math.prod(shape) >= 2**62:
        raise InputError(f"block {shape} is too large")
    want = (
        ("src", src, _U32, shape, "packed state words"),
        ("dst", dst, _U32, inner, "the new state words (the interior of src)"),
        ("resorbed_day", resorbed_day, _I32, inner, "a remodeling map (the interior of src)"),
        ("formed_day", formed_day, _I32, inner, "a remodeling map (the interior of src)"),
        ("counters", counters, _U64, (NSLOT, NCOUNT), "the step's counter slots"),
    )
    for name, a, dt, shp, what in want:
        flags = getattr(a, "flags", None)
        ok = (
            getattr(a, "dtype", None) == dt
            and tuple(getattr(a, "shape", ())) == shp
            and flags is not None
            and bool(flags.c_contiguous)
        )
        if not ok:
            raise InputError(
                f"`{name}` ({what}) must be a C-contiguous {dt} array of shape {shp}, got {_desc(a)}"
            )
    ptrs = {}
    for name, a, *_ in want:
        p = getattr(getattr(a, "data", None), "ptr", None)
        if p is None:
            continue
        if p in ptrs:
            raise InputError(f"`{name}` and `{ptrs[p]}` are the same buffer (the kernel needs distinct ones)")
        ptrs[p] = name
    g = tuple(global_shape) if global_shape is not None else inner
    if len(g) != 3 or len(tuple(origin)) != 3:
        raise InputError(f"`origin` and `global_shape` must have 3 entries, got {origin} and {g}")
    for ax in range(3):
        lo = origin[ax] + halo
        if lo < 0 or lo + inner[ax] > g[ax]:
            raise InputError(
                f"block interior {inner} at global {tuple(o + halo for o in origin)} lies outside the "
                f"global volume {g}"
            )
    return inner  # type: ignore[return-value]
