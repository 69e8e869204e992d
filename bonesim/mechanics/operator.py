"""The voxel mesh and its matrix-free stiffness operator (NumPy reference backend).

Every voxel with a modulus > 0 is one 8-node hexahedron; marrow voxels carry
no element and nodes touched only by marrow are not unknowns (they are
*excluded*, not given a tiny modulus). The global stiffness matrix is never
assembled: ``K u`` is computed element by element as
``Σ_e s_e · Pₑᵀ K_unit Pₑ u`` with ``s_e = E_e · h`` (one unit-cube matrix
scaled per voxel), gathering the 8 corner displacements of each element,
one dense GEMM per chunk of elements and a scatter-add (``np.bincount``)
back onto the nodes, or, with Numba installed, one compiled pass that does
all three without the element-force buffer (``bonesim.mechanics.fast``).
Products accumulate in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bonesim.mechanics.element import CORNERS, ke_unit

#: Elements per chunk of the gather/GEMM step (bounds the temporary memory).
CHUNK = 1 << 17
#: Row-major upper triangle (diagonal included) of a 24×24 matrix: the 300 stored entries of a
#: symmetric element matrix; entry (j, i ≥ j) sits at ``24j − j(j−1)/2 + (i − j)``.
TRIU = np.triu_indices(24)


def pack(full: np.ndarray, dtype=np.float64) -> np.ndarray:
    """(n, 24, 24) symmetric matrices → (n, 300) upper triangles."""
    return np.asarray(full)[:, TRIU[0], TRIU[1]].astype(dtype, copy=False)


def unpack(packed: np.ndarray) -> np.ndarray:
    """(n, 300) upper triangles → (n, 24, 24) symmetric float64 matrices."""
    out = np.empty((packed.shape[0], 24, 24))
    out[:, TRIU[0], TRIU[1]] = packed
    out[:, TRIU[1], TRIU[0]] = packed
    return out


@dataclass
class VoxelMesh:
    """Active elements and nodes of a voxel model.

    Attributes
    ----------
    shape : (nz, ny, nx)
        Voxels of the volume.
    voxel_mm : float
        Edge of a voxel in mm.
    elements : int64 array (n_el,)
        Flat (C-order) voxel index of every element.
    modulus_mpa : float64 array (n_el,)
        Young's modulus of every element.
    conn : int32 array (n_el, 8)
        Active-node id of the 8 corners, local order of :data:`CORNERS`.
    node_grid : int64 array (n_nodes,)
        Flat C-order index of every active node in the ``(nz+1, ny+1, nx+1)`` node grid.
    """

    shape: tuple[int, int, int]
    voxel_mm: float
    elements: np.ndarray
    modulus_mpa: np.ndarray
    conn: np.ndarray
    node_grid: np.ndarray
    _coords: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_elements(self) -> int:
        return int(self.elements.size)

    @property
    def n_nodes(self) -> int:
        return int(self.node_grid.size)

    @property
    def node_shape(self) -> tuple[int, int, int]:
        return tuple(n + 1 for n in self.shape)  # type: ignore[return-value]

    @property
    def node_coords(self) -> np.ndarray:
        """(n_nodes, 3) integer node coordinates ``(z, y, x)`` in voxels."""
        if self._coords is None:
            self._coords = np.stack(np.unravel_index(self.node_grid, self.node_shape), axis=1)
        return self._coords

    @classmethod
    def from_modulus(cls, modulus_mpa: np.ndarray, voxel_mm: float) -> VoxelMesh:
        """Build the mesh of a per-voxel modulus field (0 = marrow, no element)."""
        mod = np.asarray(modulus_mpa, dtype=np.float64)
        if mod.ndim != 3:
            raise ValueError(f"modulus field must be 3-D, got shape {mod.shape}")
        nz, ny, nx = mod.shape
        elements = np.flatnonzero(mod > 0)
        ez, ey, ex = np.unravel_index(elements, mod.shape)
        nshape = (nz + 1, ny + 1, nx + 1)
        corner_flat = np.empty((elements.size, 8), dtype=np.int64)
        for a, (dz, dy, dx) in enumerate(CORNERS):
            corner_flat[:, a] = np.ravel_multi_index((ez + dz, ey + dy, ex + dx), nshape)
        used = np.zeros(int(np.prod(nshape)), dtype=bool)
        used[corner_flat.ravel()] = True
        node_grid = np.flatnonzero(used)
        ids = np.full(used.size, -1, dtype=np.int64)
        ids[node_grid] = np.arange(node_grid.size)
        conn = ids[corner_flat].astype(np.int32)
        return cls(
            shape=(nz, ny, nx),
            voxel_mm=float(voxel_mm),
            elements=elements,
            modulus_mpa=mod.ravel()[elements].copy(),
            conn=conn,
            node_grid=node_grid,
        )

    def bytes_estimate(self) -> int:
        """Bytes of the mesh arrays plus the solver's working vectors (pre-flight)."""
        n_el, n_no = self.n_elements, self.n_nodes
        mesh = n_el * (8 + 8 + 8 * 4) + n_no * 8
        scatter = n_el * 24 * (8 + 8)  # element forces before the scatter-add, and their dof indices
        gather = min(CHUNK, n_el) * 24 * 8 * 3
        vectors = 10 * n_no * 3 * 8  # PCG: x, r, z, p, q, diag, masks, reactions, temporaries
        return int(mesh + scatter + gather + vectors)


class ElementOperator:
    """``K u = Σ_e Pₑᵀ Kₑ Pₑ u`` on a :class:`VoxelMesh` with one 24×24 matrix per element.

    The element matrices are a weighted sum of a few fixed symmetric matrices,
    ``Kₑ = Σ_j W[e, j] · B[j]`` (``weights`` (n_el, m), ``basis`` (m, 24, 24)),
    and/or explicit (``packed`` (n_el, 300) upper triangles, see :func:`pack`;
    float64 or float32 storage).
    The fine voxel operator is the first form with m = 1 (``B[0]`` the unit-cube
    matrix, ``W`` = E·h); the Galerkin coarse levels of the multigrid store
    explicit matrices (and keep the exact weighted form where they have one, to
    build the next level from). Products use the explicit matrices when given
    and always accumulate in float64: the compiled kernel of
    :mod:`bonesim.mechanics.fast` when Numba is present, else a NumPy
    gather / GEMM / ``bincount`` per chunk of elements.
    """

    def __init__(
        self,
        mesh: VoxelMesh,
        *,
        weights: np.ndarray | None = None,
        basis: np.ndarray | None = None,
        packed: np.ndarray | None = None,
    ) -> None:
        self.mesh = mesh
        if packed is None and (weights is None or basis is None):
            raise ValueError("give weights and basis, or packed element matrices")
        self.packed = None if packed is None else np.ascontiguousarray(packed)
        self.weights = self.basis = None
        if weights is not None and basis is not None:
            self.weights = np.asarray(weights, dtype=np.float64).reshape(mesh.n_elements, -1)
            self.basis = np.asarray(basis, dtype=np.float64).reshape(-1, 24, 24)
            m = self.basis.shape[0]
            # Y = uₑ @ [B_0 … B_m-1] gives every B_j uₑ at once (the B_j are symmetric)
            self._bcat = np.ascontiguousarray(self.basis.transpose(1, 0, 2).reshape(24, m * 24))
            self._uniform = (
                m == 1 and mesh.n_elements > 0 and bool(np.all(self.weights == self.weights[0, 0]))
            )
        self._conn_flat = mesh.conn.ravel()
        self._dofs_cache: np.ndarray | None = None
        self._fbuf: np.ndarray | None = None
        self._fast: tuple | None = None
        from bonesim.mechanics import fast

        if self.packed is not None or (self.basis.shape[0] == 1 and fast.fine_product() == "compiled"):
            threaded = fast.parallel()
            order = fast.slabs(mesh.shape, mesh.elements)
            if self.packed is not None:
                kern = fast.kernel_packed(threaded)
                if kern is not None:
                    self._fast = (kern, mesh.conn, self.packed, order)
            else:
                kern = fast.kernel(threaded)
                if kern is not None:
                    scale = np.ascontiguousarray(self.weights[:, 0])
                    ke = np.ascontiguousarray(self.basis[0])
                    self._fast = (kern, mesh.conn, scale, ke, order)
        self.matvecs = 0

    @property
    def _dofs(self) -> np.ndarray:
        """Global dof of every element dof (intp, as np.bincount wants it), built on first use."""
        if self._dofs_cache is None:
            self._dofs_cache = (3 * self.mesh.conn[:, :, None].astype(np.intp) + np.arange(3)).ravel()
        return self._dofs_cache

    @property
    def compiled(self) -> bool:
        """True when the product runs in the compiled kernel of :mod:`bonesim.mechanics.fast`."""
        return self._fast is not None

    def use_numpy(self) -> None:
        """Switch this operator to the NumPy product (reference for tests)."""
        self._fast = None

    @property
    def shape(self) -> tuple[int, int]:
        n = 3 * self.mesh.n_nodes
        return (n, n)

    def _element_forces(self, ue: np.ndarray, lo: int, hi: int, out: np.ndarray) -> None:
        if self.packed is not None:
            np.matmul(unpack(self.packed[lo:hi]), ue[:, :, None], out=out[:, :, None])
            return
        m = self.basis.shape[0]
        if m == 1:
            if self._uniform:
                np.matmul(ue, self._bcat * self.weights[0, 0], out=out)
            else:
                ue *= self.weights[lo:hi]
                np.matmul(ue, self._bcat, out=out)
            return
        y = (ue @ self._bcat).reshape(hi - lo, m, 24)
        np.einsum("em,emi->ei", self.weights[lo:hi], y, out=out)

    def matvec(self, u: np.ndarray) -> np.ndarray:
        """Return ``K u`` (float64) for nodal displacements ``u`` of shape (n_nodes, 3)."""
        u = np.asarray(u, dtype=np.float64).reshape(self.mesh.n_nodes, 3)
        self.matvecs += 1
        if self._fast is not None:
            kern, *args = self._fast
            out = np.empty((self.mesh.n_nodes, 3))
            kern(np.ascontiguousarray(u), *args, out)
            return out
        conn, n_el = self.mesh.conn, self.mesh.n_elements
        if self._fbuf is None:
            self._fbuf = np.empty((n_el, 24))
        fe = self._fbuf
        for lo in range(0, n_el, CHUNK):
            hi = min(lo + CHUNK, n_el)
            ue = np.take(u, conn[lo:hi], axis=0).reshape(hi - lo, 24)
            self._element_forces(ue, lo, hi, fe[lo:hi])
        return np.bincount(self._dofs, weights=fe.ravel(), minlength=3 * self.mesh.n_nodes).reshape(-1, 3)

    def element_matrices(self, lo: int, hi: int) -> np.ndarray:
        """The explicit (hi − lo, 24, 24) float64 matrices of elements lo … hi−1 (exact form first)."""
        if self.basis is not None:
            return np.einsum("em,mij->eij", self.weights[lo:hi], self.basis)
        return unpack(self.packed[lo:hi])

    def element_diagonals(self) -> np.ndarray:
        """(n_el, 24) diagonals of the element matrices (those the product uses)."""
        if self.packed is not None:
            return self.packed[:, TRIU[0] == TRIU[1]].astype(np.float64)
        return self.weights @ np.diagonal(self.basis, axis1=1, axis2=2)

    def diagonal(self) -> np.ndarray:
        """Diagonal of K as (n_nodes, 3)."""
        n = self.mesh.n_nodes
        out = np.empty((n, 3))
        if self.packed is None and self.basis.shape[0] == 1:  # s_e · diag(K₁): no (n_el, 24) temporary
            dk = np.diagonal(self.basis[0]).reshape(8, 3)
            for c in range(3):
                w = (self.weights[:, :1] * dk[None, :, c]).ravel()
                out[:, c] = np.bincount(self._conn_flat, weights=w, minlength=n)
            return out
        d = self.element_diagonals().reshape(-1, 8, 3)
        for c in range(3):
            out[:, c] = np.bincount(self._conn_flat, weights=d[:, :, c].ravel(), minlength=n)
        return out

    def assemble(self):
        """Assembled sparse K (scipy CSR, 3·n_nodes square); for the coarsest level and tests."""
        import scipy.sparse as sp

        mesh = self.mesh
        dofs = (3 * mesh.conn[:, :, None].astype(np.int64) + np.arange(3)).reshape(-1, 24)
        rows = np.repeat(dofs, 24, axis=1).ravel()
        cols = np.tile(dofs, (1, 24)).ravel()
        vals = self.element_matrices(0, mesh.n_elements).reshape(-1)
        n = 3 * mesh.n_nodes
        return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


class StiffnessOperator(ElementOperator):
    """``K u`` of a :class:`VoxelMesh` for ν, matrix-free (float64).

    ``Kₑ = s_e · K₁(ν)`` with ``s_e = E_e · h``; a volume whose elements all have
    one modulus (a binary segmentation) is multiplied without the per-element
    scaling pass.

    Examples
    --------
    >>> mesh = VoxelMesh.from_modulus(np.full((2, 2, 2), 1000.0), voxel_mm=0.02)
    >>> op = StiffnessOperator(mesh, 0.3)
    >>> u = np.zeros((mesh.n_nodes, 3)); u[:, 0] = 1.0   # rigid translation along z
    >>> float(abs(op.matvec(u)).max()) < 1e-9
    True
    """

    def __init__(self, mesh: VoxelMesh, poisson: float) -> None:
        self.poisson = float(poisson)
        self.ke = ke_unit(self.poisson)
        self.scale = mesh.modulus_mpa * mesh.voxel_mm  # s_e = E_e · h  [N/mm]
        super().__init__(mesh, weights=self.scale[:, None], basis=self.ke[None])

    def element_energy(self, u: np.ndarray) -> np.ndarray:
        """Strain energy ½ uₑᵀ Kₑ uₑ of every element (N·mm)."""
        u = np.asarray(u, dtype=np.float64).reshape(self.mesh.n_nodes, 3)
        conn, n_el = self.mesh.conn, self.mesh.n_elements
        out = np.empty(n_el)
        for lo in range(0, n_el, CHUNK):
            hi = min(lo + CHUNK, n_el)
            ue = u[conn[lo:hi]].reshape(hi - lo, 24)
            out[lo:hi] = 0.5 * self.scale[lo:hi] * np.einsum("ei,ij,ej->e", ue, self.ke, ue, optimize=True)
        return out
