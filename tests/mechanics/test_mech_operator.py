"""Element and operator: symmetry, positive definiteness, rigid-body null space, kernel emulation."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.mechanics.cupy_backend import dense_scale, emulate_matvec, from_dense, to_dense
from bonesim.mechanics.element import ke_unit
from bonesim.mechanics.operator import StiffnessOperator, VoxelMesh


def random_mesh(shape=(5, 4, 6), seed=0, bone=0.6):
    rng = np.random.default_rng(seed)
    mod = np.where(rng.random(shape) < bone, rng.uniform(500, 10000, shape), 0.0)
    return VoxelMesh.from_modulus(mod, 0.02)


def rigid_modes(coords):
    """Six rigid-body modes (3 translations, 3 rotations) at node coordinates (n, 3)."""
    z, y, x = coords.T.astype(float)
    modes = [
        np.stack(v, axis=1)
        for v in (
            (np.ones_like(z), 0 * z, 0 * z),
            (0 * z, np.ones_like(z), 0 * z),
            (0 * z, 0 * z, np.ones_like(z)),
            (0 * z, -x, y),
            (x, 0 * z, -z),
            (-y, z, 0 * z),
        )
    ]
    return modes


def test_ke_symmetric_psd_with_six_zero_modes():
    ke = ke_unit(0.3)
    w = np.linalg.eigvalsh(ke)
    assert np.allclose(ke, ke.T, atol=0)
    assert np.sum(np.abs(w) < 1e-12 * w.max()) == 6  # exactly the rigid-body modes
    assert w.min() > -1e-12 * w.max()


def test_rigid_body_modes_give_no_force():
    mesh = random_mesh()
    op = StiffnessOperator(mesh, 0.3)
    scale = op.matvec(np.random.default_rng(1).random((mesh.n_nodes, 3))).__abs__().max()
    for m in rigid_modes(mesh.node_coords):
        assert abs(op.matvec(m)).max() < 1e-12 * scale


def test_operator_symmetric_and_positive_on_constrained_space():
    mesh = random_mesh(seed=2)
    op = StiffnessOperator(mesh, 0.25)
    rng = np.random.default_rng(3)
    for _ in range(5):
        u, v = rng.standard_normal((2, mesh.n_nodes, 3))
        a, b = np.vdot(v, op.matvec(u)), np.vdot(u, op.matvec(v))
        assert a == pytest.approx(b, rel=1e-12)
        assert np.vdot(u, op.matvec(u)) > 0
    # energy of a random vector is positive once the rigid modes are projected out
    modes = np.stack([m.ravel() for m in rigid_modes(mesh.node_coords)], axis=1)
    q, _ = np.linalg.qr(modes)
    u = rng.standard_normal(3 * mesh.n_nodes)
    u -= q @ (q.T @ u)
    assert np.vdot(u, op.matvec(u).ravel()) > 0


def test_operator_equals_assembled_matrix():
    mesh = random_mesh(seed=4)
    op = StiffnessOperator(mesh, 0.3)
    k = op.assemble()
    u = np.random.default_rng(5).standard_normal((mesh.n_nodes, 3))
    assert np.allclose(op.matvec(u).ravel(), k @ u.ravel(), rtol=0, atol=1e-10 * abs(k).max())
    assert abs(k - k.T).max() <= 1e-12 * abs(k).max()
    assert np.allclose(op.diagonal().ravel(), k.diagonal())


@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_emulation_equals_numpy_operator(seed):
    mesh = random_mesh((4, 5, 3), seed=seed, bone=0.5)
    op = StiffnessOperator(mesh, 0.3)
    rng = np.random.default_rng(seed + 10)
    u = rng.standard_normal((mesh.n_nodes, 3))
    freem = to_dense(mesh, (rng.random((mesh.n_nodes, 3)) > 0.2).astype(float))
    xd = to_dense(mesh, u) * freem
    yd = emulate_matvec(dense_scale(mesh), xd, freem, 0.3)
    ref = from_dense(mesh, freem) * op.matvec(from_dense(mesh, xd))
    assert np.allclose(from_dense(mesh, yd), ref, rtol=1e-12, atol=1e-9)
    # nodes touched only by marrow get nothing
    inactive = np.ones(int(np.prod(mesh.node_shape)), bool)
    inactive[mesh.node_grid] = False
    assert not yd.reshape(3, -1)[:, inactive].any()
