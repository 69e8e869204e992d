"""Phantoms: analytic shapes with known answers; the trabecular network's targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonesim import phantom as ph
from tests._thickness import mean_local_thickness


# ------------------------------------------------- the thickness check ----
@pytest.mark.parametrize("t", [4, 6, 9])
def test_thickness_estimate_on_plates(t):
    assert mean_local_thickness(ph.plate((32, 32, 32), t) > 0) == pytest.approx(t, abs=1)


def test_thickness_estimate_on_rod_and_ball():
    assert mean_local_thickness(ph.rod((16, 32, 32), 10) > 0) == pytest.approx(10, abs=1.2)
    assert mean_local_thickness(ph.sphere((32, 32, 32), 10) > 0) == pytest.approx(21, abs=2.5)


# -------------------------------------------------------- analytic ones ----
def test_analytic_shapes():
    assert (ph.plate((10, 6, 6), 4) > 0).sum() == 4 * 36
    assert ph.rod((5, 11, 11), 5).dtype == np.uint8
    assert (ph.sphere((9, 9, 9), 2) > 0).sum() == 33  # lattice points with |x| <= 2
    g = ph.gyroid((32, 32, 32), 16, ph.gyroid_sheet_level_for(0.3), sheet=True)
    assert g.mean() / 255 == pytest.approx(0.3, abs=0.02)


def test_lattice_loops_is_first_betti_number():
    vol = ph.lattice((40, 40, 40), 3, 3) > 0
    _, comps = ndimage.label(vol, np.ones((3, 3, 3)))
    _, cavities = ndimage.label(~vol)
    # Euler characteristic from voxel complex counts (vertices - edges + faces - cubes)
    from skimage.measure import euler_number

    chi = euler_number(vol, connectivity=3)
    assert comps == 1 and cavities == 1
    assert comps - chi + (cavities - 1) == ph.lattice_loops(3) == 28


# ------------------------------------------------------------ trabecular ----
@pytest.mark.parametrize("bvtv", [0.15, 0.25])
def test_trabecular_hits_bvtv_and_is_one_piece(bvtv):
    vol = ph.trabecular((48, 48, 48), 40, bvtv=bvtv, seed=3)
    assert vol.dtype == np.uint8 and set(np.unique(vol)) <= {0, 255}
    bone = vol > 0
    assert bone.mean() == pytest.approx(bvtv, abs=0.01)
    _, n_bone = ndimage.label(bone, np.ones((3, 3, 3)))
    marrow, n_marrow = ndimage.label(~bone)
    assert n_bone == 1
    # no marrow pocket sealed inside the volume: every marrow space reaches a face of the crop
    faces = np.concatenate(
        [marrow[i].ravel() for i in (0, -1)]
        + [marrow[:, i].ravel() for i in (0, -1)]
        + [marrow[:, :, i].ravel() for i in (0, -1)]
    )
    assert set(range(1, n_marrow + 1)) <= set(np.unique(faces).tolist())


def test_trabecular_is_reproducible_and_seeded():
    a = ph.trabecular(40, 40, seed=5)
    b = ph.trabecular(40, 40, seed=5)
    c = ph.trabecular(40, 40, seed=6)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.1


def test_trabecular_default_thickness_and_spacing_are_human():
    """Tb.Th 150-250 um and Tb.Sp 500-1000 um at BV/TV 0.2 (Hildebrand et al. 1999)."""
    vs = 30.0
    bone = ph.trabecular((80, 80, 80), vs, bvtv=0.2, seed=0) > 0
    th = mean_local_thickness(bone, vs)
    sp = mean_local_thickness(~bone, vs)
    assert 150 <= th <= 250, th
    assert 500 <= sp <= 1000, sp


def test_trabecular_target_thickness_moves_thickness():
    vs = 25.0
    thin = mean_local_thickness(ph.trabecular((64, 64, 64), vs, seed=1, tb_th_um=125) > 0, vs)
    thick = mean_local_thickness(ph.trabecular((64, 64, 64), vs, seed=1, tb_th_um=250) > 0, vs)
    assert thick > 1.6 * thin
    assert thick == pytest.approx(250, rel=0.25)


def test_trabecular_plate_fraction_makes_plates():
    """More plates: more bone spread flat, i.e. a larger share of voxels in plate-like regions.

    Plate-likeness from the structure tensor would be overkill; a plate has bone
    neighbours across a plane, a rod only along a line, so the mean number of
    bone voxels in a 5x5x5 box around a bone voxel is larger for plates.
    """
    counts = []
    for pf in (0.0, 1.0):
        bone = ph.trabecular((48, 48, 48), 40, seed=2, plate_fraction=pf) > 0
        local = ndimage.uniform_filter(bone.astype(np.float32), 5)
        counts.append(float(local[bone].mean()))
    assert counts[1] > counts[0] + 0.03


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bvtv": 0.9}, "bvtv"),
        ({"voxel_size_um": -1}, "voxel_size_um"),
        ({"plate_fraction": 2}, "plate_fraction"),
        ({"tb_th_um": 10}, "two voxels"),
        ({"shape": (2, 40, 40)}, "shape"),
    ],
)
def test_trabecular_refusals(kwargs, match):
    args = {"shape": 40, "voxel_size_um": 40, **kwargs}
    with pytest.raises(ValueError, match=match):
        ph.trabecular(**args)


def test_trabecular_has_no_solid_blocks_at_crop_faces():
    """Marrow cut off by the volume's faces stays marrow (it once became a solid block)."""

    bone = ph.trabecular((64, 64, 64), voxel_size_um=25, bvtv=0.25, seed=0) > 0
    radius_vox = ndimage.distance_transform_edt(bone).max()
    # default Tb.Th 200 µm = 8 voxels, i.e. a radius of 4; nodes where rods meet are a bit thicker
    assert radius_vox < 1.6 * 4, radius_vox
