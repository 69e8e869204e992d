"""The block-wise indices of `analyze` (issue 15 item 2) against their whole-volume definitions.

BS and SMI are computed slab by slab, χ from a slab-wise configuration histogram,
Tb.Th/Tb.Sp statistics from the squared radii; each is checked here against the
whole-volume computation it replaced, on volumes of several slabs with a
partial last one.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonesim import phantom
from bonesim.morphometry import basic, thickness, topology
from bonesim.morphometry.indices import _thickness_stats_squared
from bonesim.volume import BONE_LEVEL

H = 20.0


@pytest.fixture(scope="module")
def vols() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    noisy = ndimage.gaussian_filter(rng.random((75, 30, 28)), 2.0)
    noisy = np.clip((noisy - noisy.min()) / np.ptp(noisy) * 255, 0, 255).astype(np.uint8)
    return [phantom.gyroid((70, 36, 40), 18), noisy, phantom.plate((67, 20, 20), 5)]


def _whole_smi(data: np.ndarray, h: float) -> float:
    """The whole-volume SMI of before the slabs (smoothing, one mesh, one derivative)."""
    raw = np.asarray(data, np.float32)
    field = ndimage.gaussian_filter(raw, basic.SMI_SMOOTHING_VOXELS, mode="nearest")
    verts, faces = basic.surface_mesh(field, h)
    if len(faces) == 0:
        field = raw
        verts, faces = basic.surface_mesh(field, h)
    bs = basic.mesh_area(verts, faces)
    bv = float((field > BONE_LEVEL).sum()) * h**3
    return 6.0 * bv * basic.surface_derivative(verts, faces, field, h) / bs**2


def test_bs_and_smi_by_slabs_equal_the_whole_mesh(vols):
    for v in vols:
        whole_bs = basic.mesh_area(*basic.surface_mesh(v, H))
        assert basic.bone_surface_um2(v, H) == pytest.approx(whole_bs, rel=1e-9)
        # the vertices are float32: slab-local coordinates round differently
        assert basic.structure_model_index(v, H) == pytest.approx(_whole_smi(v, H), rel=1e-5, abs=1e-7)


def test_smi_of_an_inverted_structure_flips_with_one_vote(vols):
    v = vols[0]
    assert basic.structure_model_index(255 - v, H) == pytest.approx(
        _whole_smi(255 - v, H), rel=1e-5, abs=1e-7
    )


def test_euler_by_slabs_is_skimages_integer():
    from skimage.measure import euler_number

    rng = np.random.default_rng(2)
    for shape in [(1, 4, 5), (31, 7, 6), (33, 9, 8), (70, 12, 11)]:
        for p in (0.2, 0.5, 0.8):
            m = rng.random(shape) < p
            assert topology.euler_3d(m) == int(euler_number(m, connectivity=3))


def test_thickness_statistics_from_squared_radii(vols):
    for v in vols[:2]:
        for phase in (v > BONE_LEVEL, v <= BONE_LEVEL):
            ref = thickness.thickness_stats(thickness.local_thickness(phase, voxel_size_um=H)[phase], H)
            r2 = thickness.local_thickness_squared(phase)
            got = _thickness_stats_squared(r2, int(phase.size - phase.sum()), H)
            assert got.max_um == ref.max_um
            np.testing.assert_array_equal(got.hist_edges_um, ref.hist_edges_um)
            np.testing.assert_array_equal(got.hist_counts, ref.hist_counts)
            assert got.mean_um == pytest.approx(ref.mean_um, rel=1e-12)
            assert got.sd_um == pytest.approx(ref.sd_um, rel=1e-9)
