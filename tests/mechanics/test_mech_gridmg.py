"""The device solver's multigrid (dense grids, re-discretised levels), run on the host with the emulated kernel."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim import phantom
from bonesim.mechanics import cupy_backend as CB
from bonesim.mechanics import gridmg as G
from bonesim.mechanics import results as res
from bonesim.mechanics import solve
from bonesim.mechanics import solver as S
from bonesim.mechanics.api import _load_path, modulus_field
from bonesim.mechanics.loads import Uniaxial, constraints
from bonesim.mechanics.operator import StiffnessOperator, VoxelMesh


def _mesh(shape=(7, 6, 5), seed=1):
    rng = np.random.default_rng(seed)
    mod = np.where(rng.random(shape) < 0.6, 1000.0, 0.0) * rng.integers(1, 4, shape)
    return mod, VoxelMesh.from_modulus(mod, 0.02)


@pytest.mark.parametrize("shape", [(7, 6, 5), (8, 8, 8), (5, 9, 4)])
def test_dense_transfers_are_the_trilinear_prolongation_and_its_transpose(shape):
    mod, fine = _mesh(shape)
    coarse = VoxelMesh.from_modulus(S.coarsen_modulus(mod), 0.04)
    p = S.prolongation(fine, coarse)
    rng = np.random.default_rng(2)
    xc = rng.standard_normal((coarse.n_nodes, 3))
    got = CB.from_dense(fine, G.prolong(CB.to_dense(coarse, xc), fine.node_shape))
    assert np.abs(got - p @ xc).max() <= 1e-15
    xf = rng.standard_normal((fine.n_nodes, 3))
    got = CB.from_dense(coarse, G.restrict(CB.to_dense(fine, xf), coarse.node_shape))
    assert np.abs(got - p.T @ xf).max() <= 1e-14


def test_dense_diagonal_and_active_nodes_match_the_element_operator():
    _, mesh = _mesh((9, 8, 7))
    s = CB.dense_scale(mesh)
    d = StiffnessOperator(mesh, 0.3).diagonal()
    assert np.abs(CB.from_dense(mesh, G.dense_diagonal(s, 0.3)) - d).max() <= 1e-14 * d.max()
    assert np.array_equal(np.flatnonzero(G.active_nodes(s)), mesh.node_grid)


def _case(n=20, axis="z"):
    bone = phantom.gyroid((n, n, n), n / 2, 0.35)
    load = Uniaxial(axis)
    kept, labels, _ = _load_path(bone, load)
    mesh = VoxelMesh.from_modulus(modulus_field(np.where(kept, bone, 0), 10.0, 2.0), 0.02)
    node_labels = np.zeros(mesh.n_nodes, dtype=np.int64)
    node_labels[mesh.conn] = labels.ravel()[mesh.elements][:, None]
    return bone, load, mesh, constraints(mesh, load, node_labels)


def _emulated(s, free):
    return CB.EmulatedOperator(s, free, 0.3)


def test_grid_multigrid_is_a_symmetric_preconditioner():
    _, _, mesh, bc = _case()
    free = CB.to_dense(mesh, (~bc.fixed).astype(float))
    mg = G.GridMultigrid(CB.dense_modulus(mesh), mesh.voxel_mm, 0.3, free, _emulated, coarsest_nodes=300)
    assert len(mg.levels) >= 3
    rng = np.random.default_rng(5)
    v, w = (rng.standard_normal(free.shape) * free for _ in range(2))
    mv, mw = mg(v), mg(w)
    assert abs(np.vdot(w, mv) - np.vdot(v, mw)) <= 1e-10 * abs(np.vdot(v, mv))
    assert np.vdot(v, mv) > 0 and np.vdot(w, mw) > 0
    assert np.all(mv[free == 0] == 0)


@pytest.mark.parametrize("axis", ["z", "x"])
def test_device_solver_code_on_the_host_agrees_with_the_numpy_backend(axis, monkeypatch):
    bone, load, mesh, bc = _case(14, axis=axis)
    ref = solve(bone, load, voxel_size_um=20, backend="numpy", tol=1e-9)
    monkeypatch.setattr(G, "COARSEST_NODES", 150)
    iters = {}
    for pre in ("gmg", "jacobi"):
        u, f, it, rel, conv = CB.grid_solve(
            mesh, 0.3, bc, _emulated, np, tol=1e-9, maxiter=20000, preconditioner=pre
        )
        assert conv and rel <= 1e-9
        e_app = res.apparent_modulus(
            res.reaction_force(f, bc.top, load.axis_index),
            mesh.shape,
            mesh.voxel_mm,
            load.axis_index,
            load.strain,
        )
        assert e_app == pytest.approx(ref.apparent_modulus_mpa, rel=1e-7)
        assert np.abs(u - ref.displacement).max() <= 1e-6 * np.abs(ref.displacement).max()
        iters[pre] = it
    assert iters["gmg"] * 5 < iters["jacobi"]


def test_grid_solve_refuses_an_unknown_preconditioner():
    _, _, mesh, bc = _case(12)
    with pytest.raises(Exception, match="preconditioner"):
        CB.grid_solve(mesh, 0.3, bc, _emulated, np, tol=1e-6, maxiter=10, preconditioner="amg")
