"""CuPy backend: the stiffness product as a RawKernel (``kernels/matvec.cu``), PCG on the device.

The device works on the *dense* node grid: displacement vectors are
``(3, nz+1, ny+1, nx+1)`` float64, the per-voxel scale ``s = E·h`` is dense with
0 in marrow, and nodes touched only by marrow are held fixed at 0 by the free
mask (the same unknowns as the NumPy backend, which stores only the active
nodes). One thread per node gathers the contributions of its 8 elements, so
the product needs no atomics and is deterministic. PCG runs entirely on the
device with the matrix-free geometric multigrid of
:mod:`bonesim.mechanics.gridmg` (re-discretised coarse levels on dense grids,
the same RawKernel on every level; only the coarsest level's dense inverse is
formed on the host, once) or Jacobi. Accumulation is float64 on both
backends; the two agree within the solver tolerance, not bit for bit (the
summation order differs).

:func:`emulate_matvec` is a NumPy transcription of the kernel's per-node
algorithm, tested equal to :class:`~bonesim.mechanics.operator.StiffnessOperator`
without a GPU; :func:`grid_solve` with :class:`EmulatedOperator` and NumPy runs
the device solver's own code on the host (tests). CuPy is imported inside
functions only.
"""

from __future__ import annotations

import functools

import numpy as np

from bonesim._resources import kernel_dir
from bonesim.errors import BonesimError
from bonesim.mechanics.element import ke_unit
from bonesim.mechanics.gridmg import COARSEST_NODES
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


class EmulatedOperator:
    """:func:`emulate_matvec` behind the :class:`DeviceOperator` interface (NumPy; the tests' device)."""

    def __init__(self, s: np.ndarray, free: np.ndarray, poisson: float) -> None:
        self.s, self.free, self.poisson = s, free, poisson

    def __call__(self, x, out=None, free=None):
        y = emulate_matvec(self.s, x, self.free if free is None else free, self.poisson)
        if out is not None:
            out[...] = y
            return out
        return y


class DeviceOperator:
    """The RawKernel product ``y = F K(s) x`` on dense device grids (``s`` the per-voxel ``E·h``)."""

    def __init__(self, s, free, poisson: float) -> None:
        import cupy as cp

        self.cp = cp
        self.shape = tuple(int(n) for n in s.shape)
        module = cp.RawModule(code=KERNEL.read_text(), options=("-std=c++17",))
        self.kernel = module.get_function("hex8_matvec")
        ke_ptr = module.get_global("KE")
        ke = np.ascontiguousarray(ke_unit(poisson), dtype=np.float64).ravel()
        cp.ndarray((576,), cp.float64, ke_ptr).set(ke)
        self.s = cp.ascontiguousarray(cp.asarray(s, dtype=cp.float64))
        self.free = cp.asarray(free)
        self.n = int(np.prod([n + 1 for n in self.shape]))
        self.blocks = (self.n + THREADS - 1) // THREADS

    def __call__(self, x, out=None, free=None):
        cp = self.cp
        x = cp.ascontiguousarray(x, dtype=cp.float64)  # the kernel indexes C-contiguous grids
        y = cp.empty_like(x) if out is None else out
        nz, ny, nx = self.shape
        self.kernel(
            (self.blocks,),
            (THREADS,),
            (x, self.s, self.free if free is None else free, y, np.int32(nz), np.int32(ny), np.int32(nx)),
        )
        return y


def device_preflight(mesh: VoxelMesh, preconditioner: str) -> None:
    import cupy as cp

    from bonesim.mechanics.api import preflight

    free_b, _total = cp.cuda.runtime.memGetInfo()
    nodes, voxels = int(np.prod(mesh.node_shape)), int(np.prod(mesh.shape))
    need = DEVICE_VECTORS * 3 * 8 * nodes + 8 * voxels
    if preconditioner == "gmg":
        # every coarser level: ~1/8 of the nodes, 4 node vectors (free, D⁻¹, two temporaries) and s
        need += (4 * 3 * 8 * nodes + 8 * voxels) // 7 + 8 * (3 * COARSEST_NODES) ** 2
    preflight(need, int(free_b), where="device")


def dense_modulus(mesh: VoxelMesh) -> np.ndarray:
    """Per-voxel modulus (MPa) on the full voxel grid, 0 in marrow."""
    m = np.zeros(int(np.prod(mesh.shape)))
    m[mesh.elements] = mesh.modulus_mpa
    return m.reshape(mesh.shape)


def grid_solve(
    mesh: VoxelMesh,
    poisson: float,
    bc,
    make_operator,
    xp,
    *,
    tol: float,
    maxiter: int,
    preconditioner: str = "gmg",
    callback=None,
    x0: np.ndarray | None = None,
):
    """PCG on dense node grids of ``xp`` (CuPy on a device; NumPy with :class:`EmulatedOperator`).

    ``make_operator(s, free)`` gives the product; ``preconditioner`` is 'gmg'
    (:class:`~bonesim.mechanics.gridmg.GridMultigrid`) or 'jacobi'. Returns
    (u, K u, iterations, relative residual, converged) on the host, (n_nodes, 3).
    ``x0`` (n_nodes, 3, zero on the fixed degrees of freedom) warm-starts the free part.
    """
    from bonesim.mechanics.gridmg import GridMultigrid, dense_diagonal
    from bonesim.mechanics.solver import PRECONDITIONERS, pcg

    if preconditioner not in PRECONDITIONERS:
        raise BonesimError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    free = xp.asarray(to_dense(mesh, (~bc.fixed).astype(np.float64)))
    if preconditioner == "gmg":
        mg = GridMultigrid(dense_modulus(mesh), mesh.voxel_mm, poisson, free, make_operator, xp)
        fine, apply_m = mg.levels[0], mg
        op = make_operator(fine.s, free)
    else:
        s = xp.asarray(dense_scale(mesh))
        op = make_operator(s, free)
        d = dense_diagonal(s, poisson, xp)
        inv = xp.where(free > 0, 1.0 / xp.where(d > 0, d, 1.0), 0.0)
        apply_m = lambda r: inv * r  # noqa: E731
    ud = xp.asarray(to_dense(mesh, bc.value))
    b = -op(ud)
    start = None if x0 is None else xp.asarray(to_dense(mesh, x0)) * free
    out = pcg(lambda v: op(v), b, apply_m, tol=tol, maxiter=maxiter, callback=callback, x0=start, xp=xp)
    u = out.x + ud
    f = op(u, free=xp.ones_like(free))
    host = (lambda a: a.get()) if hasattr(u, "get") else np.asarray
    return (
        from_dense(mesh, host(u)),
        from_dense(mesh, host(f)),
        out.iterations,
        out.relative_residual,
        out.converged,
    )


def solve_displacement(
    mesh: VoxelMesh,
    poisson: float,
    bc,
    *,
    tol: float,
    maxiter: int,
    preconditioner: str = "gmg",
    callback=None,
    x0: np.ndarray | None = None,
):
    """:func:`grid_solve` on the device with the RawKernel product."""
    if not available():
        raise BonesimError("backend 'cupy' needs CuPy and a CUDA device; use backend='numpy'")
    import cupy as cp

    device_preflight(mesh, preconditioner)
    result = grid_solve(
        mesh,
        poisson,
        bc,
        lambda s, free: DeviceOperator(s, free, poisson),
        cp,
        tol=tol,
        maxiter=maxiter,
        preconditioner=preconditioner,
        callback=callback,
        x0=x0,
    )
    cp.cuda.Stream.null.synchronize()
    return result
