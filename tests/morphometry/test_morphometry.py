"""Morphometry on analytic volumes with known answers (issue 5)."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
from scipy import ndimage

from bonesim import phantom
from bonesim.io.hdf5 import write_root_attrs, write_table, write_volume
from bonesim.morphometry import (
    MorphometryWarning,
    analyze,
    morphometry,
    remodeling_labels,
    remodeling_summary,
)
from bonesim.morphometry import thickness as th
from bonesim.morphometry.analyze import METRIC_COLUMNS
from bonesim.morphometry.anisotropy import DA_MAX, degree_of_anisotropy
from bonesim.morphometry.basic import bone_surface_um2, structure_model_index
from bonesim.morphometry.topology import connectivity, euler_boundary_corrected
from bonesim.volume import Volume

H = 10.0  # µm


def blobs(shape, seed, frac=0.5):
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.random(shape), 2)
    return f > np.quantile(f, 1 - frac)


# ------------------------------------------------------------ local thickness ----
@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("seed", [0, 1])
def test_local_thickness_equals_brute_force(engine, seed):
    pytest.importorskip("numba") if engine == "numba" else None
    m = blobs((18, 20, 22), seed)
    for phase in (m, ~m):
        ref = th.brute_force_thickness_squared(phase)
        got = th.local_thickness_squared(phase, engine=engine)
        np.testing.assert_array_equal(got, ref)


def test_wide_ridge_pruning_changes_nothing():
    # larger structures (radii up to ~8 voxels) exercise the second, 7³ containment test of the
    # Numba ridge; the NumPy path prunes with the 26 neighbours only: the maps must agree
    pytest.importorskip("numba")
    rng = np.random.default_rng(5)
    f = ndimage.gaussian_filter(rng.random((40, 40, 40)), 4)
    m = f > np.median(f)
    for phase in (m, ~m):
        d2 = th.edt_squared(phase)
        assert th.distance_ridge(d2).sum() < th._ridge_numpy(d2, th._need_table(int(d2.max()))).sum()
        np.testing.assert_array_equal(
            th.local_thickness_squared(phase), th.local_thickness_squared(phase, engine="numpy")
        )


def test_ridge_pruning_keeps_few_centres():
    m = phantom.plate((9, 16, 16), 5) > 0
    ridge = th.distance_ridge(th.edt_squared(m))
    assert ridge.sum() == 16 * 16  # the mid-plane only
    assert ridge[4].all()


@pytest.mark.parametrize("t", range(4, 21))
def test_plate_thickness_and_smi(t):
    vol = phantom.plate((t + 10, 20, 20), t)
    m = morphometry(vol, voxel_size_um=H, indices=["tb_th", "smi"])
    assert abs(m["tb_th_um"] / H - t) <= 1.0
    assert m["tb_th_sd_um"] == 0.0  # every voxel of a plate has the same thickness
    assert abs(m["smi"]) <= 0.3


@pytest.mark.parametrize("d", [6, 8, 9, 11, 12, 16])
def test_rod_thickness_and_smi(d):
    # axis on the voxel lattice as the rod's parity allows (even d: through voxel centres,
    # odd d: between them): the digital rod is then as wide as the analytic one
    n = d + 9 if d % 2 == 0 else d + 8
    vol = phantom.rod((24, n, n), d)
    m = morphometry(vol, voxel_size_um=H, indices=["tb_th", "smi"])
    assert abs(m["tb_th_um"] / H - d) <= 1.0
    assert abs(m["tb_th_max_um"] / H - d) <= 1.0
    assert abs(m["smi"] - 3.0) <= 0.3


@pytest.mark.parametrize("d", [8, 9, 12, 13])
def test_rod_off_lattice_reads_at_most_one_and_a_half_voxel_low(d):
    # the other parity: axis half a voxel off the lattice in y and x; sphere centres are voxel
    # centres, so the largest inscribed lattice ball is smaller (documented bias)
    n = d + 8 if d % 2 == 0 else d + 9
    m = morphometry(phantom.rod((16, n, n), d), voxel_size_um=H, indices=["tb_th"])
    assert -1.4 <= m["tb_th_um"] / H - d <= 0.0


@pytest.mark.parametrize("r", [6, 10, 15])
def test_sphere_smi_and_surface(r):
    vol = phantom.sphere((2 * r + 8,) * 3, r)
    assert abs(structure_model_index(vol, H) - 4.0) <= 0.3
    # marching cubes over a binary (0/255) sphere: the staircase adds 7-10 % of area
    bs = bone_surface_um2(vol, 1.0)
    assert 1.0 < bs / (4 * np.pi * r**2) < 1.11


def test_plate_bs_bv():
    n, t = 20, 4
    m = morphometry(phantom.plate((n, n, n), t), voxel_size_um=H, indices=["bs"])
    # the mesh spans voxel centres: two faces of (n-1)² voxels, bone volume t n²
    assert m["bs_bv_per_mm"] == pytest.approx(2 * (n - 1) ** 2 / (t * n * n) / H * 1000, rel=1e-9)


def test_spacing_of_parallel_plates():
    vol = np.zeros((34, 16, 16), np.uint8)
    vol[0:4] = vol[15:19] = vol[30:34] = 255  # two gaps of 11 voxels
    m = morphometry(vol, voxel_size_um=H, indices=["tb_sp"])
    assert abs(m["tb_sp_um"] / H - 11) <= 1.0
    assert m["tb_sp_sd_um"] == 0.0


# ------------------------------------------------------------ BV/TV, Conn.D, DA ----
@pytest.mark.parametrize("level", [0.0, 0.4, -0.6])
def test_gyroid_bv_tv_matches_level_set_fraction(level):
    vol = phantom.gyroid((64, 64, 64), 32, level)
    m = morphometry(vol, voxel_size_um=H, indices=["bv_tv"])
    assert abs(m["bv_tv"] - phantom.gyroid_fraction(level)) <= 0.005


@pytest.mark.parametrize(("nodes", "width"), [(2, 2), (3, 3), (4, 2)])
def test_lattice_connectivity_is_exact(nodes, width):
    vol = phantom.lattice((40, 40, 40), nodes, width)
    assert connectivity(vol > 0) == phantom.lattice_loops(nodes)
    m = morphometry(vol, voxel_size_um=H, indices=["conn_d"])
    tv_mm3 = (40 * H / 1000) ** 3
    assert m["conn_d_per_mm3"] == pytest.approx(phantom.lattice_loops(nodes) / tv_mm3, rel=1e-12)


def test_boundary_correction_plate_rod_periodic():
    assert euler_boundary_corrected(phantom.plate((16, 16, 16), 4) > 0) == 0
    assert euler_boundary_corrected(phantom.rod((16, 16, 16), 6) > 0) == 0
    # a periodic structure: a box of 2 periods holds 8 times the share of a box of one period
    # (boxes of P + 1 voxels share their outer layers with their neighbours)
    p = 16
    g = phantom.gyroid((2 * p + 1,) * 3, p, 0.3) > 0
    one = euler_boundary_corrected(g[: p + 1, : p + 1, : p + 1])
    assert one != 0
    assert euler_boundary_corrected(g) == pytest.approx(8 * one)


def test_degree_of_anisotropy():
    assert degree_of_anisotropy(phantom.plate((24, 24, 24), 4) > 0) == DA_MAX
    stack = np.zeros((32, 32, 32), bool)
    for z0 in (2, 12, 22):
        stack[z0 : z0 + 4] = True
    assert degree_of_anisotropy(stack) > 100
    assert abs(degree_of_anisotropy(phantom.gyroid((48, 48, 48), 24) > 0) - 1.0) < 0.05
    assert abs(degree_of_anisotropy(phantom.sphere((32, 32, 32), 12) > 0) - 1.0) < 0.05
    # an orthotropic grid of rods, thicker along x: DA between 1 and the plate limit
    grid = np.zeros((32, 32, 32), bool)
    grid[:, 6:12, 6:12] = grid[:, 22:28, 22:28] = True  # rods along z
    grid[6:9, 14:17, :] = True  # one thinner rod along x
    assert 1.5 < degree_of_anisotropy(grid) < DA_MAX


# ---------------------------------------------------------------- units ----
def test_voxel_size_scaling_is_exact():
    vol = phantom.gyroid((32, 32, 32), 16, 0.2)
    a = morphometry(vol, voxel_size_um=10)
    b = morphometry(vol, voxel_size_um=20)
    for k in ("bv_tv", "smi", "da"):
        assert b[k] == pytest.approx(a[k], rel=1e-9)
    for k in ("tb_th_um", "tb_sp_um", "tb_th_sd_um"):
        assert b[k] == pytest.approx(2 * a[k], rel=1e-6)
    for k in ("bs_bv_per_mm", "bs_tv_per_mm", "tb_n_per_mm"):
        assert b[k] == pytest.approx(a[k] / 2, rel=1e-6)
    assert b["conn_d_per_mm3"] == pytest.approx(a["conn_d_per_mm3"] / 8, rel=1e-9)


def test_same_shape_two_resolutions_same_physical_values():
    # one gyroid period of 320 µm sampled at 20 µm (16 voxels) and at 10 µm (32 voxels)
    coarse = morphometry(phantom.gyroid((32, 32, 32), 16, 0.3), voxel_size_um=20)
    fine = morphometry(phantom.gyroid((64, 64, 64), 32, 0.3), voxel_size_um=10)
    assert fine["bv_tv"] == pytest.approx(coarse["bv_tv"], abs=0.01)
    assert fine["conn_d_per_mm3"] == pytest.approx(coarse["conn_d_per_mm3"], rel=0.02)
    for k in ("tb_th_um", "tb_sp_um", "bs_bv_per_mm"):
        assert fine[k] == pytest.approx(coarse[k], rel=0.08), k
    assert fine["smi"] == pytest.approx(coarse["smi"], abs=0.3)
    assert fine["da"] == pytest.approx(coarse["da"], abs=0.05)


# ------------------------------------------------------------- bad input ----
def _quiet(vol, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = morphometry(vol, voxel_size_um=H, **kw)
    return m, [str(x.message) for x in w if issubclass(x.category, MorphometryWarning)]


def test_empty_volume_gives_nan_with_warnings():
    m, msgs = _quiet(np.zeros((12, 12, 12), np.uint8))
    assert m["bv_tv"] == 0.0
    for k in ("bs_bv_per_mm", "tb_th_um", "tb_sp_um", "tb_n_per_mm", "conn_d_per_mm3", "smi", "da"):
        assert np.isnan(m[k]), k
    assert any("Tb.Th is undefined: the volume has no bone" in s for s in msgs)


def test_all_bone_gives_nan_thickness():
    m, msgs = _quiet(np.full((12, 12, 12), 255, np.uint8))
    assert m["bv_tv"] == 1.0 and m["bs_bv_per_mm"] == 0.0
    assert np.isnan(m["tb_th_um"]) and np.isnan(m["tb_sp_um"]) and np.isnan(m["smi"])
    assert any("the volume is all bone" in s for s in msgs)


def test_one_voxel_thin_plate_is_defined():
    m, msgs = _quiet(phantom.plate((15, 16, 16), 1))
    assert m["tb_th_um"] == 2 * H  # a 1-voxel plate: ball radius 1 (the BoneJ convention)
    assert abs(m["smi"]) <= 0.3 and m["da"] == DA_MAX
    assert msgs == []


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        morphometry(np.full((4, 4, 4), np.nan), voxel_size_um=H)
    with pytest.raises(ValueError, match="3-dimensional"):
        morphometry(np.zeros((4, 4), np.uint8), voxel_size_um=H)
    with pytest.raises(ValueError, match="anisotropic"):
        morphometry(np.zeros((4, 4, 4), np.uint8), voxel_size_um=(10, 10, 20))
    with pytest.raises(ValueError, match="voxel_size_um"):
        morphometry(np.zeros((4, 4, 4), np.uint8), voxel_size_um=-1)
    with pytest.raises(ValueError, match="voxel_size_um` is required"):
        morphometry(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="`indices` must be one of"):
        morphometry(np.zeros((4, 4, 4), np.uint8), voxel_size_um=H, indices=["tb.th"])
    with pytest.raises(TypeError, match="uint8 bone-fraction"):
        morphometry(Volume(np.zeros((4, 4, 4), np.int16), H))


def test_float_fraction_and_bool_inputs_agree_with_uint8():
    vol = phantom.gyroid((24, 24, 24), 12)
    a = morphometry(vol, voxel_size_um=H, indices=["bv_tv", "tb_th"])
    b = morphometry(vol > 0, voxel_size_um=H, indices=["bv_tv", "tb_th"])
    c = morphometry(vol / 255.0, voxel_size_um=H, indices=["bv_tv", "tb_th"])
    assert a == b == c


# ---------------------------------------------------------------- labels ----
def test_labels_and_cluster_threshold():
    before = np.zeros((20, 20, 20), np.uint8)
    before[5:15, 5:15, 5:15] = 255
    after = before.copy()
    after[5:7, 5:8, 5:7] = 0  # 12 voxels resorbed: kept
    after[12:15, 12:15, 14] = 0  # 9 voxels resorbed: noise → quiescent
    after[8:10, 8:10, 15:18] = 255  # 12 voxels formed: kept
    after[2, 2, 2:13] = 255  # 11 voxels formed: noise → marrow
    lab = remodeling_labels(before, after)
    counts = np.bincount(lab.ravel(), minlength=4)
    assert counts[1] == 12 and counts[3] == 12
    assert counts[2] == 1000 - 12
    s = remodeling_summary(lab, 100.0)
    assert s["resorbed_volume_mm3"] == pytest.approx(12 * 1e-3)
    assert s["formed_fraction"] == pytest.approx(12 / 1000)
    # a 2x2x3 block's closed surface: area of its marching-cubes mesh (corners cut) > 0
    assert 0 < s["formed_surface_mm2"] < 2 * (4 + 6 + 6) * 0.01
    assert remodeling_labels(before, after, min_cluster=1)[2, 2, 5] == 3
    with pytest.raises(ValueError, match="differ in shape"):
        remodeling_labels(before, after[:-1])


# --------------------------------------------------------------- analyze ----
def _result_file(path, frames, *, metrics_rows=None):
    with h5py.File(path, "w") as f:
        write_root_attrs(f, H)
        f.create_dataset("volume/bone", data=frames[0])
        f.create_dataset("series/bone", data=np.stack(frames))
        f.create_dataset("series/day", data=np.arange(len(frames), dtype=float) * 30)
        n = len(frames) if metrics_rows is None else metrics_rows
        write_table(
            f.require_group("tables"),
            "metrics",
            {"day": np.arange(n) * 30.0, "bv_tv": np.zeros(n), "resorbed_vox": np.arange(n)},
        )


@pytest.fixture
def frames():
    return [phantom.gyroid((24, 24, 24), 12, lv) for lv in (0.0, 0.2, 0.4)]


def test_analyze_fills_metrics_in_place(tmp_path, frames):
    p = tmp_path / "run.h5"
    _result_file(p, frames)
    table = analyze(p, csv=tmp_path / "m.csv")
    with h5py.File(p, "r") as f:
        g = f["tables/metrics"]
        cols = json.loads(g.attrs["columns"])
        assert cols[:3] == ["day", "bv_tv", "resorbed_vox"]
        assert set(cols) >= set(METRIC_COLUMNS)
        np.testing.assert_array_equal(g["resorbed_vox"][...], [0, 1, 2])  # untouched
        assert "morphometry" not in f["tables"]
        for i, fr in enumerate(frames):
            m = morphometry(fr, voxel_size_um=H)
            for k in ("bv_tv", "tb_th_um", "conn_d_per_mm3", "smi"):
                assert g[k][i] == pytest.approx(m[k]), k
    assert table["frame"].tolist() == [0, 1, 2]
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0].startswith("frame,day,bv_tv,bs_bv_per_mm") and len(lines) == 4


def test_analyze_last_frame_and_mismatched_table(tmp_path, frames):
    p = tmp_path / "run.h5"
    _result_file(p, frames)
    analyze(p, frames="last")
    with h5py.File(p, "r") as f:
        tb = f["tables/metrics/tb_th_um"][...]
    assert np.isnan(tb[:2]).all() and np.isfinite(tb[2])
    q = tmp_path / "odd.h5"
    _result_file(q, frames, metrics_rows=5)
    analyze(q, frames="all")
    with h5py.File(q, "r") as f:
        assert "tb_th_um" not in f["tables/metrics"]
        assert f["tables/morphometry/frame"][...].tolist() == [0, 1, 2]
        assert f["tables/morphometry/day"][...].tolist() == [0.0, 30.0, 60.0]


def test_analyze_plain_volume_file_and_cli(tmp_path):
    from click.testing import CliRunner

    from bonesim.cli import main

    p = tmp_path / "bone.h5"
    write_volume(p, Volume(phantom.gyroid((24, 24, 24), 12), H), xdmf=False)
    r = CliRunner().invoke(main, ["analyze", str(p), "--csv", str(tmp_path / "b.csv")])
    assert r.exit_code == 0, r.output
    assert "1 frame(s) analysed" in r.output
    with h5py.File(p, "r") as f:
        assert f["tables/morphometry/frame"][...].tolist() == [-1]
        assert f["tables/morphometry/tb_th_um"][0] > 0
    bad = tmp_path / "plain.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = 1
    r = CliRunner().invoke(main, ["analyze", str(bad)])
    assert r.exit_code == 1 and "not a bonesim file" in r.output
    r = CliRunner().invoke(main, ["analyze", str(p), "--frames", "first"])
    assert r.exit_code != 0


# ------------------------------------------------------------------- GPU ----
@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1])
def test_gpu_local_thickness_equals_cpu(seed):
    from bonesim.morphometry import gpu

    m = blobs((40, 44, 48), seed, frac=0.3)
    for phase in (m, ~m):
        np.testing.assert_array_equal(gpu.local_thickness_squared(phase), th.local_thickness_squared(phase))


@pytest.mark.gpu
def test_gpu_morphometry_matches_cpu():
    vol = phantom.gyroid((64, 64, 64), 32, 0.3)
    cpu = morphometry(vol, voxel_size_um=H)
    dev = morphometry(vol, voxel_size_um=H, backend="gpu")
    assert dev["bv_tv"] == pytest.approx(cpu["bv_tv"], abs=1e-12)
    for k in ("tb_th_um", "tb_sp_um", "tb_th_sd_um", "tb_sp_max_um"):  # identical maps: float32 sums only
        assert dev[k] == pytest.approx(cpu[k], rel=1e-5), k


def test_analyze_engine_result(tmp_path):
    """A real (NumPy-backend) simulation result: one morphometry row per saved frame."""
    import bonesim

    out = tmp_path / "run.h5"
    vol = Volume(phantom.gyroid((24, 24, 24), 12, 0.3), 20.0)
    bonesim.simulate(vol, years=0.1, backend="numpy", save_every=15, out=out, spinup_years=0.05)
    with h5py.File(out, "r") as f:
        n = f["series/bone"].shape[0]
        engine_bv_tv = f["tables/metrics/bv_tv"][...]
    table = analyze(out)
    assert len(table["frame"]) == n >= 2
    with h5py.File(out, "r") as f:
        g = f["tables/metrics"]
        assert g["tb_th_um"].shape == (n,) and np.isfinite(g["tb_th_um"][...]).all()
        np.testing.assert_allclose(g["bv_tv"][...], engine_bv_tv, atol=1e-12)  # same definition


def test_gpu_backend_without_cupy_says_so():
    from tests.conftest import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    from bonesim.errors import BonesimError

    with pytest.raises(BonesimError, match="needs CuPy"):
        morphometry(phantom.plate((8, 8, 8), 2), voxel_size_um=H, backend="gpu")
    with pytest.raises(ValueError, match="`backend` must be one of"):
        morphometry(phantom.plate((8, 8, 8), 2), voxel_size_um=H, backend="cuda")
