"""Research features of ``bonesim import``: resampling anisotropic voxels, density calibration, ROI masks."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import read_volume
from bonesim.io.importers import import_volume, resample
from bonesim.io.segment import segment
from bonesim.volume import Volume


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def slab_grey(n: int, spacing: float, lo_um: float, hi_um: float, level: float = 100.0) -> np.ndarray:
    """Partial-volume grey profile of a slab [lo_um, hi_um] on n voxels of ``spacing`` (exact overlaps)."""
    edges = np.arange(n + 1) * spacing
    overlap = np.clip(np.minimum(edges[1:], hi_um) - np.maximum(edges[:-1], lo_um), 0, None)
    return (level * overlap / spacing).astype(np.float32)


def slab_volume(axis: int, coarse: float, fine: float, lo: float, hi: float) -> tuple[np.ndarray, tuple]:
    """A slab perpendicular to ``axis`` (the coarse one), 600 um deep along it, 12 fine voxels across."""
    n_coarse = round(600 / coarse)
    prof = slab_grey(n_coarse, coarse, lo, hi)
    shape = [12, 12, 12]
    shape[axis] = n_coarse
    view = [1, 1, 1]
    view[axis] = n_coarse
    spacing = [fine, fine, fine]
    spacing[axis] = coarse
    return np.broadcast_to(prof.reshape(view), shape).copy(), tuple(spacing)


# ---------------------------------------------------------- resampling ----
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("target", [10.0, 20.0])
@pytest.mark.parametrize("lo", [80.0, 95.0, 101.0])
def test_resampled_slab_keeps_thickness_and_bvtv_in_um(axis, target, lo):
    """A 300 um slab sampled at 30 um across and 10 um along: thickness and BV/TV survive in um.

    Tolerance: half a target voxel, i.e. the right number of voxels (a
    corner-aligned ``scipy.ndimage.zoom``, whose voxels are not exactly
    ``target``, gives 310 um at 10 um and fails).
    """
    grey, spacing = slab_volume(axis, 30.0, 10.0, lo, lo + 300.0)
    out = resample(grey, spacing, target)
    assert out.dtype == np.float32
    assert out.shape[axis] == round(600 / target)
    assert all(out.shape[a] == round(120 / target) for a in range(3) if a != axis)
    bone = segment(Volume(out, target), 50, keep="all")
    thickness = (bone.data > 0).sum(axis=axis).mean() * target
    assert thickness == pytest.approx(300.0, abs=target / 2)
    assert bone.bv_tv == pytest.approx(300 / 600, abs=target / 2 / 600)


def test_resample_linear_profile_is_reproduced_exactly():
    """A linear ramp in um is linear under trilinear interpolation: values at the new centres are exact."""
    z = (np.arange(10) + 0.5) * 30.0  # centres of 30 um voxels
    g = np.broadcast_to(z.reshape(10, 1, 1), (10, 3, 3)).astype(np.float32)
    out = resample(g, (30.0, 10.0, 10.0), 10.0)
    centres = (np.arange(30) + 0.5) * 10.0
    inside = (centres >= z[0]) & (centres <= z[-1])  # outside the outer centres: the nearest value
    np.testing.assert_allclose(out[inside, 1, 1], centres[inside], rtol=1e-6)


@pytest.fixture
def aniso_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    grey, _ = slab_volume(0, 30.0, 10.0, 95.0, 395.0)
    p = tmp_path / "aniso.tif"
    tifffile.imwrite(
        p, grey, imagej=True, resolution=(1 / 10.0, 1 / 10.0), metadata={"spacing": 30.0, "unit": "um"}
    )
    return p


def test_import_api_resample_auto_records_original_spacing(aniso_tiff):
    with pytest.raises(BonesimError, match=r"anisotropic.*resample_um='auto'"):
        import_volume(aniso_tiff)
    v = import_volume(aniso_tiff, resample_um="auto")
    assert v.voxel_size_um == pytest.approx(10.0) and v.shape == (60, 12, 12)
    r = v.metadata["resample"]
    assert r["from_spacing_um"] == pytest.approx([30.0, 10.0, 10.0])
    assert r["to_um"] == pytest.approx(10.0) and r["requested"] == "auto" and r["order"] == 1
    assert r["shape_before"] == [20, 12, 12]
    # crop (input voxels) first, then resampling, then downsampling
    v = import_volume(aniso_tiff, resample_um=10, crop=[(0, 10), (None, None), (None, None)], downsample=2)
    assert v.shape == (15, 6, 6) and v.voxel_size_um == pytest.approx(20.0)
    for bad in ("fine", 0, -5, float("nan")):
        with pytest.raises(BonesimError, match="resample_um"):
            import_volume(aniso_tiff, resample_um=bad)


def test_cli_refuses_anisotropic_without_resample_and_resamples_with_it(tmp_path, aniso_tiff):
    out = tmp_path / "b.h5"
    r = run("import", aniso_tiff, out, "--threshold", "50")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "anisotropic" in r.output and "--resample-um auto" in r.output and "Traceback" not in r.output
    assert not out.exists()
    r = run("import", aniso_tiff, out, "--threshold", "50", "--keep", "all", "--resample-um", "auto")
    assert r.exit_code == 0, r.output
    v = read_volume(out)
    assert v.voxel_size_um == pytest.approx(10.0) and v.shape == (60, 12, 12)
    assert (v.data > 0).sum(axis=0).mean() * 10.0 == pytest.approx(300.0, abs=10.0)
    assert v.metadata["resample"]["from_spacing_um"] == pytest.approx([30.0, 10.0, 10.0])
    r = run("import", aniso_tiff, tmp_path / "c.h5", "--resample-um", "x")
    assert r.exit_code == 1 and "--resample-um must be" in r.output


# --------------------------------------------------------- calibration ----
def two_phase(tmp_path, noise: float = 0.0):
    rng = np.random.default_rng(3)
    g = np.full((20, 20, 20), 10.0, np.float32)
    g[4:16, 4:16, 4:16] = 100.0
    g += rng.normal(0, noise, g.shape).astype(np.float32) if noise else 0
    p = tmp_path / "g.npy"
    np.save(p, g)
    return p, g


def test_cli_calibration_tmd_and_vbmd_on_two_phases(tmp_path):
    p, _ = two_phase(tmp_path)
    out = tmp_path / "b.h5"
    r = run(
        "import", p, out, "--voxel-size", "10", "--threshold", "50",
        "--calibration-slope", "8", "--calibration-intercept", "-50",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    cal = read_volume(out).metadata["calibration"]
    assert cal["slope"] == 8 and cal["intercept"] == -50 and cal["unit"] == "mg HA/cm3"
    assert cal["tmd_mg_ha_cm3"] == pytest.approx(8 * 100 - 50)  # bone voxels are all at 100
    bv = 12**3 / 20**3
    assert cal["vbmd_mg_ha_cm3"] == pytest.approx(8 * (100 * bv + 10 * (1 - bv)) - 50)
    assert cal["bone_voxels"] == 12**3
    r = run("info", out)
    assert r.exit_code == 0 and "TMD 750.0 mg HA/cm3" in r.output, r.output
    assert "calibration 8 * grey - 50" in r.output


def test_calibration_equals_an_independent_mean_on_noisy_grey(tmp_path):
    import h5py

    p, _ = two_phase(tmp_path, noise=15.0)
    out = tmp_path / "b.h5"
    r = run(
        "import", p, out, "--voxel-size", "10", "--sigma", "1", "--threshold", "55", "--keep-grey",
        "--calibration-slope", "2.5", "--calibration-intercept", "30",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        bone = f["volume/bone"][...]
        grey = f["volume/grey"][...].astype(np.float64)
    cal = read_volume(out).metadata["calibration"]
    assert cal["tmd_mg_ha_cm3"] == pytest.approx((2.5 * grey[bone > 127] + 30).mean(), rel=1e-9)
    assert cal["vbmd_mg_ha_cm3"] == pytest.approx((2.5 * grey + 30).mean(), rel=1e-9)


def test_calibration_refusals_and_no_line_without_it(tmp_path):
    p, _ = two_phase(tmp_path)
    base = ("import", p, tmp_path / "b.h5", "--voxel-size", "10", "--threshold", "50")
    for extra, words in (
        (("--calibration-slope", "8"), "--calibration-intercept"),
        (("--calibration-intercept", "3"), "--calibration-slope"),
        (("--calibration-slope", "0", "--calibration-intercept", "3"), "> 0"),
        (("--calibration-slope", "nan", "--calibration-intercept", "3"), "> 0"),
        (("--calibration-slope", "1", "--calibration-intercept", "inf"), "finite"),
    ):
        r = run(*base, *extra)
        assert r.exit_code == 1 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert not (tmp_path / "b.h5").exists()
    assert run(*base).exit_code == 0
    r = run("info", tmp_path / "b.h5")
    assert r.exit_code == 0 and "density" not in r.output and "TMD" not in r.output


# ---------------------------------------------------- region of interest ----
def test_cli_mask_restricts_bone_and_records_the_roi(tmp_path):
    p, g = two_phase(tmp_path)
    roi = np.zeros(g.shape, np.uint8)
    roi[:10] = 1  # the half z < 10: the cube's rows 4..9 are inside
    np.save(tmp_path / "roi.npy", roi)
    out = tmp_path / "b.h5"
    r = run(
        "import", p, out, "--voxel-size", "10", "--threshold", "50", "--keep", "all",
        "--mask", tmp_path / "roi.npy", "--calibration-slope", "1", "--calibration-intercept", "0",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    v = read_volume(out)
    expected = np.zeros(g.shape, bool)
    expected[4:10, 4:16, 4:16] = True
    np.testing.assert_array_equal(v.data > 0, expected)
    info = v.metadata["segmentation"]["roi"]
    assert info["voxels"] == 10 * 20 * 20 and info["fraction_of_box"] == pytest.approx(0.5)
    assert info["bv_tv_roi"] == pytest.approx(6 * 12 * 12 / (10 * 20 * 20))
    assert info["source"].endswith("roi.npy")
    assert v.metadata["calibration"]["vbmd_mg_ha_cm3"] == pytest.approx(g[:10].mean())  # over the ROI only
    r = run("info", out)
    assert (
        "roi         4000 voxels (50.0% of the box)" in r.output and "BV/TV inside 0.2160"
    )  # 864 / 4000 in r.output


def test_otsu_is_computed_inside_the_roi():
    """Outside the ROI bright values (200..1000) pull Otsu up; inside, the two phases 10/40 decide it."""
    g = np.full((16, 16, 16), 10.0, np.float32)
    g[2:6, 2:6, 2:6] = 40.0
    g[:, :, 8:] = np.random.default_rng(1).uniform(200, 1000, (16, 16, 8))  # outside the ROI
    roi = np.zeros(g.shape, bool)
    roi[:, :, :8] = True
    whole = segment(Volume(g, 10), "otsu", keep="all")
    inside = segment(Volume(g, 10), "otsu", keep="all", roi=roi)
    assert whole.metadata["segmentation"]["threshold"] > 40  # the 40-block is lost
    assert not (whole.data[:, :, :8] > 0).any()
    assert 10 <= inside.metadata["segmentation"]["threshold"] < 40
    assert int((inside.data > 0).sum()) == 4**3


def test_mask_follows_crop_resample_and_downsample(tmp_path, aniso_tiff):
    from bonesim.io.importers import import_roi

    roi = np.zeros((20, 12, 12), np.uint8)
    roi[:, :6] = 1  # y < 6: 60 um of 120
    np.save(tmp_path / "roi.npy", roi)
    g = import_volume(
        aniso_tiff, resample_um="auto", crop=[(2, 18), (None, None), (None, None)], downsample=2
    )
    m = import_roi(tmp_path / "roi.npy", g)
    assert m.shape == g.shape == (24, 6, 6)
    assert m[:, :3].all() and not m[:, 3:].any()
    np.save(tmp_path / "bad.npy", roi[:, :, :5])
    with pytest.raises(BonesimError, match=r"shape \(20, 12, 5\) but the image has \(20, 12, 12\)"):
        import_roi(tmp_path / "bad.npy", g)
    np.save(tmp_path / "empty.npy", np.zeros_like(roi))
    with pytest.raises(BonesimError, match="selects no voxel"):
        import_roi(tmp_path / "empty.npy", g)


def test_cli_mask_refusals(tmp_path):
    p, _ = two_phase(tmp_path)
    np.save(tmp_path / "small.npy", np.ones((5, 5, 5), np.uint8))
    base = ("import", p, tmp_path / "b.h5", "--voxel-size", "10", "--threshold", "50", "--mask")
    for mask, words in ((tmp_path / "small.npy", "input's shape"), (tmp_path / "nope.npy", "not found")):
        r = run(*base, mask)
        assert r.exit_code == 1 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "b.h5").exists()
