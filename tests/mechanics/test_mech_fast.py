"""The fast paths of the solver: compiled product, Galerkin coarse levels, both equal their references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bonesim.mechanics import solver as S
from bonesim.mechanics.operator import ElementOperator, StiffnessOperator, VoxelMesh


def _mesh(shape=(7, 6, 5), seed=1, fill=0.6):
    rng = np.random.default_rng(seed)
    mod = np.where(rng.random(shape) < fill, 1000.0, 0.0) * rng.integers(1, 4, shape)
    return mod, VoxelMesh.from_modulus(mod, 0.02)


def _p3(fine, coarse):
    return sp.kron(S.prolongation(fine, coarse), sp.eye(3)).tocsr()


def _need_compiled():
    from bonesim.mechanics import fast

    if fast.kernel() is None:
        pytest.skip("Numba is not installed or BONESIM_NUMBA=0")


def test_compiled_product_equals_numpy_product():
    _need_compiled()
    _, mesh = _mesh((9, 8, 7))
    op = StiffnessOperator(mesh, 0.3)
    assert op.compiled
    ref = StiffnessOperator(mesh, 0.3)
    ref.use_numpy()
    u = np.random.default_rng(2).standard_normal((mesh.n_nodes, 3))
    a, b = op.matvec(u), ref.matvec(u)
    assert np.abs(a - b).max() <= 1e-13 * np.abs(b).max()
    assert op.matvecs == ref.matvecs == 1


@pytest.mark.parametrize("layers", [1, 2, 4, 50])
def test_threaded_slab_product_has_the_serial_bits(layers):
    """Slabs of one parity share no node (even one layer thick): threaded == serial, bit for bit."""
    from bonesim.mechanics import fast

    _need_compiled()
    _, mesh = _mesh((9, 8, 7), seed=2)
    assert mesh.n_elements % fast.WIDTH  # exercises the partial last group
    op = StiffnessOperator(mesh, 0.3)
    args = (mesh.conn, np.ascontiguousarray(op.weights[:, 0]), np.ascontiguousarray(op.basis[0]))
    u = np.random.default_rng(4).standard_normal((mesh.n_nodes, 3))
    serial, threaded = (np.empty_like(u) for _ in range(2))
    slabs = fast.slabs(mesh.shape, mesh.elements, layers)
    assert slabs[0] == 0 and slabs[-1] == mesh.n_elements and np.all(np.diff(slabs) >= 0)
    assert slabs.size - 1 == -(-mesh.shape[0] // layers)
    fast.kernel()(u, *args, slabs, serial)
    fast.kernel(True)(u, *args, slabs, threaded)
    assert np.array_equal(threaded, serial)
    ref = StiffnessOperator(mesh, 0.3)
    ref.use_numpy()
    assert np.abs(serial - ref.matvec(u)).max() <= 1e-13 * np.abs(serial).max()


@pytest.mark.parametrize("storage", [np.float64, np.float32])
def test_threaded_packed_product_has_the_serial_bits(storage):
    from bonesim.mechanics import fast

    _need_compiled()
    mod, fine = _mesh((14, 12, 11), seed=3)
    coarse = VoxelMesh.from_modulus(S.coarsen_modulus(mod), 0.04)
    g = S.galerkin_operator(StiffnessOperator(fine, 0.3), coarse, storage=storage)
    x = np.random.default_rng(6).standard_normal((coarse.n_nodes, 3))
    slabs = fast.slabs(coarse.shape, coarse.elements, 1)
    assert slabs.size - 1 == coarse.shape[0] >= 6
    serial, threaded = (np.empty_like(x) for _ in range(2))
    fast.kernel_packed()(x, coarse.conn, g.packed, slabs, serial)
    fast.kernel_packed(True)(x, coarse.conn, g.packed, slabs, threaded)
    assert np.array_equal(threaded, serial)
    assert np.abs(serial.ravel() - g.assemble() @ x.ravel()).max() <= 1e-6 * np.abs(serial).max()


def test_product_bits_do_not_depend_on_the_thread_count():
    """The operator's product with Numba's threads at 1 and at 2 (and serial kernel): identical bits."""
    import numba

    from bonesim.mechanics import fast

    _need_compiled()
    _, mesh = _mesh((17, 9, 8), seed=7)
    u = np.random.default_rng(8).standard_normal((mesh.n_nodes, 3))
    n0 = numba.get_num_threads()
    outs = []
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            assert fast.parallel() == (n > 1)
            outs.append(StiffnessOperator(mesh, 0.3).matvec(u))
    finally:
        numba.set_num_threads(n0)
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])


@pytest.mark.parametrize("storage", [np.float64, np.float32])
def test_galerkin_coarse_operator_is_pt_k_p(storage):
    mod, fine = _mesh()
    fop = StiffnessOperator(fine, 0.3)
    c1 = S.coarsen_modulus(mod)
    cm1 = VoxelMesh.from_modulus(c1, 0.04)
    p1 = _p3(fine, cm1)
    ref1 = p1.T @ fop.assemble() @ p1
    g1 = S.galerkin_operator(fop, cm1, storage=storage)
    assert abs(g1.assemble() - ref1).max() <= 1e-14 * abs(ref1).max()
    x = np.random.default_rng(3).standard_normal((cm1.n_nodes, 3))
    rtol = 1e-6 if storage == np.float32 else 1e-13
    for compiled in (True, False):
        if not compiled:
            g1.use_numpy()
        y = g1.matvec(x).ravel()
        assert np.abs(y - ref1 @ x.ravel()).max() <= rtol * np.abs(ref1 @ x.ravel()).max()
    # the level below, built from the first coarse level
    cm2 = VoxelMesh.from_modulus(S.coarsen_modulus(c1), 0.08)
    p2 = _p3(cm1, cm2)
    ref2 = p2.T @ ref1 @ p2
    g2 = S.galerkin_operator(g1, cm2)
    assert abs(g2.assemble() - ref2).max() <= 1e-13 * abs(ref2).max()


def test_galerkin_of_uniform_bone_is_the_rediscretised_operator():
    mod = np.full((4, 4, 4), 1000.0)
    fine = VoxelMesh.from_modulus(mod, 0.02)
    coarse = VoxelMesh.from_modulus(S.coarsen_modulus(mod), 0.04)
    g = S.galerkin_operator(StiffnessOperator(fine, 0.3), coarse).assemble()
    r = StiffnessOperator(coarse, 0.3).assemble()
    assert abs(g - r).max() <= 1e-13 * abs(r).max()


def test_element_operator_needs_matrices():
    _, mesh = _mesh()
    with pytest.raises(ValueError):
        ElementOperator(mesh)


@pytest.mark.parametrize("coarse", S.COARSE_OPERATORS)
def test_both_coarse_operators_solve_the_same_system(coarse):
    mod, mesh = _mesh((20, 18, 16), seed=4, fill=0.7)
    free = np.ones((mesh.n_nodes, 3))
    coords = mesh.node_coords
    free[coords[:, 0] == 0] = 0.0  # clamp the bottom face
    old = S.COARSEST_NODES
    S.COARSEST_NODES = 300  # force three levels on this small mesh
    try:
        mg = S.Multigrid(mesh, mod, 0.3, free, coarse=coarse)
    finally:
        S.COARSEST_NODES = old
    assert len(mg.levels) >= 3
    lv = mg.levels[0]
    b = lv.free * np.random.default_rng(5).standard_normal((mesh.n_nodes, 3))
    out = S.pcg(lv.apply, b, mg, tol=1e-10, maxiter=500)
    assert out.converged
    k = lv.op.assemble()
    f = sp.diags(free.ravel())
    a = (f @ k @ f + sp.diags(1.0 - free.ravel())).tocsc()
    x = sp.linalg.spsolve(a, b.ravel())
    assert np.abs(out.x.ravel() - x).max() <= 1e-7 * np.abs(x).max()
    with pytest.raises(ValueError):
        S.Multigrid(mesh, mod, 0.3, free, coarse="nope")


def test_pack_unpack_round_trip():
    from bonesim.mechanics.operator import pack, unpack

    a = np.random.default_rng(6).standard_normal((5, 24, 24))
    a = a + a.transpose(0, 2, 1)
    assert pack(a).shape == (5, 300)
    assert np.array_equal(unpack(pack(a)), a)


def test_fine_product_switch(monkeypatch):
    _need_compiled()
    _, mesh = _mesh()
    monkeypatch.setenv("BONESIM_FINE_PRODUCT", "numpy")
    assert not StiffnessOperator(mesh, 0.3).compiled
    monkeypatch.setenv("BONESIM_FINE_PRODUCT", "compiled")
    assert StiffnessOperator(mesh, 0.3).compiled


def test_without_numba_the_operator_uses_numpy(monkeypatch):
    """No Numba (or BONESIM_NUMBA=0): no thread query, no compiled kernel, the NumPy product."""
    from bonesim.mechanics import fast

    monkeypatch.setattr(fast, "_numba", lambda: None)
    fast.kernel.cache_clear()
    fast.kernel_packed.cache_clear()
    try:
        assert fast.parallel() is False
        _, mesh = _mesh((6, 5, 4))
        op = StiffnessOperator(mesh, 0.3)
        assert not op.compiled
        u = np.random.default_rng(9).standard_normal((mesh.n_nodes, 3))
        assert np.isfinite(op.matvec(u)).all()
    finally:
        fast.kernel.cache_clear()
        fast.kernel_packed.cache_clear()
