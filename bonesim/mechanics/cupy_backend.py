"""CuPy backend: the stiffness product as a RawKernel (``kernels/matvec.cu``), PCG on the device.

The device works on the *dense* node grid: displacement vectors are
``(3, nz+1, ny+1, nx+1)`` float64, the per-voxel scale ``s = E·h`` is dense with
0 in marrow, and nodes touched only by marrow are held fixed at 0 by the free
mask (the same unknowns as the NumPy backend, which stores only the active
nodes). One thread per node gathers the contributions of its 8 elements, so
the product needs no atomics and is deterministic. PCG with the Jacobi
preconditioner runs entirely on the device (the geometric multigrid
preconditioner is NumPy only for now). Accumulation is float64 on both
backends; the two agree within the solver tolerance, not bit for bit (the
summation order differs).

:func:`emulate_matvec` is a NumPy transcription of the kernel's per-node
algorithm, tested equal to :class:`~bonesim.mechanics.operator.StiffnessOperator`
without a GPU. CuPy is imported inside functions only.
"""

from __future__ import annotations

import functools

import numpy as np

from bonesim._resources import kernel_dir
from bonesim.errors import BonesimError
from bonesim.mechanics.element import ke_unit
from bonesim.mechanics.operator import VoxelMesh

KERNEL = kernel_dir("mechanics") / "matvec.cu"
THREADS = 256
#: Device float64 arrays of node size held by the PCG (x, r, z, p, q, b, diag, free, u_D, temp).
DEVICE_VECTORS = 10


@functools.cache
def available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def dense_scale(mesh: VoxelMesh) -> np.ndarray:
    """Per-voxel ``E·h`` (N/mm) on the full voxel grid, 0 in marrow."""
    s = np.zeros(int(np.prod(mesh.shape)))
    s[mesh.elements] = mesh.modulus_mpa * mesh.voxel_mm
    return s.reshape(mesh.shape)


def to_dense(mesh: VoxelMesh, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """(n_nodes, 3) active-node values → dense (3, nz+1, ny+1, nx+1)."""
    out = np.full((3, int(np.prod(mesh.node_shape))), fill, dtype=np.float64)
    out[:, mesh.node_grid] = np.asarray(values, dtype=np.float64).T
    return out.reshape(3, *mesh.node_shape)


def from_dense(mesh: VoxelMesh, dense) -> np.ndarray:
    """Dense (3, nz+1, ny+1, nx+1) → (n_nodes, 3) at the active nodes."""
    return np.asarray(dense).reshape(3, -1)[:, mesh.node_grid].T.copy()


def emulate_matvec(s: np.ndarray, x: np.ndarray, freem: np.ndarray, poisson: float) -> np.ndarray:
    """NumPy transcription of ``hex8_matvec``: every node gathers from its 8 elements.

    ``s`` (nz, ny, nx), ``x`` and ``freem`` (3, nz+1, ny+1, nx+1); returns ``y = F K x``.
    Loops over the element offset ``o`` and the corner ``a`` exactly as the kernel
    does, vectorised over the nodes.
    """
    ke = ke_unit(poisson)
    nz, ny, nx = s.shape
    sp = np.pad(s, 1)  # element (node - 1 + o) lives at sp[node + o]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1)))  # node m lives at xp[m + 1]
    y = np.zeros_like(x)
    nn = (nz + 1, ny + 1, nx + 1)
    for o in range(8):
        oz, oy, ox = o >> 2 & 1, o >> 1 & 1, o & 1
        se = sp[oz : oz + nn[0], oy : oy + nn[1], ox : ox + nn[2]]
        b = 4 * (1 - oz) + 2 * (1 - oy) + (1 - ox)
        g = np.zeros_like(x)
        for a in range(8):
            dz, dy, dx = a >> 2 & 1, a >> 1 & 1, a & 1
            # corner a of element (node - 1 + o) is node - 1 + o + d → xp index node + o + d
            sz, sy, sx = oz + dz, oy + dy, ox + dx
            ua = xp[:, sz : sz + nn[0], sy : sy + nn[1], sx : sx + nn[2]]
            for i in range(3):
                for j in range(3):
                    g[i] += ke[3 * b + i, 3 * a + j] * ua[j]
        y += se[None] * g
    return freem * y


class DeviceOperator:
    """The RawKernel product on a device-resident mesh."""

    def __init__(self, mesh: VoxelMesh, poisson: float, free_dense: np.ndarray) -> None:
        import cupy as cp

        self.cp = cp
        self.shape = mesh.shape
        module = cp.RawModule(code=KERNEL.read_text(), options=("-std=c++17",))
        self.kernel = module.get_function("hex8_matvec")
        ke_ptr = module.get_global("KE")
        ke = np.ascontiguousarray(ke_unit(poisson), dtype=np.float64).ravel()
        cp.ndarray((576,), cp.float64, ke_ptr).set(ke)
        self.s = cp.asarray(dense_scale(mesh))
        self.free = cp.asarray(free_dense)
        self.n = int(np.prod(mesh.node_shape))
        self.blocks = (self.n + THREADS - 1) // THREADS

    def __call__(self, x, out=None, free=None):
        cp = self.cp
        y = cp.empty_like(x) if out is None else out
        nz, ny, nx = self.shape
        self.kernel(
            (self.blocks,),
            (THREADS,),
            (x, self.s, self.free if free is None else free, y, np.int32(nz), np.int32(ny), np.int32(nx)),
        )
        return y


def device_preflight(mesh: VoxelMesh) -> None:
    import cupy as cp

    from bonesim.mechanics.api import preflight

    free_b, _total = cp.cuda.runtime.memGetInfo()
    need = DEVICE_VECTORS * 3 * 8 * int(np.prod(mesh.node_shape)) + 8 * int(np.prod(mesh.shape))
    preflight(need, int(free_b), where="device")


def solve_displacement(
    mesh: VoxelMesh,
    poisson: float,
    bc,
    *,
    tol: float,
    maxiter: int,
    callback=None,
    x0: np.ndarray | None = None,
):
    """Jacobi-PCG on the device; returns (u, K u, iterations, relative residual, converged) on the host.

    ``x0`` (n_nodes, 3, zero on the fixed degrees of freedom) is the warm start of the free part.
    """
    if not available():
        raise BonesimError("backend 'cupy' needs CuPy and a CUDA device; use backend='numpy'")
    import cupy as cp

    from bonesim.mechanics.operator import StiffnessOperator
    from bonesim.mechanics.solver import pcg

    device_preflight(mesh)
    free = to_dense(mesh, (~bc.fixed).astype(np.float64))
    op = DeviceOperator(mesh, poisson, free)
    ones = cp.ones_like(op.free)
    diag = to_dense(mesh, StiffnessOperator(mesh, poisson).diagonal(), fill=1.0)
    inv = cp.asarray(np.where(free > 0, 1.0 / diag, 0.0))
    ud = cp.asarray(to_dense(mesh, bc.value))
    b = -op(ud)
    start = None if x0 is None else cp.asarray(to_dense(mesh, x0)) * op.free
    out = pcg(
        lambda v: op(v), b, lambda r: inv * r, tol=tol, maxiter=maxiter, callback=callback, x0=start, xp=cp
    )
    u = out.x + ud
    f = op(u, free=ones)
    cp.cuda.Stream.null.synchronize()
    return (
        from_dense(mesh, cp.asnumpy(u)),
        from_dense(mesh, cp.asnumpy(f)),
        out.iterations,
        out.relative_residual,
        out.converged,
    )
