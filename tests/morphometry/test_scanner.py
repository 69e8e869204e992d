"""Frames measured as a scanner would image them (``analyze(psf_um=...)``, bonesim.morphometry.scanner)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bonesim.errors import InputError
from bonesim.io.hdf5 import write_volume
from bonesim.morphometry import analyze
from bonesim.morphometry.scanner import scanner_view
from bonesim.volume import Volume

H = 20.0


def pitted_block(seed: int = 0) -> np.ndarray:
    """A 12-voxel-thick slab whose voxels hold 200-255 of bone, with one in 30 dropped to 100: sub-voxel
    deficits scattered through it, which binarise into one-voxel pockets."""
    rng = np.random.default_rng(seed)
    b = np.zeros((24, 32, 32), np.uint8)
    b[6:18] = rng.integers(200, 256, size=(12, 32, 32))
    pits = rng.random((12, 32, 32)) < 1 / 30
    b[6:18][pits] = 100
    return b


def test_scanner_view_keeps_the_bone_and_removes_sub_voxel_pockets():
    from bonesim.morphometry.topology import particle_counts

    b = pitted_block()
    v = scanner_view(b, H, 20.0)
    assert v.dtype == np.uint8 and v.shape == b.shape
    assert abs(v.astype(np.int64).sum() - b.astype(np.int64).sum()) <= 0.01 * b.astype(np.int64).sum()
    assert particle_counts(b > 127.5).n_cavities > 100
    assert particle_counts(v > 127.5).n_cavities == 0
    assert scanner_view(b, H, 0.0) is b
    # the same physical blur at another voxel size: sigma in µm
    assert np.array_equal(scanner_view(b, 2 * H, 40.0), v)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_psf_is_refused(bad):
    with pytest.raises(InputError, match="psf_um"):
        scanner_view(pitted_block(), H, bad)


def test_analyze_with_a_psf_writes_its_own_table(tmp_path):
    p = tmp_path / "slab.h5"
    write_volume(p, Volume(pitted_block(), H), xdmf=False)
    raw = analyze(p, write=False)
    seen = analyze(p, psf_um=20.0)
    assert raw["n_cavities"][0] > 100 and seen["n_cavities"][0] == 0
    assert seen["bv_tv"][0] == pytest.approx(raw["bv_tv"][0], rel=0.01)
    with h5py.File(p, "r") as f:
        assert f["tables/morphometry_psf"].attrs["psf_um"] == 20.0
        assert f["tables/morphometry_psf/n_cavities"][0] == 0
        assert "morphometry" not in f["tables"] and "metrics" not in f["tables"]
    with pytest.raises(InputError, match="psf_um"):
        analyze(p, psf_um=-2.0, write=False)
