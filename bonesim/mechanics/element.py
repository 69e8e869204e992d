"""The 8-node hexahedron (trilinear brick) of a cubic voxel, integrated with 2×2×2 Gauss points.

Conventions used by the whole ``bonesim.mechanics`` package:

- coordinates and displacement components follow the array axes ``(z, y, x)``
  (component 0 is along z). Isotropic elasticity does not care about the
  handedness of the frame, so this is a valid Cartesian frame.
- local node ``a = 4·dz + 2·dy + dx`` with ``dz, dy, dx ∈ {0, 1}`` the corner
  offsets of the voxel; local degree of freedom ``3·a + c``.
- strains in Voigt order ``(ε_zz, ε_yy, ε_xx, γ_yx, γ_zx, γ_zy)`` with
  engineering shear strains γ = 2ε.

The element stiffness of a cube of edge ``h`` and Young's modulus ``E`` is
``E · h · ke_unit(ν)`` (for 3-D elasticity ∫BᵀDB dV scales with h); the
matrix of a unit cube with E = 1 is computed once and scaled per voxel.
"""

from __future__ import annotations

import functools

import numpy as np

#: Corner offsets ``(dz, dy, dx)`` of the 8 local nodes, in local node order.
CORNERS = np.array([(a >> 2 & 1, a >> 1 & 1, a & 1) for a in range(8)], dtype=np.int64)
#: Gauss points of the 2-point rule on [0, 1] (weights 1/2 each).
_GAUSS = (0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0))


def elasticity_matrix(poisson: float) -> np.ndarray:
    """Isotropic 6×6 elasticity matrix D for E = 1 in the Voigt order of this module."""
    nu = float(poisson)
    if not -1.0 < nu < 0.5:
        raise ValueError(f"Poisson's ratio must lie in (-1, 0.5), got {poisson}")
    lam = nu / ((1 + nu) * (1 - 2 * nu))
    mu = 1.0 / (2 * (1 + nu))
    d = np.zeros((6, 6))
    d[:3, :3] = lam
    d[np.arange(3), np.arange(3)] += 2 * mu
    d[np.arange(3, 6), np.arange(3, 6)] = mu
    return d


def strain_displacement(point: tuple[float, float, float]) -> np.ndarray:
    """The 6×24 matrix B (unit cube) mapping element displacements to Voigt strains at ``point``.

    ``point`` is ``(z, y, x)`` inside the unit cube [0, 1]³.
    """
    q = np.asarray(point, dtype=float)
    grads = np.empty((8, 3))  # dN_a/dq_c
    for a, off in enumerate(CORNERS):
        f = np.where(off == 1, q, 1.0 - q)  # 1-D shape function values per axis
        s = np.where(off == 1, 1.0, -1.0)  # their derivatives
        grads[a] = (s[0] * f[1] * f[2], f[0] * s[1] * f[2], f[0] * f[1] * s[2])
    b = np.zeros((6, 24))
    for a in range(8):
        gz, gy, gx = grads[a]
        col = 3 * a
        b[0, col + 0] = gz
        b[1, col + 1] = gy
        b[2, col + 2] = gx
        b[3, col + 1], b[3, col + 2] = gx, gy  # γ_yx
        b[4, col + 0], b[4, col + 2] = gx, gz  # γ_zx
        b[5, col + 0], b[5, col + 1] = gy, gz  # γ_zy
    return b


@functools.lru_cache(maxsize=16)
def _ke_cached(poisson: float) -> np.ndarray:
    d = elasticity_matrix(poisson)
    ke = np.zeros((24, 24))
    for gz in _GAUSS:
        for gy in _GAUSS:
            for gx in _GAUSS:
                b = strain_displacement((gz, gy, gx))
                ke += 0.125 * b.T @ d @ b  # weight (1/2)³, Jacobian 1 on the unit cube
    ke = 0.5 * (ke + ke.T)
    ke.setflags(write=False)
    return ke


def ke_unit(poisson: float) -> np.ndarray:
    """24×24 stiffness matrix of a unit cube with E = 1 (2×2×2 Gauss, exact for this element).

    Examples
    --------
    >>> ke = ke_unit(0.3)
    >>> ke.shape, bool(np.allclose(ke, ke.T))
    ((24, 24), True)
    >>> # rigid translations are in its null space
    >>> bool(np.allclose(ke @ np.tile([1.0, 0.0, 0.0], 8), 0))
    True
    """
    return _ke_cached(float(poisson))


def centre_b() -> np.ndarray:
    """B of the unit cube at the element centre (used for per-voxel strain output)."""
    return strain_displacement((0.5, 0.5, 0.5))
