"""The CUDA shell of the CA kernels, seen from the CPU (issue 16).

- the kernel argument layout: one Python description (``bonesim.ca.kernel_abi``)
  checked against the C++ structs and the kernel signatures;
- the block bodies (staging loops, z-march, barriers) of ``remodel_block.cuh``
  run through the host execution policy: any thread order gives the NumPy bits,
  and the kernels built without their barriers do not (the mutation check);
- ``launch_step`` refuses buffers the kernel would misread;
- a corrupted direction code cannot read outside the neighbourhood (NumPy and
  the C rule agree on it).
"""

from __future__ import annotations

import ctypes
import re
import sys

import numpy as np
import pytest

from bonesim import Volume, phantom
from bonesim._resources import kernel_dir
from bonesim.ca.backends.base import COUNTERS
from bonesim.ca.backends.numpy_backend import step_block
from bonesim.ca.kernel_abi import GEOM_DTYPE, KERNEL_ARGS, NCOUNT, NSLOT, STEP_DTYPE, kernel_args
from bonesim.errors import InputError
from tests.ca.ca_helpers import inputs, run_words, words_of
from tests.ca.test_ca_parity import _harness_lib, host_step_fn
from tests.fast_params import fast

NO_BARRIERS = ("BONESIM_NO_BARRIERS=1",)


def _gyroid(shape):
    return phantom.gyroid(shape, 16, phantom.gyroid_sheet_level_for(0.4), sheet=True)


# ----------------------------------------------------------------------------- argument layout
def test_struct_layout_matches_the_cpp_structs(tmp_path):
    lib = _harness_lib(26, str(tmp_path))
    out = np.zeros(30, np.uint64)
    lib.bonesim_host_abi(ctypes.c_void_p(out.ctypes.data))
    assert out[0] == GEOM_DTYPE.itemsize
    assert list(out[1:11]) == [GEOM_DTYPE.fields[n][1] for n in GEOM_DTYPE.names]
    assert out[11] == STEP_DTYPE.itemsize
    assert list(out[12:27]) == [STEP_DTYPE.fields[n][1] for n in STEP_DTYPE.names]
    assert (out[27], out[28]) == (NSLOT, NCOUNT)
    assert out[29] == len(COUNTERS) <= NCOUNT  # the counters a thread accumulates fit a slot


def test_kernel_signatures_are_kernel_args():
    text = (kernel_dir("ca") / "remodel.cu").read_text()
    sigs = re.findall(r"BONESIM_CAT\((bonesim_remodel_step\w*), BONESIM_NEIGH\)\((.*?)\)\s*\{", text, re.S)
    assert [s[0] for s in sigs] == ["bonesim_remodel_step_n", "bonesim_remodel_step_zm_n"]
    want = [a.ctype for a in KERNEL_ARGS]
    for name, params in sigs:
        got = [" ".join(p.split()[:-1]) for p in " ".join(params.split()).split(",")]
        assert got == want, f"{name}: {got} != kernel_abi.KERNEL_ARGS {want}"


def test_kernel_args_refuses_a_wrong_struct():
    a = np.zeros((1, 1, 1), np.uint32)
    kw = dict(src=a, dst=a, resorbed_day=a, formed_day=a, counters=a, mech=a, lut=a, map_day=0, tile_flags=a)
    kw["tile_mode"] = -1
    with pytest.raises(TypeError, match="geom"):
        kernel_args(**kw, geom=np.zeros(1, STEP_DTYPE), step=np.zeros(1, STEP_DTYPE))
    with pytest.raises(TypeError, match="missing"):
        kernel_args(**kw)


# ----------------------------------------------------------------------------- block bodies
@pytest.mark.parametrize("blocks", ["8,2,3", "zm:8,4,5"])
@pytest.mark.parametrize("order", [1, 2])
def test_block_bodies_give_numpy_bits_in_any_thread_order(blocks, order, tmp_path):
    params = fast(neighbourhood=26)
    w0 = words_of(_gyroid((17, 9, 21)))
    a = run_words(w0, params, 20.0, 40, seed=3)
    b = run_words(
        w0, params, 20.0, 40, seed=3, step_fn=host_step_fn(26, str(tmp_path), blocks=blocks, order=order)
    )
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("blocks", ["32,4,4", "zm:32,8,16"])
def test_kernels_without_barriers_fail_parity(blocks, tmp_path):
    """The mutation check: the same block bodies built without their barriers do not give the NumPy bits."""
    params = fast(neighbourhood=26)
    w0 = words_of(_gyroid((19, 13, 37)))
    a = run_words(w0, params, 20.0, 3, seed=3)
    b = run_words(
        w0,
        params,
        20.0,
        3,
        seed=3,
        step_fn=host_step_fn(26, str(tmp_path), blocks=blocks, defines=NO_BARRIERS),
    )
    assert not np.array_equal(a[0], b[0]), "a kernel without barriers gave the reference bits"


# ----------------------------------------------------------------------------- launch_step checks
@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    import bonesim.ca.backends.cupy_backend as cb
    from tests.ca.test_cupy_plumbing import _fake_cupy

    launches: list = []
    fake = _fake_cupy(str(tmp_path), [], launches)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    cb._module.cache_clear()
    yield fake, launches
    cb._module.cache_clear()


def _bufs(cp, shape=(6, 7, 9), halo=0):
    inner = tuple(n - 2 * halo for n in shape)
    return dict(
        src=cp.asarray(words_of(np.zeros(shape, np.uint8))),
        dst=cp.asarray(np.zeros(inner, np.uint32)),
        resorbed_day=cp.full(inner, -1, np.int32),
        formed_day=cp.full(inner, -1, np.int32),
        counters=cp.zeros((NSLOT, NCOUNT), np.uint64),
    )


def _launch(b, **kw):
    from bonesim.ca.backends.cupy_backend import launch_step

    launch_step(b["src"], b["dst"], b["resorbed_day"], b["formed_day"], b["counters"], inputs(), **kw)


def test_launch_step_accepts_good_buffers(stand_in):
    cp, launches = stand_in
    b = _bufs(cp)
    _launch(b, map_day=0)
    assert launches == [("bonesim_remodel_step_n26", (1, 2, 2), (32, 4, 4))]


@pytest.mark.parametrize(
    ("name", "bad", "match"),
    [
        ("src", lambda cp: cp.asarray(np.zeros((6, 7, 9), np.int32)), r"`src` .* C-contiguous uint32"),
        (
            "src",
            lambda cp: cp.asarray(np.zeros((6, 7, 18), np.uint32))[:, :, ::2],
            r"`src` .*C-contiguous=False",
        ),
        ("src", lambda cp: cp.asarray(np.zeros((6, 63), np.uint32)), r"`src` must be a 3-D array"),
        ("dst", lambda cp: cp.asarray(np.zeros((6, 7, 8), np.uint32)), r"`dst` .* shape \(6, 7, 9\)"),
        ("dst", lambda cp: cp.asarray(np.zeros((6, 7, 9), np.uint16)), r"`dst` .* uint32"),
        ("resorbed_day", lambda cp: cp.full((6, 7, 9), -1, np.int64), r"`resorbed_day` .* int32"),
        (
            "formed_day",
            lambda cp: cp.full((6, 7, 9), -1, np.int32).T.copy().T,
            r"`formed_day` .*C-contiguous",
        ),
        ("counters", lambda cp: cp.zeros((NSLOT, NCOUNT), np.int64), r"`counters` .* uint64 array of shape"),
        ("counters", lambda cp: cp.zeros((NSLOT, 6), np.uint64), r"`counters` .* shape \(256, 8\)"),
    ],
)
def test_launch_step_refuses_bad_buffers(stand_in, name, bad, match):
    cp, launches = stand_in
    b = _bufs(cp)
    b[name] = bad(cp)
    with pytest.raises(InputError, match=match):
        _launch(b)
    assert launches == [], "nothing may be launched on bad buffers"


def test_launch_step_refuses_aliased_buffers_and_bad_geometry(stand_in):
    cp, launches = stand_in
    b = _bufs(cp)
    b["dst"] = b["src"]
    with pytest.raises(InputError, match="`dst` and `src` are the same buffer"):
        _launch(b)
    b = _bufs(cp, (8, 9, 11), halo=1)
    with pytest.raises(InputError, match="lies outside the global volume"):
        _launch(b, halo=1, origin=(0, 0, 0), global_shape=(6, 7, 9))
    with pytest.raises(InputError, match="no interior"):
        _launch(_bufs(cp, (2, 5, 5)), halo=1)
    with pytest.raises(InputError, match="neighbourhood"):
        _launch(_bufs(cp), neighbourhood=18)
    assert launches == []


def test_mutation_env_builds_the_kernels_without_barriers(stand_in, monkeypatch, tmp_path):
    """BONESIM_KERNEL_MUTATION=no_barriers reaches the kernel build; the engine run then differs from NumPy."""
    from bonesim.ca.engine import simulate

    vol = Volume(_gyroid((19, 13, 37)), 20.0)
    p = fast(acf_per_year=10, erosion_depth_um=50, footprint_radius_um=60)
    kw = dict(years=0.05, spinup_years=0.02, save_every=9, seed=4)
    a = simulate(vol, p, backend="numpy", **kw)
    ok = simulate(vol, p, backend="cupy", **kw)
    np.testing.assert_array_equal(a.state["bone"], ok.state["bone"])
    monkeypatch.setenv("BONESIM_KERNEL_MUTATION", "no_barriers")
    b = simulate(vol, p, backend="cupy", **kw)
    assert not np.array_equal(a.state["bone"], b.state["bone"])
    monkeypatch.setenv("BONESIM_KERNEL_MUTATION", "typo")
    with pytest.raises(InputError, match="BONESIM_KERNEL_MUTATION"):
        simulate(vol, p, backend="cupy", **kw)


# ----------------------------------------------------------------------------- corrupted words
@pytest.mark.parametrize("code", [27, 29, 31])
def test_corrupted_direction_code_stays_in_the_neighbourhood(code, tmp_path):
    """Resorbing voxels whose 5-bit direction code is >= 27 (front, handover, passive): the C rule and the
    NumPy backend read direction 13 ("none") for them and agree bit for bit, on the plain loop and on both
    kernels' block bodies."""
    rng = np.random.default_rng(code)
    shape = (9, 10, 35)
    bone = phantom.plate(shape, 3, axis=0)
    w = words_of(bone)
    pb = np.uint32(1 | (code << 3))
    sites = rng.choice(np.flatnonzero(bone.ravel() > 0), 12, replace=False)
    kinds = [(200, 0), (0, 40), (0, 0)]  # front, handover, passive
    for i, s in enumerate(sites):
        b, t = kinds[i % 3]
        w.ravel()[s] = np.uint32(b) | (pb << np.uint32(8)) | (np.uint32(t) << np.uint32(16))
    inp = inputs(act_thr=2**30, seed_lo=7, lat0=60)
    maps = [np.full(shape, -1, np.int32) for _ in range(2)]
    ref, cref = step_block(w, inp, resorbed_day=maps[0], formed_day=maps[1], map_day=0)
    for blocks in ("", "32,4,4", "zm:32,8,16"):
        m = [np.full(shape, -1, np.int32) for _ in range(2)]
        got, c = host_step_fn(26, str(tmp_path), blocks=blocks)(w, inp, m[0], m[1], 0)
        np.testing.assert_array_equal(ref, got, err_msg=blocks or "plain loop")
        np.testing.assert_array_equal(cref, c)
        np.testing.assert_array_equal(maps[0], m[0])
    assert ((ref.ravel()[sites] >> 8) & 3 == 3).any(), "a handover without direction perforates"


# ----------------------------------------------------------------------------- device scripts
def test_gpu_step_script_runs_on_the_stand_in(stand_in, capsys, monkeypatch):
    """scripts/gpu_step.py (what compute-sanitizer runs in gpu-check.sh) works, and sees the mutation."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu_step.py"
    spec = importlib.util.spec_from_file_location("gpu_step", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--variant", "zm", "--shape", "19,13,37", "--steps", "4"]) == 0
    assert "parity: EQUAL" in capsys.readouterr().out
    monkeypatch.setenv("BONESIM_KERNEL_MUTATION", "no_barriers")
    assert mod.main(["--variant", "tile", "--shape", "19,13,37", "--steps", "4"]) == 1
    assert "parity: DIFFERENT" in capsys.readouterr().out


# ----------------------------------------------------------------------------- uniform-tile skip
def _slab(shape=(26, 14, 30), lo=8, hi=19):
    """Marrow with a full-bone slab z in [lo, hi): tiles wholly in marrow and wholly in bone, and surfaces."""
    bone = np.zeros(shape, np.uint8)
    bone[lo:hi] = 255
    return bone


@pytest.mark.parametrize("blocks", ["8,2,3", "zm:8,4,5"])
@pytest.mark.parametrize("modeling", [False, True])
def test_uniform_tile_skip_equals_stepping_every_tile(blocks, modeling, tmp_path):
    """Skipping tiles whose cells all equal full quiescent bone or marrow (remodel_block.cuh,
    bs_uniform_unchanged) gives the NumPy bits and the bits of the kernel built without the skip
    (-DBONESIM_SKIP_UNIFORM=0): words, maps and counters, with modeling formation off and on. The skip
    build steps fewer tiles (the eighth counter), the other every tile."""
    from tests.ca.test_ca_parity import _mech_field, _modeling_lut

    params = fast(neighbourhood=26)
    w0 = words_of(_slab())
    mech = lut = None
    if modeling:
        mech, lut = _mech_field(w0.shape, seed=2)
        lut = _modeling_lut(lut, lo=60, p=0.3)
    ref = run_words(w0, params, 20.0, 40, seed=5, mech=mech, lut=lut)
    runs = {}
    for skip in (1, 0):
        tiles: list = []
        defines = (f"BONESIM_SKIP_UNIFORM={skip}",)
        fn = host_step_fn(26, str(tmp_path), blocks=blocks, defines=defines, mech=mech, lut=lut, tiles=tiles)
        runs[skip] = (run_words(w0, params, 20.0, 40, seed=5, mech=mech, lut=lut, step_fn=fn), tiles)
    for skip, (got, _) in runs.items():
        for x, y in zip(ref, got, strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"SKIP_UNIFORM={skip}")
    stepped, total = np.array(runs[1][1]).T
    assert (stepped < total).all(), "every step has uniform tiles to skip"
    assert all(s == t for s, t in runs[0][1]), "without the skip every tile is stepped"
    assert ref[1][:, COUNTERS.index("removed")].sum() > 0, "the slab must be remodeled"
    if modeling:
        assert ref[1][:, COUNTERS.index("modeled")].sum() > 0, "the run must start modeling formation"
