"""Warm start: re-solving on slightly remodelled bone from the previous displacement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bonesim.errors import BonesimError
from bonesim.mechanics import solve
from bonesim.mechanics.api import warm_start


def _bone(n=24, seed=3):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 1.5)
    return np.where(field > np.quantile(field, 0.55), 255, 0).astype(np.uint8)


def _remove_surface_voxels(bone, k, seed=0):
    """Turn ``k`` bone voxels that touch marrow (face neighbours) into marrow."""
    mask = bone > 0
    surface = mask & ~ndimage.binary_erosion(mask, border_value=1)
    idx = np.flatnonzero(surface)
    rng = np.random.default_rng(seed)
    out = bone.copy().ravel()
    out[rng.choice(idx, size=k, replace=False)] = 0
    return out.reshape(bone.shape)


def run(bone, **kw):
    return solve(bone, "z", voxel_size_um=20.0, backend="numpy", tol=1e-8, **kw)


def test_warm_start_after_removing_surface_voxels_needs_fewer_iterations():
    bone = _bone()
    before = run(bone)
    changed = _remove_surface_voxels(bone, 12)
    assert (changed > 0).sum() == (bone > 0).sum() - 12
    cold = run(changed)
    warm = run(changed, x0=before)
    assert cold.converged and warm.converged
    assert warm.mesh.n_nodes != before.mesh.n_nodes or warm.n_elements != before.n_elements
    rel = abs(warm.apparent_modulus_mpa - cold.apparent_modulus_mpa) / cold.apparent_modulus_mpa
    assert rel < 1e-5
    assert warm.iterations < cold.iterations
    # the SED map (what the remodeling reads) agrees too
    assert np.allclose(warm.sed, cold.sed, rtol=1e-4, atol=1e-6 * float(cold.sed.max()))


def test_warm_start_from_the_same_solution_needs_no_iteration():
    bone = _bone(16, seed=5)
    first = run(bone)
    again = run(bone, x0=first)
    assert again.iterations <= 1
    assert again.apparent_modulus_mpa == pytest.approx(first.apparent_modulus_mpa, rel=1e-8)
    # the same start passed as an array on the mesh, or on the dense node grid
    arr = run(bone, x0=first.displacement)
    dense = np.zeros((*first.mesh.node_shape, 3))
    dense.reshape(-1, 3)[first.mesh.node_grid] = first.displacement
    grid = run(bone, x0=dense)
    assert arr.iterations == again.iterations == grid.iterations


def test_warm_start_maps_nodes_and_zeroes_new_ones():
    bone = _bone(12, seed=7)
    first = run(bone)
    grown = bone.copy()
    grown[(bone == 0) & ndimage.binary_dilation(bone > 0)] = 255  # every new node is on new bone
    second = run(grown)
    mapped = warm_start(first, second.mesh)
    old = dict(zip(first.mesh.node_grid.tolist(), range(first.mesh.n_nodes), strict=True))
    for i, g in enumerate(second.mesh.node_grid.tolist()):
        expect = first.displacement[old[g]] if g in old else np.zeros(3)
        assert np.array_equal(mapped[i], expect)


def test_warm_start_refusals():
    bone = _bone(12, seed=7)
    no_fields = run(bone, keep_fields=False)
    with pytest.raises(BonesimError, match="keep_fields"):
        run(bone, x0=no_fields)
    with pytest.raises(BonesimError, match="volume"):
        run(bone[:, :, :10], x0=run(bone))
    with pytest.raises(BonesimError, match="shape"):
        run(bone, x0=np.zeros((5, 3)))
