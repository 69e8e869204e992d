"""Bit-exact parity of the NumPy backend with the C++/CUDA rule code, on the CPU.

The per-voxel rule lives in ``kernels/remodel_rules.cuh`` as ``__host__
__device__`` code; here it is compiled for the host with g++ (the same
header the CUDA kernel includes) and applied to every voxel, and the result
is compared with the NumPy backend bit for bit, step after step.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bonesim import phantom
from bonesim._resources import kernel_dir
from bonesim.ca.backends.base import COUNTERS
from bonesim.ca.backends.numpy_backend import step_block
from bonesim.ca.kernel_abi import KERNEL_ARGS, NCOUNT, NSLOT, geom_struct, kernel_args, step_struct
from bonesim.errors import InputError
from tests.ca.ca_helpers import inputs, run_words, words_of
from tests.fast_params import fast

HARNESS = Path(__file__).parent / "harness" / "remodel_host.cpp"


@functools.cache
def _harness_lib(neighbourhood: int, tmpdir: str, blocks: str = "", defines: tuple[str, ...] = ()):
    """The host-compiled harness (kernels/remodel_block.cuh + tests/ca/harness/remodel_host.cpp).

    ``blocks='BX,BY,BZ'`` compiles the 3-D tile kernel's block body for that block shape,
    ``blocks='zm:ZBX,ZBY,ZCHUNK'`` the z-marching kernel's; ``defines`` are extra ``NAME=VALUE``
    macros (``BONESIM_NO_BARRIERS=1``: the kernels without their barriers).
    """
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    zm = blocks.startswith("zm:")
    names = ("ZBX", "ZBY", "ZCHUNK") if zm else ("BX", "BY", "BZ")
    vals = (blocks[3:] if zm else blocks).split(",") if blocks else []
    dims = [f"-DBONESIM_{a}={v}" for a, v in zip(names, vals, strict=False)]
    dims += [f"-D{d}" for d in defines]
    tag = (blocks + "_".join(defines)).replace(",", "x").replace(":", "_").replace("=", "")
    so = Path(tmpdir) / f"remodel_host_n{neighbourhood}{tag}.so"
    cmd = [
        cxx,
        "-std=c++17",
        "-O2",
        "-shared",
        "-fPIC",
        f"-I{kernel_dir('ca')}",
        f"-DBONESIM_NEIGH={neighbourhood}",
    ]
    r = subprocess.run([*cmd, *dims, str(HARNESS), "-o", str(so)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(str(so))
    P, i = ctypes.c_void_p, ctypes.c_int
    lib.bonesim_host_launch.restype = ctypes.c_int
    lib.bonesim_host_launch.argtypes = [i] * 8 + [_CTYPES[a.kind] for a in KERNEL_ARGS]
    lib.bonesim_host_step.restype = None
    lib.bonesim_host_step.argtypes = [P, P, *(_CTYPES[a.kind] for a in KERNEL_ARGS[1:])]
    lib.bonesim_host_abi.restype = None
    return lib


#: How each kind of KERNEL_ARGS entry crosses into the harness (structs by pointer).
_CTYPES = {"array": ctypes.c_void_p, "struct": ctypes.c_void_p, "scalar": ctypes.c_int}


def _c_args(args) -> list:
    """The KERNEL_ARGS tuple of a launch as ctypes values for the harness."""
    out = []
    for a, v in zip(KERNEL_ARGS, args, strict=True):
        out.append(ctypes.c_void_p(v.ctypes.data) if a.kind != "scalar" else ctypes.c_int(int(v)))
    return out


def host_launch(lib, variant: str, grid, block, args, order: int = 0) -> None:
    """Run one kernel launch (grid, block, KERNEL_ARGS tuple) on the host emulation."""
    rc = lib.bonesim_host_launch(0 if variant == "tile" else 1, *grid, *block, order, *_c_args(args))
    assert rc == 0, f"block {block} is not the shape the {variant} kernel was compiled for"


def host_step_fn(
    neighbourhood: int,
    tmpdir: str,
    halo: int = 0,
    origin=(0, 0, 0),
    global_shape=None,
    blocks="",
    order: int = 0,
    defines: tuple[str, ...] = (),
    mech=None,
    lut=None,
    tiles: list | None = None,
):
    """A ``step_fn`` for :func:`run_words`: the plain host loop, or a kernel's block emulation.

    ``tiles``: a list that receives, per step of a block emulation, (tiles that applied the rule,
    tiles in all) from the counters' eighth entry (remodel_block.cuh, BS_TILES_COUNTER); a tile is
    a block of the tile kernel, or one plane of a z-march column.
    """
    if mech is None:
        mech, lut = np.zeros(1, np.uint8), np.zeros(512, np.uint32)  # valid pointers the rule does not read
    lib = _harness_lib(neighbourhood, tmpdir, blocks, tuple(defines))
    zm = blocks.startswith("zm:")
    dims = [int(v) for v in (blocks[3:] if zm else blocks).split(",")] if blocks else []

    def step(words, inp, rmap, fmap, n):
        src = np.ascontiguousarray(words, np.uint32)
        inner = tuple(s - 2 * halo for s in src.shape)
        dst = np.empty(inner, np.uint32)
        cnt = np.zeros((NSLOT, NCOUNT), np.uint64)
        args = kernel_args(
            src=src,
            dst=dst,
            resorbed_day=rmap,
            formed_day=fmap,
            counters=cnt,
            mech=mech,
            lut=lut,
            geom=geom_struct(src.shape, halo, origin, global_shape),
            step=step_struct(inp),
            map_day=n,
            tile_flags=np.zeros(1, np.uint8),
            tile_mode=-1,
        )
        if not blocks:
            pad = np.empty(tuple(s + 2 for s in inner), np.uint32)
            lib.bonesim_host_step(
                ctypes.c_void_p(src.ctypes.data), ctypes.c_void_p(pad.ctypes.data), *_c_args(args)[1:]
            )
            return dst, cnt[0, : len(COUNTERS)].copy()
        if zm:
            grid, block = (
                (-(-inner[2] // dims[0]), -(-inner[1] // dims[1]), -(-inner[0] // dims[2])),
                (*dims[:2], 1),
            )
        else:
            grid, block = tuple(-(-n_ // b) for n_, b in zip(inner[::-1], dims, strict=True)), tuple(dims)
        host_launch(lib, "zm" if zm else "tile", grid, block, args, order)
        if tiles is not None:
            total = grid[0] * grid[1] * (inner[0] if zm else grid[2])
            tiles.append((int(cnt[:, len(COUNTERS)].sum()), total))
        return dst, cnt.sum(axis=0)[: len(COUNTERS)]

    return step


def _phantom(shape, kind):
    if kind == "gyroid":
        return phantom.gyroid(shape, 24, phantom.gyroid_sheet_level_for(0.35), sheet=True)
    bone = phantom.plate(shape, 5, axis=1)
    bone[:, :, 3] = 255  # a wall one voxel thin (marrow on both sides: no direction), which BMUs cut
    bone[:, :, 12:14] = 255  # a wall two voxels thin, < E = 60 µm: a single cavity cuts it (Parfitt)
    return bone


@pytest.mark.parametrize(
    ("shape", "neigh", "seed", "kind"),
    [((20, 24, 28), 26, 0, "gyroid"), ((19, 21, 23), 6, 1, "gyroid"), ((16, 18, 20), 26, 7, "plate")],
)
def test_numpy_equals_host_compiled_rule(shape, neigh, seed, kind, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("harness"))
    # fast turnover so that every phase and transition occurs within the run
    params = fast(
        neighbourhood=neigh,
    )
    w0 = words_of(_phantom(shape, kind))
    seen_np, seen_c = [], []
    _wn, cn, rn, fn = run_words(
        w0, params, 20.0, 90, seed=seed, record=lambda n, w, c: seen_np.append(w.copy())
    )
    _wc, cc, rc, fc = run_words(
        w0,
        params,
        20.0,
        90,
        seed=seed,
        step_fn=host_step_fn(neigh, tmp),
        record=lambda n, w, c: seen_c.append(w.copy()),
    )
    for n, (a, b) in enumerate(zip(seen_np, seen_c, strict=False)):
        assert np.array_equal(a, b), f"state differs at step {n}"
    np.testing.assert_array_equal(cn, cc)
    np.testing.assert_array_equal(rn, rc)
    np.testing.assert_array_equal(fn, fc)
    phases = np.unique((np.array(seen_np) >> 8) & 3)
    assert set(phases.tolist()) == {0, 1, 2, 3}, "the run must exercise every phase"
    assert cn[:, 5].sum() > 0 or kind == "gyroid", "plate run must perforate"


@pytest.mark.parametrize(
    ("blocks", "shape", "neigh"),
    [
        ("32,4,4", (13, 11, 37), 26),
        ("32,4,4", (14, 14, 70), 26),  # interior blocks (the staging fast path) beside face blocks
        ("8,2,3", (17, 9, 21), 6),
        ("zm:32,8,16", (37, 11, 35), 26),  # z-marching variant: ring of three planes, partial columns
        ("zm:8,4,5", (23, 14, 26), 26),  # interior columns (the staging fast path)
        ("zm:8,4,5", (17, 9, 21), 6),
    ],
)
def test_kernel_block_logic_equals_numpy(blocks, shape, neigh, tmp_path_factory):
    """The kernel's tiling (remodel_block.cuh), emulated block by block on the host, gives the NumPy bits."""
    tmp = str(tmp_path_factory.mktemp("blocks"))
    params = fast(
        neighbourhood=neigh,
    )
    w0 = words_of(_phantom(shape, "gyroid"))
    a = run_words(w0, params, 20.0, 60, seed=3)
    b = run_words(w0, params, 20.0, 60, seed=3, step_fn=host_step_fn(neigh, tmp, blocks=blocks))
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("blocks", ["32,4,4", "zm:32,8,16", "8,2,3", "zm:8,4,5"])  # small: interior blocks
def test_kernel_block_logic_on_a_chunk_with_halo(blocks, tmp_path_factory):
    """A block with a halo and a global origin (as an HPC chunk runner would pass it) gives the whole volume's bits."""
    tmp = str(tmp_path_factory.mktemp("chunk"))
    params = fast(erosion_depth_um=50, formation_efficiency=1.0)
    bone = _phantom((20, 18, 22), "gyroid")
    g = bone.shape
    whole = run_words(words_of(bone), params, 20.0, 40, seed=1)
    inner = host_step_fn(26, tmp, halo=1, origin=(7 - 1, -1, -1), global_shape=g, blocks=blocks)

    def chunked(words, inp, rmap, fmap, n):
        lo, hi = 7, 15  # the middle chunk from the block emulation, the rest from NumPy
        ref, cnt = step_block(words, inp, resorbed_day=rmap, formed_day=fmap, map_day=n)
        blk = np.pad(words, 1)[lo : hi + 2]
        r, f = rmap[lo:hi].copy(), fmap[lo:hi].copy()
        mid, _ = inner(np.ascontiguousarray(blk), inp, r, f, n)
        out = ref.copy()
        out[lo:hi] = mid
        return out, cnt

    split = run_words(words_of(bone), params, 20.0, 40, seed=1, step_fn=chunked)
    np.testing.assert_array_equal(whole[0], split[0])


def test_chunk_beyond_2_32_voxels_hashes_both_index_words(tmp_path_factory):
    """A chunk of a volume with more than 2**32 voxels: NumPy and the C rule agree, and the high word matters."""
    from bonesim.ca.rng import voxel_random
    from tests.ca.ca_helpers import inputs

    tmp = str(tmp_path_factory.mktemp("big"))
    g = (8, 65536, 65540)  # 3.4e10 voxels
    origin = (2, 1000, 2000)  # global linear indices ~ 8.6e9 > 2**32
    w = words_of(phantom.plate((6, 10, 12), 2, axis=0))
    inp = inputs(act_thr=2**31, seed_lo=12345, step=3)
    a, ca = step_block(w, inp, halo=1, origin=origin, global_shape=g)
    maps = [np.full((4, 8, 10), -1, np.int32) for _ in range(2)]
    b, cb = host_step_fn(26, tmp, halo=1, origin=origin, global_shape=g)(w, inp, *maps, -1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    assert 0 < ca[3] < ca[4], "about half the surface activates"
    lin = np.array([3 * 65536 * 65540 + 7], np.int64)
    assert voxel_random(1, 0, 0, lin)[0] != voxel_random(1, 0, 0, lin % 2**32)[0]
    with pytest.raises(ValueError, match="outside"):
        step_block(w, inp, halo=1, origin=(5, 0, 0), global_shape=g)


# ------------------------------------------------------------------ mechanoregulation
def _mech_field(shape, seed=0):
    """A signal-class field (smooth plus noise) and a lookup table that weights low classes up, high down."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 1, shape[0])[:, None, None]
    mech = np.clip(np.round(128 * z + rng.integers(-40, 40, shape)), 0, 255).astype(np.uint8)
    lut = np.round(256 * 4.0 * np.exp(-np.arange(256) / 60.0)).astype(np.uint32)
    return np.ascontiguousarray(mech), lut


@pytest.mark.parametrize("blocks", ["", "32,4,4", "zm:8,4,5"])
def test_mechanoregulated_activation_is_identical_in_numpy_and_the_kernel(blocks, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("mech"))
    shape = (17, 9, 21)
    params = fast(neighbourhood=26)
    w0 = words_of(_phantom(shape, "gyroid"))
    mech, lut = _mech_field(shape)
    a = run_words(w0, params, 20.0, 60, seed=5, mech=mech, lut=lut)
    b = run_words(
        w0,
        params,
        20.0,
        60,
        seed=5,
        mech=mech,
        lut=lut,
        step_fn=host_step_fn(26, tmp, blocks=blocks, mech=mech, lut=lut),
    )
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)
    plain = run_words(w0, params, 20.0, 60, seed=5)
    assert not np.array_equal(a[0], plain[0]), "the signal field must change where BMUs start"


def _modeling_lut(lut, lo=110, p=0.08):
    """``lut`` followed by modeling thresholds: 0 below class ``lo``, rising to a chance ``p`` per step."""
    m = np.clip((np.arange(256) - lo) / (256 - lo), 0, 1) * p * 2**32
    return np.concatenate([lut, np.rint(m)]).astype(np.uint32)


@pytest.mark.parametrize(
    ("blocks", "neigh"),
    [("", 26), ("", 6), ("32,4,4", 26), ("8,2,3", 6), ("zm:32,8,16", 26), ("zm:8,4,5", 26)],
)
def test_modeling_formation_is_identical_in_numpy_and_the_kernel(blocks, neigh, tmp_path_factory):
    """Modeling on: NumPy, the host-compiled rule and both kernels' block logic give the same bits."""
    tmp = str(tmp_path_factory.mktemp("model"))
    shape = (17, 9, 21) if blocks.startswith("8") or blocks.startswith("zm:8") else (19, 11, 37)
    params = fast(neighbourhood=neigh)
    w0 = words_of(_phantom(shape, "gyroid"))
    mech, lut = _mech_field(shape, seed=2)
    lut = _modeling_lut(lut)
    a = run_words(w0, params, 20.0, 50, seed=6, mech=mech, lut=lut)
    b = run_words(
        w0,
        params,
        20.0,
        50,
        seed=6,
        mech=mech,
        lut=lut,
        step_fn=host_step_fn(neigh, tmp, blocks=blocks, mech=mech, lut=lut),
    )
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)
    modeled = a[1][:, COUNTERS.index("modeled")]
    assert modeled.sum() > 0, "the run must start modeling formation"
    no_model = run_words(w0, params, 20.0, 50, seed=6, mech=mech, lut=lut[:256].copy())
    assert no_model[1][:, COUNTERS.index("modeled")].sum() == 0
    assert (a[0] & 0xFF).astype(np.int64).sum() > (no_model[0] & 0xFF).astype(np.int64).sum()


def test_mechanoregulation_steers_activation_to_low_signal_classes():
    """Seeds land where the lookup table weights them: class 0 (weight 4) ≈ 16 × class 200 (weight 1/4)."""
    bone = phantom.plate((4, 96, 96), 2, axis=0)
    w = words_of(bone)
    mech = np.zeros(bone.shape, np.uint8)
    mech[:, :, 48:] = 200
    lut = np.full(256, 256, np.uint32)
    lut[0], lut[200] = 1024, 64
    thr = int(0.02 * 2**32)
    low = high = 0
    for step in range(20):
        _out, _c = step_block(w, inputs(act_thr=thr, seed_lo=1, step=step, mech_on=1), mech=mech, lut=lut)
        seeds = ((_out >> 8) & 7) == 5  # R | TOP: a new top front
        low += int(seeds[:, :, :48].sum())
        high += int(seeds[:, :, 48:].sum())
    assert 10 < low / max(high, 1) < 26


def test_a_mechanoregulated_step_needs_its_field():
    w = words_of(phantom.plate((4, 8, 8), 2, axis=0))
    with pytest.raises(InputError, match="mech"):
        step_block(w, inputs(act_thr=1, mech_on=1))
    with pytest.raises(InputError, match="shape"):
        step_block(
            w, inputs(act_thr=1, mech_on=1), mech=np.zeros((4, 8, 7), np.uint8), lut=np.zeros(256, np.uint32)
        )
    with pytest.raises(InputError, match="lut"):
        step_block(
            w, inputs(act_thr=1, mech_on=1), mech=np.zeros((4, 8, 8), np.uint8), lut=np.zeros(255, np.uint32)
        )
