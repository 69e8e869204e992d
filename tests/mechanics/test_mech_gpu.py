"""GPU backend: the RawKernel product equals its host emulation; CPU and GPU solves agree within tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.mechanics import solve
from bonesim.mechanics.cupy_backend import dense_scale, emulate_matvec, to_dense
from bonesim.mechanics.operator import VoxelMesh

pytestmark = pytest.mark.gpu


def test_rawkernel_equals_host_emulation():
    import cupy as cp

    from bonesim.mechanics.cupy_backend import DeviceOperator

    rng = np.random.default_rng(0)
    mod = np.where(rng.random((9, 7, 8)) < 0.6, rng.uniform(500, 10000, (9, 7, 8)), 0.0)
    mesh = VoxelMesh.from_modulus(mod, 0.02)
    free = to_dense(mesh, (rng.random((mesh.n_nodes, 3)) > 0.2).astype(float))
    x = to_dense(mesh, rng.standard_normal((mesh.n_nodes, 3))) * free
    op = DeviceOperator(dense_scale(mesh), free, 0.3)
    y = cp.asnumpy(op(cp.asarray(x)))
    ref = emulate_matvec(dense_scale(mesh), x, free, 0.3)
    assert np.allclose(y, ref, rtol=1e-12, atol=1e-12 * abs(ref).max())


@pytest.mark.parametrize("preconditioner", ["gmg", "jacobi"])
@pytest.mark.parametrize("axis", ["z", "x"])
def test_cpu_and_gpu_agree_within_tolerance(axis, preconditioner):
    rng = np.random.default_rng(1)
    bone = np.where(rng.random((24, 24, 24)) < 0.6, 255, 0).astype(np.uint8)
    cpu = solve(bone, axis, voxel_size_um=20, backend="numpy", tol=1e-8)
    gpu = solve(bone, axis, voxel_size_um=20, backend="cupy", tol=1e-8, preconditioner=preconditioner)
    assert gpu.backend == "cupy" and gpu.converged
    assert gpu.apparent_modulus_mpa == pytest.approx(cpu.apparent_modulus_mpa, rel=1e-6)
    assert gpu.strain_energy_j == pytest.approx(gpu.external_work_j, rel=1e-6)
