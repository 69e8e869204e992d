"""Linear-elastic voxel micro-FE: apparent stiffness, strain energy and SED maps of a bone volume.

Every bone voxel is an 8-node hexahedron (2×2×2 Gauss); the stiffness is applied
matrix-free and solved by preconditioned conjugate gradients (NumPy reference,
CuPy RawKernel on a GPU). See ``docs/mechanics.md``. CuPy is imported only when
the CuPy backend runs.
"""

from bonesim.mechanics.api import MechanicsResult, modulus_field, solve
from bonesim.mechanics.loads import ApparentStrain, Uniaxial
from bonesim.mechanics.results import scale_to_force, sed_map, von_mises_strain_map

__all__ = [
    "ApparentStrain",
    "MechanicsResult",
    "Uniaxial",
    "modulus_field",
    "scale_to_force",
    "sed_map",
    "solve",
    "von_mises_strain_map",
]
