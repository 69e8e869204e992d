"""Matrix-free geometric multigrid on dense node grids: the CuPy backend's preconditioner.

The same symmetric V-cycle as :class:`bonesim.mechanics.solver.Multigrid`
(Chebyshev smoothing on D⁻¹A, trilinear transfers, a coarse degree of freedom
fixed where it interpolates to a fixed fine one), but every level lives on the
*dense* node grid ``(3, nz+1, ny+1, nx+1)`` of the device backend, and every
level's operator is the voxel operator of a re-discretised model (a coarse
voxel twice as large with the mean modulus of its 2×2×2 children, as ParOSol
does; Flaig & Arbenz 2011). So all levels use the one stencil product (the
RawKernel on a GPU) and need no stored matrices: the memory of a level is a
few dense vectors. The Galerkin coarse operators of the CPU multigrid need
fewer iterations (40 against 58 at 128³, docs/mechanics.md) but store 1200 B
per coarse element.

Grid transfers are separable: along each axis a coarse node ``i`` sits on fine
node ``2i`` and a fine odd node ``2i+1`` takes the mean of coarse ``i`` and
``i+1``; restriction is the exact transpose. They are written with array
slices only, so this module runs unchanged on NumPy (where the operator is
:func:`~bonesim.mechanics.cupy_backend.emulate_matvec`; the tests) and on
CuPy. The coarsest level (at most :data:`COARSEST_NODES` active nodes) is
assembled on the host and inverted once on the device (a dense inverse,
applied as one matrix-vector product per cycle).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bonesim.mechanics.element import ke_unit
from bonesim.mechanics.operator import StiffnessOperator, VoxelMesh
from bonesim.mechanics.solver import VCycle, coarsen_modulus, power_lambda_max

#: The dense inverse of the coarsest level is (3·nodes)² float64: 2000 nodes → 288 MB.
COARSEST_NODES = 2000

#: ``make_operator(s, free) → apply`` where ``apply(x) = free · K(s) x`` on dense grids.
OperatorFactory = Callable[[object, object], Callable]


def _axis_slice(ndim: int, axis: int, sl: slice) -> tuple:
    return tuple(sl if a == axis else slice(None) for a in range(ndim))


def prolong_axis(c, axis: int, n_fine: int, xp=np):
    """Linear interpolation along ``axis`` from coarse nodes (length Nc) to ``n_fine`` fine nodes."""
    s = lambda sl: _axis_slice(c.ndim, axis, sl)  # noqa: E731
    shape = list(c.shape)
    shape[axis] = 2 * c.shape[axis] - 1
    out = xp.empty(tuple(shape), dtype=c.dtype)
    out[s(slice(0, None, 2))] = c
    out[s(slice(1, None, 2))] = 0.5 * (c[s(slice(None, -1))] + c[s(slice(1, None))])
    return out[s(slice(0, n_fine))]


def restrict_axis(r, axis: int, n_coarse: int, xp=np):
    """The transpose of :func:`prolong_axis`: fine nodes along ``axis`` → ``n_coarse`` coarse nodes."""
    s = lambda sl: _axis_slice(r.ndim, axis, sl)  # noqa: E731
    pad = [(0, 0)] * r.ndim
    pad[axis] = (0, 2 * n_coarse - 1 - r.shape[axis])
    rp = xp.pad(r, pad)
    out = rp[s(slice(0, None, 2))].copy()
    half = 0.5 * rp[s(slice(1, None, 2))]
    out[s(slice(0, -1))] += half
    out[s(slice(1, None))] += half
    return out


def prolong(c, fine_nodes: tuple[int, int, int], xp=np):
    """Trilinear prolongation of a (3, Cz, Cy, Cx) field onto (3, *fine_nodes)."""
    for axis, n in zip((1, 2, 3), fine_nodes, strict=True):
        c = prolong_axis(c, axis, n, xp)
    return c


def restrict(r, coarse_nodes: tuple[int, int, int], xp=np):
    """Full-weighting restriction, the transpose of :func:`prolong`."""
    for axis, n in zip((1, 2, 3), coarse_nodes, strict=True):
        r = restrict_axis(r, axis, n, xp)
    return r


def active_nodes(s, xp=np):
    """(nz+1, ny+1, nx+1) bool: nodes that are a corner of at least one element (s > 0)."""
    e = xp.pad(s > 0, 1)
    nn = tuple(n + 1 for n in s.shape)
    out = xp.zeros(nn, dtype=bool)
    for oz in (0, 1):
        for oy in (0, 1):
            for ox in (0, 1):
                out |= e[oz : oz + nn[0], oy : oy + nn[1], ox : ox + nn[2]]
    return out


def dense_diagonal(s, poisson: float, xp=np):
    """Diagonal of K(s) on the dense node grid, (3, nz+1, ny+1, nx+1); 0 at inactive nodes."""
    dk = np.diagonal(ke_unit(poisson)).reshape(8, 3)
    sp = xp.pad(s, 1)
    nn = tuple(n + 1 for n in s.shape)
    out = xp.zeros((3, *nn))
    for o in range(8):  # element node − 1 + o holds this node as its corner 7 − o
        oz, oy, ox = o >> 2 & 1, o >> 1 & 1, o & 1
        se = sp[oz : oz + nn[0], oy : oy + nn[1], ox : ox + nn[2]]
        b = 7 - o
        for c in range(3):
            out[c] += float(dk[b, c]) * se
    return out


def _probe(shape, xp=np):
    """A deterministic pseudo-random vector in [−½, ½) (same on NumPy and CuPy): the power-step start."""
    n = int(np.prod(shape))
    k = xp.arange(n, dtype=np.uint64) * np.uint64(2654435761) % np.uint64(1 << 20)
    return (k.astype(np.float64) / float(1 << 20) - 0.5).reshape(shape)


class GridLevel:
    """One dense level: ``apply(x) = F K F x`` with ``F`` the free mask, and D⁻¹ (0 where fixed)."""

    def __init__(self, s, free, poisson: float, make_operator: OperatorFactory, xp=np) -> None:
        self.s = s
        self.free = free
        self.active = active_nodes(s, xp)
        self.node_shape = tuple(int(n) for n in free.shape[1:])
        op = make_operator(s, free)
        self.apply = lambda x: op(free * x)
        d = dense_diagonal(s, poisson, xp)
        self.inv_diag = xp.where(free > 0, 1.0 / xp.where(d > 0, d, 1.0), 0.0)


class GridMultigrid(VCycle):
    """V-cycle preconditioner on dense node grids (see the module docstring).

    Parameters
    ----------
    modulus : (nz, ny, nx) float64, host
        Young's modulus per voxel (0 = marrow), the fine model.
    voxel_mm, poisson : float
    free : xp array (3, nz+1, ny+1, nx+1), float64
        1 on the free degrees of freedom of the fine level.
    make_operator : callable
        ``make_operator(s, free)`` returns ``apply(x) = free · K(s) x`` for a dense
        per-voxel scale ``s = E·h`` (the RawKernel on a GPU, the emulation on NumPy).
    """

    def __init__(
        self,
        modulus: np.ndarray,
        voxel_mm: float,
        poisson: float,
        free,
        make_operator: OperatorFactory,
        xp=np,
        coarsest_nodes: int | None = None,
    ) -> None:
        self.xp = xp
        coarsest_nodes = COARSEST_NODES if coarsest_nodes is None else coarsest_nodes
        mod = np.asarray(modulus, dtype=np.float64)
        h = float(voxel_mm)
        self.levels = [GridLevel(xp.asarray(mod * h), free, poisson, make_operator, xp)]
        while int(self.levels[-1].active.sum()) > coarsest_nodes and min(mod.shape) > 2:
            mod = coarsen_modulus(mod)
            h *= 2
            s = xp.asarray(mod * h)
            nodes = tuple(n + 1 for n in mod.shape)
            fine = self.levels[-1]
            fixed = fine.active[None] * (1.0 - fine.free)
            touched = restrict(fixed, nodes, xp)  # > 0 where a fixed fine dof is interpolated
            cfree = ((touched == 0) & active_nodes(s, xp)[None]).astype(np.float64)
            self.levels.append(GridLevel(s, cfree, poisson, make_operator, xp))
        self.lam = [
            power_lambda_max(lv.apply, lv.inv_diag, _probe(lv.free.shape, xp) * lv.free)
            for lv in self.levels[:-1]
        ]
        self._factor_coarsest(mod, h, poisson)

    def _factor_coarsest(self, mod: np.ndarray, h: float, poisson: float) -> None:
        xp = self.xp
        mesh = VoxelMesh.from_modulus(mod, h)
        lv = self.levels[-1]
        free = np.asarray(lv.free.get() if hasattr(lv.free, "get") else lv.free).reshape(3, -1)
        free = free[:, mesh.node_grid].T.ravel()  # dof order 3·node + component
        k = StiffnessOperator(mesh, poisson).assemble().toarray()
        a = free[:, None] * k * free[None, :]
        d = np.diagonal(a)
        shift = 1e-10 * float(d.max()) if d.size else 0.0
        a[np.diag_indices_from(a)] += np.where(free > 0, shift, 1.0)
        mask = xp.asarray(free)
        self._coarse_inv = xp.linalg.inv(xp.asarray(a)) * mask[:, None] * mask[None, :]
        self._coarse_nodes = xp.asarray(mesh.node_grid)

    def restrict(self, i: int, r):
        fine, coarse = self.levels[i], self.levels[i + 1]
        return coarse.free * restrict(fine.free * r, coarse.node_shape, self.xp)

    def prolong(self, i: int, e):
        fine, coarse = self.levels[i], self.levels[i + 1]
        return fine.free * prolong(coarse.free * e, fine.node_shape, self.xp)

    def coarse_solve(self, b):
        lv = self.levels[-1]
        flat = b.reshape(3, -1)
        bc = flat[:, self._coarse_nodes].T.ravel()
        xc = (self._coarse_inv @ bc).reshape(-1, 3).T
        out = self.xp.zeros_like(flat)
        out[:, self._coarse_nodes] = xc
        return lv.free * out.reshape(b.shape)
