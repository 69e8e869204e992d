"""Preconditioned conjugate gradients and its preconditioners (Jacobi, geometric multigrid).

Convergence criterion: ``‖b − A x‖₂ ≤ tol · ‖b‖₂`` on the free degrees of
freedom (relative residual of the reduced system, true residual recomputed at
the end). ``A`` is the stiffness with the Dirichlet rows and columns removed
(masked), ``b = −K u_D`` the load from the prescribed displacements.

Preconditioners
---------------
``"jacobi"``
    the diagonal of K.
``"gmg"`` (default)
    one symmetric cycle of geometric multigrid (V on the fine level, W below
    it) on the voxel hierarchy: the coarse voxels are twice as large (a coarse voxel exists where any of its
    2×2×2 children is bone), trilinear prolongation P between node grids, and
    by default the **Galerkin** coarse operator ``Pᵀ K P``, built element by
    element (:func:`galerkin_operator`; on the real sample it needs 31 % fewer
    iterations than re-discretising, 40 vs 58 at 128³). ``coarse="rediscretise"``
    instead re-discretises the model with the mean modulus of the children, as
    ParOSol does (Flaig & Arbenz 2011). Chebyshev smoothing (degree :data:`CHEB_DEGREE`)
    on D⁻¹A before and after the coarse correction, and a sparse direct solve
    on the coarsest level. A coarse degree of freedom is held fixed where it
    interpolates to any fixed fine degree of freedom (keeps every level
    positive definite). Measured iteration counts are in docs/mechanics.md.
    Products: :mod:`bonesim.mechanics.fast` (compiled) when Numba is installed.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bonesim.mechanics.element import CORNERS
from bonesim.mechanics.operator import CHUNK, TRIU, ElementOperator, StiffnessOperator, VoxelMesh, unpack

log = logging.getLogger(__name__)

PRECONDITIONERS = ("gmg", "jacobi")
#: Coarse-level operators of the multigrid: Galerkin ``Pᵀ K P`` or re-discretised mean modulus.
COARSE_OPERATORS = ("galerkin", "rediscretise")
#: Precision in which the Galerkin element matrices are stored (the products accumulate in float64).
GALERKIN_STORAGE = np.float32
#: Coarsen until a level has at most this many nodes, then factorise it.
COARSEST_NODES = 6000
#: Chebyshev degree of the smoother; 1 (a damped Jacobi step) needs the fewest fine products per
#: solve on the real sample (64³ crop: 138 vs 165 (degree 2) vs 197 (degree 3) products).
CHEB_DEGREE = 1
#: Coarse corrections per cycle on every level below the fine one: 2 (a W-cycle there) needs 32
#: iterations against 40 (V-cycle) and 9 % less CPU time on the real 128³ crop (3: 28 iterations,
#: 2 % less); a W-cycle only from the second coarse level down gains nothing (40 iterations).
COARSE_CORRECTIONS = 2


@dataclass
class PCGResult:
    x: np.ndarray
    iterations: int
    relative_residual: float
    converged: bool


def pcg(
    apply_a: Callable,
    b,
    apply_m: Callable,
    *,
    tol: float = 1e-6,
    maxiter: int = 10000,
    x0=None,
    callback: Callable[[int, float], None] | None = None,
    xp=np,
) -> PCGResult:
    """Preconditioned CG for SPD ``apply_a``; works on NumPy or CuPy arrays (``xp``)."""
    bnorm = float(xp.linalg.norm(b))
    if bnorm == 0.0:
        return PCGResult(xp.zeros_like(b), 0, 0.0, True)
    x = xp.zeros_like(b) if x0 is None else x0.copy()
    r = b - apply_a(x) if x0 is not None else b.copy()
    z = apply_m(r)
    p = z.copy()
    rz = float(xp.vdot(r, z))
    rel = float(xp.linalg.norm(r)) / bnorm
    it = 0
    while rel > tol and it < maxiter:
        q = apply_a(p)
        pq = float(xp.vdot(p, q))
        if pq <= 0:
            log.warning("PCG: non-positive curvature p·Ap = %g at iteration %d", pq, it)
            break
        alpha = rz / pq
        x += alpha * p
        r -= alpha * q
        it += 1
        rel = float(xp.linalg.norm(r)) / bnorm
        if callback is not None:
            callback(it, rel)
        if rel <= tol:
            break
        z = apply_m(r)
        rz_new = float(xp.vdot(r, z))
        p *= rz_new / rz
        p += z
        rz = rz_new
    true_rel = float(xp.linalg.norm(b - apply_a(x))) / bnorm
    return PCGResult(x, it, true_rel, true_rel <= tol * 1.0001 or rel <= tol)


# ------------------------------------------------------------------ levels ----
class Level:
    """One grid level: masked operator ``F K F`` with its diagonal."""

    def __init__(self, mesh: VoxelMesh, poisson: float, free: np.ndarray, op: ElementOperator | None = None):
        self.mesh = mesh
        self.op = StiffnessOperator(mesh, poisson) if op is None else op
        self.free = free.astype(np.float64)
        d = self.op.diagonal()
        self.inv_diag = np.where(self.free > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.free * self.op.matvec(self.free * x)


def jacobi(level: Level) -> Callable:
    inv = level.inv_diag
    return lambda r: inv * r


def coarsen_modulus(mod: np.ndarray) -> np.ndarray:
    """Mean modulus of 2×2×2 blocks (zero-padded to even sizes)."""
    pad = [(0, n % 2) for n in mod.shape]
    m = np.pad(mod, pad)
    z, y, x = (n // 2 for n in m.shape)
    return m.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))


def prolongation(fine: VoxelMesh, coarse: VoxelMesh):
    """Trilinear interpolation from coarse to fine active nodes (scipy CSR, n_fine × n_coarse)."""
    import scipy.sparse as sp

    fc = fine.node_coords
    cshape = coarse.node_shape
    cid = np.full(int(np.prod(cshape)), -1, dtype=np.int64)
    cid[coarse.node_grid] = np.arange(coarse.n_nodes)
    rows, cols, vals = [], [], []
    lo = fc // 2
    odd = fc % 2
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                d = np.array([dz, dy, dx])
                ok = np.all((d == 0) | (odd == 1), axis=1)
                w = np.prod(np.where(odd == 1, 0.5, 1.0), axis=1)
                c = lo + d
                idx = np.flatnonzero(ok)
                flat = np.ravel_multi_index(tuple(c[idx].T), cshape)
                j = cid[flat]
                keep = j >= 0
                rows.append(idx[keep])
                cols.append(j[keep])
                vals.append(w[idx][keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(fine.n_nodes, coarse.n_nodes),
    )


@functools.lru_cache(maxsize=1)
def child_prolongations() -> np.ndarray:
    """(8, 24, 24): trilinear interpolation from the 24 dofs of a coarse voxel to those of its child c.

    Child ``c`` has corner offset ``CORNERS[c]``; its local node ``a`` sits at
    ``r = CORNERS[c] + CORNERS[a]`` ∈ {0, 1, 2}³ in the coarse voxel, and coarse
    local node ``A`` contributes ``Π_d w(r_d, A_d)`` with w = 1 at the node, ½ at
    the midpoint, 0 at the opposite end.
    """
    out = np.zeros((8, 24, 24))
    eye = np.eye(3)
    for c, off in enumerate(CORNERS):
        for a, ca in enumerate(CORNERS):
            r = off + ca
            for big_a, cb in enumerate(CORNERS):
                w = float(np.prod([0.5 if r[d] == 1 else float(r[d] == 2 * cb[d]) for d in range(3)]))
                if w:
                    out[c, 3 * a : 3 * a + 3, 3 * big_a : 3 * big_a + 3] = w * eye
    out.setflags(write=False)
    return out


def children(fine: VoxelMesh, coarse: VoxelMesh) -> np.ndarray:
    """(n_coarse_el, 8) fine element id of every child of each coarse element (−1: marrow/outside)."""
    dense = np.full(int(np.prod(fine.shape)), -1, dtype=np.int64)
    dense[fine.elements] = np.arange(fine.n_elements)
    ez, ey, ex = np.unravel_index(coarse.elements, coarse.shape)
    out = np.full((coarse.n_elements, 8), -1, dtype=np.int64)
    for c, (dz, dy, dx) in enumerate(CORNERS):
        fz, fy, fx = 2 * ez + dz, 2 * ey + dy, 2 * ex + dx
        ok = (fz < fine.shape[0]) & (fy < fine.shape[1]) & (fx < fine.shape[2])
        out[ok, c] = dense[np.ravel_multi_index((fz[ok], fy[ok], fx[ok]), fine.shape)]
    return out


def galerkin_operator(fine: ElementOperator, coarse: VoxelMesh, storage=np.float64) -> ElementOperator:
    """The Galerkin coarse operator ``Pᵀ K P`` of trilinear interpolation, element by element.

    Inside a coarse voxel the trilinear prolongation maps its 8 nodes onto the 27
    fine nodes of its 8 children, so ``Pᵀ K P`` is assembled from coarse element
    matrices ``K_E = Σ_c P_cᵀ K_c P_c`` (c the children, :func:`child_prolongations`);
    this equals the global product exactly (tested). The matrices are stored
    explicitly (upper triangles, 300 numbers each) in ``storage`` precision (float32 halves the memory of the first,
    largest coarse level); when the fine operator is a weighted sum of a few
    matrices (the voxel operator), the coarse one keeps the exact weighted form
    ``K_E = Σ_(c,j) W_(child c, j) · P_cᵀ B_j P_c`` too, and the next level is built from it.
    """
    pc = child_prolongations()
    kids = children(fine.mesh, coarse)
    n = coarse.n_elements
    mats = np.empty((n, TRIU[0].size), dtype=storage)  # upper triangles
    if fine.basis is not None and fine.basis.shape[0] == 1:
        # W'[E, c] = W[child c of E];  B'[c] = P_cᵀ B_0 P_c
        weights = np.append(fine.weights[:, 0], 0.0)[kids]
        basis = np.einsum("cia,ik,ckb->cab", pc, fine.basis[0], pc)
        basis = 0.5 * (basis + basis.transpose(0, 2, 1))
        flat = basis[:, TRIU[0], TRIU[1]]  # (8, 300): the upper triangles are linear in the weights too
        step = max(1, CHUNK // 8)
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            mats[lo:hi] = weights[lo:hi] @ flat
        return ElementOperator(coarse, weights=weights, basis=basis, packed=mats)
    step = max(1, CHUNK // 16)
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        acc = np.zeros((hi - lo, 24, 24))  # float64 sums, rounded once to the storage precision
        for c in range(8):
            ok = np.flatnonzero(kids[lo:hi, c] >= 0)
            if ok.size:
                acc[ok] += _congruence(_rows(fine, kids[lo:hi, c][ok]), pc[c])
        mats[lo:hi] = (0.5 * (acc + acc.transpose(0, 2, 1)))[:, TRIU[0], TRIU[1]]
    return ElementOperator(coarse, packed=mats)


def _rows(op: ElementOperator, ids: np.ndarray) -> np.ndarray:
    """float64 element matrices of the elements ``ids`` (exact weighted form where there is one)."""
    if op.basis is not None:
        return (op.weights[ids] @ op.basis.reshape(-1, 576)).reshape(-1, 24, 24)
    return unpack(op.packed[ids])


def _congruence(k: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``pᵀ k_e p`` for every symmetric k_e of the stack ``k`` (n, 24, 24): two large GEMMs."""
    n = k.shape[0]
    t = (k.reshape(n * 24, 24) @ p).reshape(n, 24, 24)  # k_e p
    t = np.ascontiguousarray(t.transpose(0, 2, 1))  # (k_e p)ᵀ = pᵀ k_e
    return (t.reshape(n * 24, 24) @ p).reshape(n, 24, 24)


def power_lambda_max(apply: Callable, inv_diag, v, iters: int = 12) -> float:
    """Largest eigenvalue of D⁻¹A by ``iters`` power steps from ``v`` (NumPy or CuPy arrays)."""
    lam = 1.0
    for _ in range(iters):
        nv = float((v * v).sum()) ** 0.5
        if nv == 0:
            return 1.0
        v = v / nv
        w = inv_diag * apply(v)
        lam = float((v * w).sum())
        v = w
    return lam


def chebyshev(apply: Callable, inv_diag, lam: float, b, x=None, degree: int = CHEB_DEGREE):
    """Chebyshev iteration of ``degree`` on D⁻¹A x = D⁻¹b over [λ/10, 1.1 λ] (x=None: from 0)."""
    hi = 1.1 * lam
    lo = hi / 11.0
    theta, delta = 0.5 * (hi + lo), 0.5 * (hi - lo)
    sigma = theta / delta
    rho = 1.0 / sigma
    if x is None:
        x = 0 * b
        r = inv_diag * b
    else:
        r = inv_diag * (b - apply(x))
    d = r / theta
    for k in range(degree):
        x = x + d
        if k == degree - 1:
            break
        r = r - inv_diag * apply(d)
        rho_new = 1.0 / (2 * sigma - rho)
        d = rho_new * rho * d + 2 * rho_new / delta * r
        rho = rho_new
    return x


class VCycle:
    """A symmetric multigrid cycle over ``levels`` (each with ``apply``, ``inv_diag`` and ``free``).

    The fine level makes one coarse correction per cycle; every coarser level
    makes :data:`COARSE_CORRECTIONS` (2: a W-cycle below the fine level, which
    stays symmetric: ``(I − BA)²`` with B symmetric).

    Subclasses give the grid transfers (:meth:`restrict`, :meth:`prolong`, both
    already masked by the free sets) and the coarsest solve (:meth:`coarse_solve`);
    ``lam[i]`` is the largest eigenvalue of D⁻¹A on level i (Chebyshev bounds).
    """

    levels: list
    lam: list[float]

    def restrict(self, i: int, r):
        raise NotImplementedError

    def prolong(self, i: int, e):
        raise NotImplementedError

    def coarse_solve(self, b):
        raise NotImplementedError

    def _vcycle(self, i: int, b):
        if i == len(self.levels) - 1:
            return self.coarse_solve(b)
        lv = self.levels[i]
        x = chebyshev(lv.apply, lv.inv_diag, self.lam[i], b)
        for _ in range(1 if i == 0 else COARSE_CORRECTIONS):
            r = b - lv.apply(x)
            x = x + self.prolong(i, self._vcycle(i + 1, self.restrict(i, r)))
        return chebyshev(lv.apply, lv.inv_diag, self.lam[i], b, x)

    def __call__(self, r):
        return self._vcycle(0, r)


class Multigrid(VCycle):
    """Symmetric multigrid cycle on the voxel hierarchy (see the module docstring)."""

    def __init__(
        self,
        mesh: VoxelMesh,
        modulus: np.ndarray,
        poisson: float,
        free: np.ndarray,
        coarse: str = "galerkin",
    ) -> None:
        if coarse not in COARSE_OPERATORS:
            raise ValueError(f"coarse must be one of {COARSE_OPERATORS}, got {coarse!r}")
        self.levels: list[Level] = [Level(mesh, poisson, free)]
        self.prolong_ops = []
        mod = np.asarray(modulus, dtype=np.float64)
        h = mesh.voxel_mm
        while self.levels[-1].mesh.n_nodes > COARSEST_NODES and min(mod.shape) > 2:
            mod = coarsen_modulus(mod)
            h *= 2
            cmesh = VoxelMesh.from_modulus(mod, h)
            p = prolongation(self.levels[-1].mesh, cmesh)
            fine_fixed = 1.0 - self.levels[-1].free
            cfree = ((p.T @ fine_fixed) == 0).astype(np.float64)
            self.prolong_ops.append(p)
            op = None
            if coarse == "galerkin":
                op = galerkin_operator(self.levels[-1].op, cmesh, storage=GALERKIN_STORAGE)
            self.levels.append(Level(cmesh, poisson, cfree, op))
        rng = np.random.default_rng(0)
        self.lam = [
            power_lambda_max(lv.apply, lv.inv_diag, rng.standard_normal((lv.mesh.n_nodes, 3)) * lv.free)
            for lv in self.levels[:-1]
        ]
        self._factor_coarsest()

    def _factor_coarsest(self) -> None:
        import scipy.sparse as sp
        from scipy.sparse.linalg import factorized

        lv = self.levels[-1]
        k = lv.op.assemble()
        f = sp.diags(lv.free.ravel())
        a = f @ k @ f
        d = a.diagonal()
        shift = 1e-10 * float(d.max()) if d.size else 0.0
        a = a + sp.diags(np.where(lv.free.ravel() > 0, shift, 1.0))
        self._solve_coarse = factorized(a.tocsc())

    def restrict(self, i: int, r: np.ndarray) -> np.ndarray:
        return self.levels[i + 1].free * (self.prolong_ops[i].T @ (self.levels[i].free * r))

    def prolong(self, i: int, e: np.ndarray) -> np.ndarray:
        return self.levels[i].free * (self.prolong_ops[i] @ (self.levels[i + 1].free * e))

    def coarse_solve(self, b: np.ndarray) -> np.ndarray:
        return self.levels[-1].free * self._solve_coarse(b.ravel()).reshape(-1, 3)


def make_preconditioner(
    kind: str,
    mesh: VoxelMesh,
    modulus: np.ndarray,
    poisson: float,
    free: np.ndarray,
    coarse: str = "galerkin",
) -> tuple[Level, Callable]:
    """The fine level and the preconditioner ``r ↦ M⁻¹ r`` of ``kind``."""
    if kind == "jacobi":
        lv = Level(mesh, poisson, free)
        return lv, jacobi(lv)
    if kind == "gmg":
        mg = Multigrid(mesh, modulus, poisson, free, coarse=coarse)
        log.info("multigrid: %d levels, nodes %s", len(mg.levels), [lv.mesh.n_nodes for lv in mg.levels])
        return mg.levels[0], mg
    raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {kind!r}")


def default_maxiter(n_dofs: int) -> int:
    return max(1000, int(20 * math.sqrt(max(n_dofs, 1))))
