"""Post-processing of a displacement solution: reaction force, apparent modulus, energies, SED, strain.

Units: lengths in mm, moduli and stresses in MPa (N/mm²), forces in N, energies
in N·mm internally (reported in J), strain-energy density in MPa (= MJ/m³).
"""

from __future__ import annotations

import numpy as np

from bonesim.mechanics.element import centre_b
from bonesim.mechanics.operator import CHUNK, StiffnessOperator, VoxelMesh


def reaction_force(forces: np.ndarray, top: np.ndarray, axis: int) -> float:
    """Compressive reaction (N, positive in compression) on the loaded face: −Σ f_axis over its nodes."""
    return float(-forces[top, axis].sum())


def apparent_modulus(force_n: float, shape: tuple[int, int, int], voxel_mm: float, axis: int, strain: float):
    """``E_app = (F / A) / strain`` in MPa with A the full cross-section of the volume (mm²)."""
    lat = [n for i, n in enumerate(shape) if i != axis]
    area = lat[0] * lat[1] * voxel_mm**2
    return force_n / area / strain


def external_work(u: np.ndarray, forces: np.ndarray, fixed: np.ndarray) -> float:
    """½ Σ u·f over the prescribed degrees of freedom (N·mm): equals the strain energy at equilibrium."""
    return float(0.5 * np.sum(u[fixed] * forces[fixed]))


def sed_map(op: StiffnessOperator, u: np.ndarray) -> np.ndarray:
    """Strain-energy density per voxel (MPa), float32, volume shape; 0 in marrow.

    ``SED_e = ½ uₑᵀ Kₑ uₑ / h³`` (the element's energy over its volume, exact
    for the trilinear element, not a centre-point value).
    """
    mesh = op.mesh
    out = np.zeros(int(np.prod(mesh.shape)), dtype=np.float32)
    out[mesh.elements] = op.element_energy(u) / mesh.voxel_mm**3
    return out.reshape(mesh.shape)


def element_strain(
    op: StiffnessOperator | VoxelMesh, u: np.ndarray, lo: int = 0, hi: int | None = None
) -> np.ndarray:
    """Voigt strain at the centres of elements lo … hi−1, (n, 6): ε_zz, ε_yy, ε_xx, γ_yx, γ_zx, γ_zy.

    ``op`` is the operator the displacement was solved with, or its mesh.
    """
    mesh = getattr(op, "mesh", op)
    hi = mesh.n_elements if hi is None else hi
    b = centre_b() / mesh.voxel_mm
    ue = u[mesh.conn[lo:hi]].reshape(hi - lo, 24)
    return ue @ b.T


def von_mises_strain_map(op: StiffnessOperator | VoxelMesh, u: np.ndarray) -> np.ndarray:
    """Equivalent (von Mises) strain per voxel at the element centre, float32, 0 in marrow.

    ``ε_vM = sqrt(2/3 · e′:e′)`` with e′ the deviatoric part of the strain tensor
    (tensor shear components ε_ij = γ_ij / 2); for uniaxial strain ε with lateral
    contraction ν it is ``2(1+ν)ε/3``. Computed in chunks of :data:`CHUNK`
    elements (about 250 B of temporaries per element of a chunk, not of the mesh).
    """
    mesh = getattr(op, "mesh", op)
    vals = np.empty(mesh.n_elements, dtype=np.float32)
    for lo in range(0, mesh.n_elements, CHUNK):
        hi = min(lo + CHUNK, mesh.n_elements)
        e = element_strain(mesh, u, lo, hi)
        dev = e[:, :3] - e[:, :3].mean(axis=1, keepdims=True)
        j2 = (dev**2).sum(axis=1) + 0.5 * (e[:, 3:] ** 2).sum(axis=1)  # e′:e′ (γ²/4 counted twice)
        vals[lo:hi] = np.sqrt(2.0 / 3.0 * j2)
    out = np.zeros(int(np.prod(mesh.shape)), dtype=np.float32)
    out[mesh.elements] = vals
    return out.reshape(mesh.shape)


def apparent_stress(forces: np.ndarray, coords_mm: np.ndarray, fixed_nodes: np.ndarray, volume_mm3: float):
    """Volume-averaged stress tensor (MPa) from the boundary reactions: σ = sym(Σ f ⊗ X) / V."""
    f = forces[fixed_nodes]
    x = coords_mm[fixed_nodes]
    s = f.T @ x / volume_mm3
    return 0.5 * (s + s.T)


def scale_to_force(result, force_n: float):
    """Rescale a linear uniaxial result so that its reaction force is ``force_n`` (N).

    Linear elasticity: displacements, strains and stresses scale by
    ``k = force_n / F``, energies and SED by ``k²``; the modulus is unchanged.
    """
    import dataclasses

    k = float(force_n) / result.reaction_force_n
    return dataclasses.replace(
        result,
        reaction_force_n=result.reaction_force_n * k,
        strain=result.strain * k,
        strain_energy_j=result.strain_energy_j * k * k,
        external_work_j=result.external_work_j * k * k,
        displacement=None if result.displacement is None else result.displacement * k,
        sed=None if result.sed is None else result.sed * np.float32(k * k),
    )
