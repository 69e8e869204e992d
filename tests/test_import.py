"""Importers (every format round-trips values, dtype, voxel size) and segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bonesim.errors import BonesimError
from bonesim.io.importers import detect_format, import_volume, parse_crop
from bonesim.io.segment import segment
from bonesim.volume import Volume

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "lhdl_3155_D_4_bc" / "slices"


@pytest.fixture
def grey():
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, (6, 7, 8)).astype(np.int16)


# ------------------------------------------------------------ formats ----
def test_npy(tmp_path, grey):
    p = tmp_path / "g.npy"
    np.save(p, grey)
    v = import_volume(p, voxel_size_um=12.5)
    np.testing.assert_array_equal(v.data, grey)
    assert v.data.dtype == np.int16 and v.voxel_size_um == 12.5
    assert v.metadata["format"] == "npy" and v.metadata["voxel_size_source"] == "argument"
    with pytest.raises(BonesimError, match="carries no voxel size"):
        import_volume(p)


def test_tiff_multipage_with_imagej_spacing(tmp_path, grey):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "g.tif"
    tifffile.imwrite(
        p, grey, imagej=True, resolution=(1 / 15.0, 1 / 15.0), metadata={"spacing": 15.0, "unit": "um"}
    )
    v = import_volume(p)
    np.testing.assert_array_equal(v.data, grey)
    assert v.data.dtype == np.int16
    assert v.voxel_size_um == pytest.approx(15.0)
    assert v.metadata["voxel_size_source"] == "file"


def test_tiff_folder_natural_order(tmp_path, grey):
    tifffile = pytest.importorskip("tifffile")
    d = tmp_path / "slices"
    d.mkdir()
    for i, plane in enumerate(grey):  # s_2 must come before s_10
        tifffile.imwrite(d / f"s_{i * 4}.tif", plane)
    v = import_volume(d, voxel_size_um=10)
    np.testing.assert_array_equal(v.data, grey)
    assert v.metadata["slices"] == len(grey)
    tifffile.imwrite(d / "s_99.tif", grey[0, :3])
    with pytest.raises(BonesimError, match="has shape"):
        import_volume(d, voxel_size_um=10)


def test_tiff_anisotropic_refused(tmp_path, grey):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "a.tif"
    tifffile.imwrite(
        p, grey, imagej=True, resolution=(1 / 10.0, 1 / 10.0), metadata={"spacing": 30.0, "unit": "um"}
    )
    with pytest.raises(BonesimError, match="anisotropic"):
        import_volume(p)
    assert import_volume(p, voxel_size_um=10).voxel_size_um == 10


def test_metaimage_written_by_hand(tmp_path, grey):
    """A .mhd header + .raw written here (not by the reader's library)."""
    (tmp_path / "g.raw").write_bytes(grey.astype("<i2").tobytes())
    z, y, x = grey.shape
    (tmp_path / "g.mhd").write_text(
        "ObjectType = Image\nNDims = 3\n"
        f"DimSize = {x} {y} {z}\nElementSpacing = 0.0195 0.0195 0.0195\n"
        "ElementType = MET_SHORT\nElementByteOrderMSB = False\nElementDataFile = g.raw\n"
    )
    v = import_volume(tmp_path / "g.mhd")
    np.testing.assert_array_equal(v.data, grey)
    assert v.data.dtype == np.int16
    assert v.voxel_size_um == pytest.approx(19.5)


def test_nifti_axis_order_and_units(tmp_path, grey):
    nib = pytest.importorskip("nibabel")
    img = nib.Nifti1Image(np.transpose(grey, (2, 1, 0)), np.diag([0.02, 0.02, 0.02, 1]))  # x, y, z index
    img.header.set_xyzt_units("mm")
    p = tmp_path / "g.nii.gz"
    nib.save(img, p)
    v = import_volume(p)
    np.testing.assert_array_equal(v.data, grey)
    assert v.data.dtype == np.int16
    assert v.voxel_size_um == pytest.approx(20.0)


def test_nifti_written_by_simpleitk(tmp_path, grey):
    """SimpleITK takes a zyx array; nibabel (the reader) sees xyz: the transpose must undo it."""
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.GetImageFromArray(grey)
    img.SetSpacing((0.01, 0.01, 0.01))
    sitk.WriteImage(img, str(tmp_path / "s.nii"))
    v = import_volume(tmp_path / "s.nii")
    np.testing.assert_array_equal(v.data, grey)
    assert v.voxel_size_um == pytest.approx(10.0)


def test_dicom_series(tmp_path, grey):
    """Slices written by SimpleITK in shuffled file order; pydicom reads and sorts by position."""
    sitk = pytest.importorskip("SimpleITK")
    pytest.importorskip("pydicom")
    d = tmp_path / "dcm"
    d.mkdir()
    order = [3, 0, 5, 1, 4, 2]
    uid = "1.2.826.0.1.3680043.2.1125.1"
    for name_i, k in enumerate(order):
        sl = sitk.GetImageFromArray(grey[k : k + 1].astype(np.int16))
        sl.SetSpacing((0.025, 0.025, 0.025))
        sl.SetOrigin((0.0, 0.0, 0.025 * k))
        sl.SetMetaData("0020|000e", uid)
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0060", "CT")
        sl.SetMetaData("0020|0032", f"0\\0\\{0.025 * k}")  # ImagePositionPatient (mm)
        sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")  # ImageOrientationPatient
        sl.SetMetaData("0028|0030", "0.025\\0.025")  # PixelSpacing (mm)
        sl.SetMetaData("0018|0050", "0.025")  # SliceThickness
        sl.SetMetaData("0028|1052", "0")
        sl.SetMetaData("0028|1053", "1")
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(d / f"img{name_i:03d}.dcm"))
        writer.Execute(sl)
    v = import_volume(d)
    np.testing.assert_array_equal(v.data, grey)
    assert v.voxel_size_um == pytest.approx(25.0)
    assert detect_format(d) == "dicom"


def test_scanco_aim(tmp_path, grey):
    aim = pytest.importorskip("py_aimio", reason="aimio-py not installed (pip install aimio-py)")
    p = tmp_path / "g.aim"
    aim.write_aim(str(p), grey, meta={"element_size": (0.0195, 0.0195, 0.0195)})
    v = import_volume(p)
    np.testing.assert_array_equal(v.data, grey)
    assert v.data.dtype == np.int16
    assert v.voxel_size_um == pytest.approx(19.5)


def test_scanco_missing_reader_names_package(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "py_aimio", None)  # import fails as if not installed
    (tmp_path / "x.isq").write_bytes(b"\0" * 600)
    with pytest.raises(BonesimError, match="aimio-py"):
        import_volume(tmp_path / "x.isq", voxel_size_um=10)


# ------------------------------------------------- crop, downsample, bad ----
def test_crop_and_downsample(tmp_path):
    a = np.arange(8 * 8 * 8, dtype=np.uint16).reshape(8, 8, 8)
    np.save(tmp_path / "a.npy", a)
    v = import_volume(tmp_path / "a.npy", voxel_size_um=10, crop=parse_crop("2:6,:,1:"))
    np.testing.assert_array_equal(v.data, a[2:6, :, 1:])
    v = import_volume(tmp_path / "a.npy", voxel_size_um=10, crop=[(0, 4), (0, 4), (0, 4)], downsample=2)
    assert v.shape == (2, 2, 2) and v.voxel_size_um == 20 and v.data.dtype == np.float32
    assert v.data[1, 1, 1] == pytest.approx(a[2:4, 2:4, 2:4].mean())
    with pytest.raises(BonesimError, match="crop"):
        import_volume(tmp_path / "a.npy", voxel_size_um=10, crop=[(5, 2), (0, 4), (0, 4)])
    with pytest.raises(BonesimError, match="downsample"):
        import_volume(tmp_path / "a.npy", voxel_size_um=10, downsample=0)
    with pytest.raises(BonesimError, match="three ranges"):
        parse_crop("1:2,3:4")


@pytest.mark.parametrize("shape", [(5, 5), (2, 3, 4, 5)])
def test_refuses_2d_4d(tmp_path, shape):
    np.save(tmp_path / "a.npy", np.zeros(shape))
    with pytest.raises(BonesimError, match="3-D volume"):
        import_volume(tmp_path / "a.npy", voxel_size_um=10)


def test_refuses_nan_and_bad_paths(tmp_path):
    a = np.zeros((3, 3, 3))
    a[1, 1, 1] = np.nan
    np.save(tmp_path / "a.npy", a)
    with pytest.raises(BonesimError, match="NaN or infinite"):
        import_volume(tmp_path / "a.npy", voxel_size_um=10)
    with pytest.raises(BonesimError, match="not found"):
        import_volume(tmp_path / "missing.npy", voxel_size_um=10)
    with pytest.raises(BonesimError, match="no TIFF slices or DICOM"):
        import_volume(tmp_path, voxel_size_um=10)
    (tmp_path / "a.xyz").write_text("?")
    with pytest.raises(BonesimError, match="cannot tell the format"):
        import_volume(tmp_path / "a.xyz", voxel_size_um=10)
    with pytest.raises(ValueError, match="voxel_size_um"):
        import_volume(tmp_path / "a.npy", voxel_size_um=-1)


# --------------------------------------------------------- segmentation ----
def _two_level(shape=(16, 16, 16)):
    g = np.full(shape, 20.0, np.float32)
    g[4:12, 4:12, 4:12] = 200.0
    return g


def test_segment_binary_threshold_and_otsu():
    g = _two_level()
    for th in (100.0, "otsu"):
        s = segment(Volume(g, 10), th)
        assert s.data.dtype == np.uint8 and set(np.unique(s.data)) == {0, 255}
        assert s.bv_tv == pytest.approx(512 / 4096)
    assert 20 <= segment(Volume(g, 10), "otsu").metadata["segmentation"]["threshold"] < 200


def test_segment_keep_modes():
    g = _two_level()
    g[0, 0, 0:2] = 200  # a two-voxel speck
    assert segment(Volume(g, 10), 100, keep="largest").data.sum() // 255 == 512
    assert segment(Volume(g, 10), 100, keep="all").data.sum() // 255 == 514
    assert segment(Volume(g, 10), 100, keep="specks", min_speck_voxels=3).data.sum() // 255 == 512
    assert segment(Volume(g, 10), 100, keep="specks", min_speck_voxels=2).data.sum() // 255 == 514


def test_segment_partial_volume():
    g = _two_level()
    g[4:12, 4:12, 12] = 110.0  # a half-bone layer: (110 - 20) / (200 - 20) = 0.5
    s = segment(Volume(g, 10), 100, partial_volume=(20, 200))
    assert s.data[8, 8, 12] == 128  # rint(0.5 * 255)
    assert s.data[8, 8, 8] == 255 and s.data[0, 0, 0] == 0
    assert s.bv_tv == pytest.approx((512 * 255 + 64 * 128) / (4096 * 255))
    with pytest.raises(BonesimError, match="marrow_level < bone_level"):
        segment(Volume(g, 10), 100, partial_volume=(200, 20))


def test_segment_refusals():
    g = _two_level()
    with pytest.raises(BonesimError, match="outside the grey-value range"):
        segment(Volume(g, 10), 250)
    with pytest.raises(BonesimError, match="outside the grey-value range"):
        segment(Volume(g, 10), 5)
    with pytest.raises(BonesimError, match="constant"):
        segment(Volume(np.ones((4, 4, 4), np.float32), 10))
    with pytest.raises(ValueError, match="keep"):
        segment(Volume(g, 10), 100, keep="biggest")


def test_segment_smoothing_removes_noise():
    rng = np.random.default_rng(0)
    g = _two_level((24, 24, 24)) + rng.normal(0, 40, (24, 24, 24)).astype(np.float32)
    noisy = segment(Volume(g, 10), 110, keep="all")
    smooth = segment(Volume(g, 10), 110, sigma=1, keep="all")
    truth = _two_level((24, 24, 24)) > 110
    err = [np.count_nonzero((s.data > 0) != truth) for s in (noisy, smooth)]
    assert err[1] < err[0] / 3


# ---------------------------------------------------------- real sample ----
@pytest.mark.skipif(not SAMPLE.is_dir(), reason="real sample not present")
def test_real_sample_reference_figures():
    """Figures from data/lhdl_3155_D_4_bc/README.md (independent re-computation)."""
    v = import_volume(SAMPLE, voxel_size_um=19.5)
    assert v.shape == (200, 200, 200) and v.data.dtype == np.uint8
    s63 = segment(v, 63, sigma=1)
    assert s63.bv_tv == pytest.approx(0.234, abs=0.001)
    so = segment(v, "otsu", sigma=1)
    assert so.metadata["segmentation"]["threshold"] == pytest.approx(80.9, abs=0.1)
    assert so.bv_tv == pytest.approx(0.194, abs=0.001)
