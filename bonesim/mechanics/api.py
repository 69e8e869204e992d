"""``solve``: one linear micro-FE load case on a bone volume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from bonesim.errors import BonesimError
from bonesim.mechanics import results as res
from bonesim.mechanics.loads import AXES, ApparentStrain, Uniaxial, constraints
from bonesim.mechanics.operator import VoxelMesh
from bonesim.mechanics.solver import PRECONDITIONERS, default_maxiter, make_preconditioner, pcg
from bonesim.preflight import available_memory
from bonesim.volume import BONE_FULL, Volume

log = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "cupy")
#: Default exponent p of E = E0 · (b/255)^p (see docs/mechanics.md for the source).
DEFAULT_EXPONENT = 2.0
#: Multigrid needs about this much more memory than the fine level alone.
_GMG_MEMORY_FACTOR = 1.35


@dataclass
class MechanicsResult:
    """Outcome of :func:`solve`. Forces in N, moduli in MPa, energies in J, SED in MPa.

    ``sed`` (with ``keep_fields=True``) is the strain-energy density of every
    voxel, float32, the volume's shape, in MPa (= N/mm² = MJ/m³; ×1000 for
    kJ/m³): for a bone voxel (an element) ``SED_e = ½ uₑᵀ Kₑ uₑ / h³``, the exact
    energy of the trilinear element over its volume (the volume average of
    ½ σ:ε, not a centre-point value); 0 for marrow and for bone removed because
    it does not carry the load (``removed_voxels``). ``Σ sed · h³`` is the strain
    energy. For uniaxial stress (``Uniaxial`` on a solid bar: lateral faces free)
    it is ½ E ε²; it scales with the square of the applied strain.
    ``displacement`` is (n_nodes, 3) in mm on the nodes of ``mesh``
    (components z, y, x); pass the whole result back as ``solve(..., x0=result)``
    to warm-start the next solve.
    """

    load: Any
    apparent_modulus_mpa: float | None
    reaction_force_n: float | None
    strain: float | None
    strain_energy_j: float
    external_work_j: float
    iterations: int
    relative_residual: float
    converged: bool
    seconds: float
    backend: str
    preconditioner: str
    n_elements: int
    n_nodes: int
    removed_voxels: int
    apparent_stress_mpa: np.ndarray | None = None
    displacement: np.ndarray | None = field(default=None, repr=False)
    sed: np.ndarray | None = field(default=None, repr=False)
    mesh: VoxelMesh | None = field(default=None, repr=False)

    def von_mises(self) -> np.ndarray:
        """Equivalent (von Mises) strain per voxel, float32, volume shape, 0 in marrow (needs ``keep_fields``).

        At the element centre, ``ε_vM = sqrt(2/3 · e′:e′)`` with e′ the deviatoric
        strain (:func:`bonesim.mechanics.results.von_mises_strain_map`); dimensionless
        (×10⁶ for µε); it scales linearly with the applied strain.
        """
        if self.displacement is None or self.mesh is None:
            raise BonesimError("the von Mises strain needs a result solved with keep_fields=True")
        return res.von_mises_strain_map(self.mesh, self.displacement)

    def summary(self) -> dict[str, Any]:
        """The JSON object of one load case (``bonesim mechanics --json``)."""
        return {
            "apparent_modulus_mpa": self.apparent_modulus_mpa,
            "reaction_force_n": self.reaction_force_n,
            "strain_energy_j": self.strain_energy_j,
            "iterations": self.iterations,
            "relative_residual": self.relative_residual,
            "seconds": self.seconds,
        }


def modulus_field(bone: np.ndarray, tissue_modulus_gpa: float, exponent: float) -> np.ndarray:
    """Per-voxel Young's modulus in MPa: ``E0 · (b/255)^p`` (b = 0 gives 0, full bone gives E0)."""
    if not np.isfinite(tissue_modulus_gpa) or tissue_modulus_gpa <= 0:
        raise BonesimError(f"the tissue modulus must be > 0 GPa, got {tissue_modulus_gpa}")
    if not np.isfinite(exponent) or exponent <= 0:
        raise BonesimError(f"the modulus exponent p must be > 0, got {exponent}")
    frac = np.asarray(bone, dtype=np.float64) / BONE_FULL
    return 1000.0 * tissue_modulus_gpa * frac**exponent


def _as_bone(volume: Volume | np.ndarray, voxel_size_um: float | None) -> tuple[np.ndarray, float]:
    if isinstance(volume, Volume):
        if not volume.is_bone_fraction:
            raise BonesimError(
                f"mechanics needs a uint8 bone-fraction volume, got {volume.data.dtype}; segment it first"
            )
        return volume.data, volume.voxel_size_um
    if voxel_size_um is None:
        raise BonesimError("pass a Volume, or an array together with voxel_size_um")
    v = Volume(np.asarray(volume), voxel_size_um)
    return _as_bone(v, None)


def _load_path(bone: np.ndarray, load) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep bone components that carry load; return (kept mask, labels, voxels removed)."""
    mask = bone > 0
    if not mask.any():
        raise BonesimError("the volume holds no bone (every voxel is marrow): nothing to load")
    lab, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if isinstance(load, Uniaxial):
        ax = load.axis_index
        lo = np.unique(np.take(lab, 0, axis=ax))
        hi = np.unique(np.take(lab, -1, axis=ax))
        keep = np.intersect1d(lo[lo > 0], hi[hi > 0])
        if keep.size == 0:
            raise BonesimError(
                f"the bone does not connect the loaded faces ({load.axis} = 0 and {load.axis} = "
                f"{bone.shape[ax]}): no bone component touches both, so it cannot carry this load"
            )
    else:
        faces = np.concatenate([np.take(lab, i, axis=a).ravel() for a in range(3) for i in (0, -1)])
        keep = np.unique(faces[faces > 0])
        if keep.size == 0:
            raise BonesimError("no bone component touches the faces of the volume: nothing to load")
    kept = np.isin(lab, keep)
    return kept, np.where(kept, lab, 0), int(mask.sum() - kept.sum())


def preflight(need: int, have: int, where: str = "host") -> None:
    """Refuse a solve that would not fit in memory."""
    log.info("memory pre-flight (%s): need %.2f GB, available %.2f GB", where, need / 1e9, have / 1e9)
    if have and need > have:
        raise BonesimError(
            f"this solve needs about {need / 1e9:.1f} GB of {where} memory but only "
            f"{have / 1e9:.1f} GB is available; crop or downsample the volume"
        )


def _pick_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise BonesimError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    from bonesim.mechanics.cupy_backend import available

    return "cupy" if available() else "numpy"


def warm_start(x0: MechanicsResult | np.ndarray, mesh: VoxelMesh) -> np.ndarray:
    """Map a previous displacement onto the nodes of ``mesh``: (n_nodes, 3), 0 on new nodes.

    ``x0`` is a :class:`MechanicsResult` solved with ``keep_fields=True`` (its
    mesh may differ from ``mesh``, e.g. after remodeling, but must have the same
    voxel shape), a (n_nodes, 3) array on ``mesh`` itself, or a dense
    ``(nz+1, ny+1, nx+1, 3)`` array on the node grid.
    """
    if isinstance(x0, MechanicsResult):
        if x0.displacement is None or x0.mesh is None:
            raise BonesimError("x0 needs a result solved with keep_fields=True (it has no displacement)")
        old = x0.mesh
        if tuple(old.shape) != tuple(mesh.shape):
            raise BonesimError(f"x0 was solved on a {old.shape} volume, this one is {mesh.shape}")
        u_old = np.asarray(x0.displacement, dtype=np.float64).reshape(old.n_nodes, 3)
        if old.n_nodes == mesh.n_nodes and np.array_equal(old.node_grid, mesh.node_grid):
            return u_old.copy()
        # node_grid is sorted (np.flatnonzero): find every current node among the old ones
        pos = np.searchsorted(old.node_grid, mesh.node_grid)
        pos = np.minimum(pos, old.n_nodes - 1)
        hit = old.node_grid[pos] == mesh.node_grid
        out = np.zeros((mesh.n_nodes, 3))
        out[hit] = u_old[pos[hit]]
        return out
    a = np.asarray(x0, dtype=np.float64)
    if a.shape == (mesh.n_nodes, 3):
        return a.copy()
    if a.shape == (*mesh.node_shape, 3):
        return a.reshape(-1, 3)[mesh.node_grid]
    raise BonesimError(
        f"x0 must be a MechanicsResult, a ({mesh.n_nodes}, 3) array on this mesh or a "
        f"{(*mesh.node_shape, 3)} node-grid array; got shape {a.shape}"
    )


def solve(
    volume: Volume | np.ndarray,
    load: Uniaxial | ApparentStrain | str = "z",
    tissue_modulus_gpa: float = 10.0,
    poisson: float = 0.3,
    backend: str = "auto",
    tol: float = 1e-6,
    *,
    voxel_size_um: float | None = None,
    exponent: float = DEFAULT_EXPONENT,
    preconditioner: str = "gmg",
    maxiter: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    progress: bool = False,
    keep_fields: bool = True,
    x0: MechanicsResult | np.ndarray | None = None,
) -> MechanicsResult:
    """Solve one linear-elastic load case on the voxel mesh of ``volume``.

    Parameters
    ----------
    volume : Volume or ndarray
        uint8 bone fraction (255 = bone; bool arrays are accepted). Marrow (0)
        voxels are no elements; bone components that do not carry the load
        (not touching both loaded faces) are removed and counted.
    load : Uniaxial, ApparentStrain or 'z' | 'y' | 'x'
        The load case; an axis name means ``Uniaxial(axis, strain=0.01)``.
    tissue_modulus_gpa, poisson : float
        E0 of full bone and ν. Voxel modulus ``E0 · (b/255)^exponent``.
    backend : {'auto', 'numpy', 'cupy'}
        'auto' takes CuPy when a device answers.
    tol : float
        Relative residual ‖b − Ax‖/‖b‖ at which PCG stops.
    preconditioner : {'gmg', 'jacobi'}
        Geometric multigrid (default) or Jacobi. The NumPy backend's multigrid
        uses Galerkin coarse operators, the CuPy backend's re-discretised ones
        (:mod:`bonesim.mechanics.gridmg`).
    callback : callable(iteration, relative_residual), optional
        Called after every PCG iteration; ``progress=True`` shows a tqdm bar instead.
    keep_fields : bool
        Keep the displacement, the SED map and the mesh in the result.
    x0 : MechanicsResult or ndarray, optional
        Warm start: a previous solution (a result solved with ``keep_fields=True``,
        typically on the same volume before a few voxels were remodelled) is mapped
        onto the current nodes (nodes that are new start at 0, the prescribed
        displacements are those of ``load``) and PCG starts from it; see
        :func:`warm_start`. The answer is the same to within ``tol``, the iteration
        count is lower when the bone changed little.

    Examples
    --------
    >>> r = solve(np.full((4, 4, 4), 255, np.uint8), "z", voxel_size_um=20, backend="numpy")
    >>> round(r.apparent_modulus_mpa / 10000.0, 6)   # a solid cube: E_app = E0
    1.0
    """
    t0 = time.perf_counter()
    if isinstance(load, str):
        if load not in AXES:
            raise BonesimError(f"load must be z, y, x or a load case, got {load!r}")
        load = Uniaxial(load)
    if not 0 < tol < 1:
        raise BonesimError(f"tol must lie in (0, 1), got {tol}")
    if preconditioner not in PRECONDITIONERS:
        raise BonesimError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    bone, vs_um = _as_bone(volume, voxel_size_um)
    kept, labels, removed = _load_path(bone, load)
    modulus = modulus_field(np.where(kept, bone, 0), tissue_modulus_gpa, exponent)
    mesh = VoxelMesh.from_modulus(modulus, vs_um / 1000.0)
    factor = _GMG_MEMORY_FACTOR if preconditioner == "gmg" else 1.0
    preflight(int(mesh.bytes_estimate() * factor), available_memory() or 0)
    node_labels = np.zeros(mesh.n_nodes, dtype=np.int64)
    node_labels[mesh.conn] = labels.ravel()[mesh.elements][:, None]
    bc = constraints(mesh, load, node_labels)
    chosen = _pick_backend(backend)

    bar = None
    if progress and callback is None:
        from tqdm import tqdm

        bar = tqdm(desc="PCG", unit="it", leave=False, disable=None)  # none off a terminal (logs)

        def callback(it: int, rel: float) -> None:
            bar.update(1)
            bar.set_postfix(residual=f"{rel:.2e}")

    maxiter = maxiter or default_maxiter(3 * mesh.n_nodes)
    start = None if x0 is None else warm_start(x0, mesh) * ~bc.fixed
    try:
        if chosen == "cupy":
            from bonesim.mechanics.cupy_backend import solve_displacement

            u, forces, it, rel, conv = solve_displacement(
                mesh,
                poisson,
                bc,
                tol=tol,
                maxiter=maxiter,
                preconditioner=preconditioner,
                callback=callback,
                x0=start,
            )
            pre = preconditioner
            from bonesim.mechanics.operator import StiffnessOperator

            op = StiffnessOperator(mesh, poisson)
        else:
            fine, m = make_preconditioner(preconditioner, mesh, modulus, poisson, ~bc.fixed)
            op = fine.op
            b = -fine.free * op.matvec(bc.value)
            out = pcg(fine.apply, b, m, tol=tol, maxiter=maxiter, callback=callback, x0=start)
            u = out.x * fine.free + bc.value
            forces = op.matvec(u)
            it, rel, conv, pre = out.iterations, out.relative_residual, out.converged, preconditioner
    finally:
        if bar is not None:
            bar.close()
    if not conv:
        log.warning("PCG stopped after %d iterations at relative residual %.3g > tol %.3g", it, rel, tol)

    energy = float(op.element_energy(u).sum())
    work = res.external_work(u, forces, bc.fixed)
    force = e_app = strain = None
    stress = None
    if isinstance(load, Uniaxial):
        strain = load.strain
        force = res.reaction_force(forces, bc.top, load.axis_index)
        e_app = res.apparent_modulus(force, mesh.shape, mesh.voxel_mm, load.axis_index, strain)
    else:
        fixed_nodes = np.flatnonzero(bc.fixed.any(axis=1))
        vol = float(np.prod(mesh.shape)) * mesh.voxel_mm**3
        stress = res.apparent_stress(forces, mesh.node_coords * mesh.voxel_mm, fixed_nodes, vol)
    return MechanicsResult(
        load=load,
        apparent_modulus_mpa=e_app,
        reaction_force_n=force,
        strain=strain,
        strain_energy_j=energy * 1e-3,
        external_work_j=work * 1e-3,
        iterations=int(it),
        relative_residual=float(rel),
        converged=bool(conv),
        seconds=time.perf_counter() - t0,
        backend=chosen,
        preconditioner=pre,
        n_elements=mesh.n_elements,
        n_nodes=mesh.n_nodes,
        removed_voxels=removed,
        apparent_stress_mpa=stress,
        displacement=u if keep_fields else None,
        sed=res.sed_map(op, u) if keep_fields else None,
        mesh=mesh if keep_fields else None,
    )
