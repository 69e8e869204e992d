"""The real sample ships segmented in the wheel: ``bonesim.io.sample`` and ``bonesim sample``."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import COMMANDS, main
from bonesim.errors import BonesimError
from bonesim.io import sample as smp
from bonesim.io.hdf5 import read_volume

ROOT = Path(__file__).resolve().parents[2]
HAVE_SLICES = len(smp.sample_slices()) == smp.N_SLICES
needs_slices = pytest.mark.skipif(not HAVE_SLICES, reason="the sample's slices are not in this checkout")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def slice_mask():
    pytest.importorskip("tifffile")
    if not HAVE_SLICES:
        pytest.skip("the sample's slices are not in this checkout")
    return smp.mask_from_slices()


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="not a source checkout")
def test_pyproject_ships_the_segmented_sample_with_its_licence():
    """Wheel-like check without a build: force-include names the copy, README and LICENSE."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    inc = cfg["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for name in (smp.SHIPPED, "README.md", "LICENSE"):
        src = f"data/{smp.NAME}/{name}"
        assert inc.get(src) == f"bonesim/_data/{smp.NAME}/{name}", src
        assert (ROOT / src).is_file(), src
    assert not any("slices" in k for k in inc)  # the 7.9 MB of slices stay out
    assert (ROOT / "data" / smp.NAME / smp.SHIPPED).stat().st_size < 3_000_000


def test_shipped_copy_is_bit_identical_to_the_slices(slice_mask):
    shipped = smp.load_shipped()
    assert shipped.dtype == bool and shipped.shape == (200, 200, 200)
    assert np.array_equal(shipped, slice_mask)
    assert np.array_equal(smp.real_sample(), np.where(slice_mask, 255, 0).astype(np.uint8))
    assert np.array_equal(smp.real_sample(source="slices"), smp.real_sample(source="shipped"))


def test_real_sample_from_the_wheel_copy_alone(monkeypatch):
    """No slices (an installed wheel): the default settings still work, others say why not."""
    monkeypatch.setattr(smp, "sample_slices", lambda: [])
    m = smp.real_sample_mask()
    assert m.shape == (200, 200, 200) and m.mean() == pytest.approx(0.2337, abs=5e-5)
    with pytest.raises(BonesimError, match="slices of a source checkout"):
        smp.real_sample_mask(threshold=80)
    with pytest.raises(BonesimError, match="segmented at sigma 1"):
        smp.real_sample_mask(sigma=2, source="shipped")


def test_damaged_copy_is_refused(tmp_path):
    m = np.zeros((8, 8, 8), bool)
    m[2:5, 2:5, 2:5] = True
    p = smp.save_shipped(m, tmp_path / "m.npz")
    assert np.array_equal(smp.load_shipped(p), m)
    with np.load(p) as z:
        parts = dict(z)
    parts["bits"] = parts["bits"].copy()
    parts["bits"][0] ^= 1
    np.savez_compressed(p, **parts)
    with pytest.raises(BonesimError, match="checksum"):
        smp.load_shipped(p)


def test_cli_sample_equals_slice_segmentation_and_keeps_provenance(tmp_path, slice_mask):
    out = tmp_path / "s.h5"
    r = run("sample", out)
    assert r.exit_code == 0, r.output
    assert "200x200x200 at 19.5 um" in r.output and "MIT" in r.output
    v = read_volume(out)
    assert v.voxel_size_um == 19.5
    assert np.array_equal(v.data, np.where(slice_mask, 255, 0).astype(np.uint8))
    meta = v.metadata["sample"]
    assert "MIT License" in meta["license_text"] and "10.5281/zenodo.7716943" in meta["readme"]
    assert v.metadata["segmentation"]["threshold"] == 63 and v.metadata["segmentation"]["sigma"] == 1
    r = run("info", out)
    assert r.exit_code == 0 and "BV/TV       0.2337" in r.output, r.output
    again = run("sample", out)  # the output policy: refuse without --overwrite
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_cli_sample_crop_is_one_component_and_simulates(tmp_path):
    from scipy import ndimage

    out = tmp_path / "c.h5"
    r = run("sample", out, "--crop", "24")
    assert r.exit_code == 0, r.output
    v = read_volume(out)
    assert v.shape == (24, 24, 24)
    full = smp.real_sample()[:24, :24, :24]
    assert np.all(v.data <= full)  # a subset of the crop of the full segmentation
    _, n = ndimage.label(v.data > 0, structure=np.ones((3, 3, 3)))
    assert n == 1
    r = run("simulate", out, tmp_path / "run.h5", "--backend", "numpy", "--years", "0.01")
    assert r.exit_code == 0, r.output


def test_cli_sample_grey_needs_the_slices(tmp_path, monkeypatch):
    monkeypatch.setattr(smp, "sample_slices", lambda: [])
    r = run("sample", tmp_path / "g.h5", "--grey")
    assert r.exit_code == 1 and "source checkout" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "g.h5").exists()
    r = run("sample", tmp_path / "g.h5", "--crop", "2")
    assert r.exit_code == 1 and "--crop" in r.output


@needs_slices
def test_cli_sample_grey_stores_the_raw_slices(tmp_path):
    pytest.importorskip("tifffile")
    out = tmp_path / "g.h5"
    assert run("sample", out, "--grey", "--crop", "16").exit_code == 0
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["volume/grey"][...], smp.sample_grey()[:16, :16, :16])


def test_sample_is_a_registered_command():
    assert COMMANDS["sample"] == "bonesim.cli.volume_cmds:sample"
    r = run("sample", "--help")
    assert r.exit_code == 0 and "Examples:" in r.output and "bonesim sample" in r.output
