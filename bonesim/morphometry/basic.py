"""Volume and surface indices: BV/TV, BS (marching cubes), BS/BV, BS/TV, SMI.

The bone surface is the 127.5 iso-surface of the bone fraction (255 = full
bone), triangulated by marching cubes (Lorensen & Cline 1987, as
implemented in :func:`skimage.measure.marching_cubes`) and measured with
:func:`skimage.measure.mesh_surface_area`. The volume is not padded: where
bone is cut by the faces of the volume no surface is counted (the cut faces
are not bone surface), so a plate spanning the volume has BS/BV = 2/t.

References
----------
Bouxsein ML, Boyd SK, Christiansen BA, et al. (2010). Guidelines for
assessment of bone microstructure in rodents using micro-computed
tomography. J Bone Miner Res 25:1468-1486 (nomenclature, units).
Lorensen WE, Cline HE (1987). Marching cubes: a high resolution 3D surface
construction algorithm. Comput Graph 21:163-169.
Hildebrand T, Rüegsegger P (1997). Quantification of bone microarchitecture
with the structure model index. Comput Methods Biomech Biomed Engin 1:15-23.
"""

from __future__ import annotations

import numpy as np

from bonesim.volume import BONE_FULL, BONE_LEVEL

#: Gaussian smoothing (voxels) of the bone fraction before the SMI surface is built: removes the
#: voxel staircase, whose many small convex and concave edges bias the surface derivative. Chosen on
#: the analytic shapes (docs/morphometry.md): with 0.65, voxelised rods of diameter 6-16 read
#: 3.02-3.19 and spheres of radius 6-15 read 3.93-4.05 (raw surface: 2.6-2.9 and 3.5).
SMI_SMOOTHING_VOXELS = 0.65


def bone_volume_fraction(data: np.ndarray) -> float:
    """BV/TV: the mean bone fraction (sub-voxel bone counts).

    >>> bone_volume_fraction(np.array([[[0, 255, 255, 51]]], np.uint8))
    0.55
    """
    return float(np.asarray(data).mean(dtype=np.float64) / BONE_FULL)


def surface_mesh(
    data: np.ndarray, voxel_size_um: float = 1.0, level: float = BONE_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes mesh ``(verts_um, faces)`` of the ``level`` iso-surface (empty if none)."""
    from skimage import measure

    arr = np.asarray(data, np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if not (lo < level < hi) or min(arr.shape) < 2:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    verts, faces, _, _ = measure.marching_cubes(
        arr, level=level, spacing=(voxel_size_um,) * 3, allow_degenerate=False
    )
    return verts.astype(np.float64), faces


def mesh_area(verts: np.ndarray, faces: np.ndarray) -> float:
    """Total triangle area of a mesh."""
    if len(faces) == 0:
        return 0.0
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


#: Marching cubes per slab of this many cubes along z (BS and SMI are computed block-wise: the mesh of
#: a slab is the global mesh's triangles of its cubes, so memory is that of a slab, not of the volume).
SURFACE_SLAB = 32
#: Planes of the Gaussian's reach (radius 3 at sigma 0.65, truncate 4) kept around a slab, plus one.
_SMOOTH_HALO = 4
#: Tolerance (voxels) when a vertex's z is compared with a slab's planes (vertices on a plane are exact
#: up to rounding of z·h/h).
_Z_TOL = 1e-4


def bone_surface_um2(data: np.ndarray, voxel_size_um: float) -> float:
    """BS in µm²: area of the marching-cubes surface at the 127.5 level.

    Computed slab by slab (:data:`SURFACE_SLAB` cubes along z, one shared plane): the triangles
    of each cube are those of the whole volume's mesh, so the area is the same up to rounding.

    >>> from bonesim.phantom import plate
    >>> bone_surface_um2(plate((10, 10, 10), 4), 1.0)   # two 9 x 9 faces (mesh spans voxel centres)
    162.0
    """
    data = np.asarray(data)
    nz = data.shape[0]
    if min(data.shape) < 2:
        return 0.0
    total = 0.0
    for z0 in range(0, nz - 1, SURFACE_SLAB):
        z1 = min(z0 + SURFACE_SLAB, nz - 1)  # cubes z0 .. z1-1: planes z0 .. z1
        total += mesh_area(*surface_mesh(data[z0 : z1 + 1], voxel_size_um))
    return total


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = np.cross(b - a, c - a)  # area-weighted face normals
    idx = faces.ravel()
    vn = np.stack(
        [np.bincount(idx, weights=np.repeat(fn[:, k], 3), minlength=len(verts)) for k in range(3)], axis=1
    )
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.where(norm > 0, norm, 1.0)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
            u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
            u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0],
        ],
        axis=1,
    )


def surface_derivative(verts: np.ndarray, faces: np.ndarray, field: np.ndarray, spacing: float) -> float:
    """dBS/dr: rate of change of the mesh area as every vertex moves outward along its normal.

    Exact derivative at r = 0 of the area of the triangles (a + r·na, b + r·nb, c + r·nc):
    with N = (b-a)×(c-a) and N' = (b-a)×(nc-na) + (nb-na)×(c-a), dA/dr = ½ N·N'/|N|. The
    outward sense (into marrow: the bone fraction falls) is taken from ``field``.
    """
    if len(faces) == 0:
        return 0.0
    n = _vertex_normals(verts, faces)
    from scipy import ndimage

    probe = np.concatenate([verts + 0.5 * spacing * n, verts - 0.5 * spacing * n]) / spacing
    vals = ndimage.map_coordinates(field, probe.T, order=1, mode="nearest")
    m = len(verts)
    if np.mean(vals[:m] > vals[m:]) > 0.5:
        n = -n
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    na, nb, nc = n[faces[:, 0]], n[faces[:, 1]], n[faces[:, 2]]
    e1, e2 = b - a, c - a
    big_n = _cross(e1, e2)
    dn = _cross(e1, nc - na) + _cross(nb - na, e2)
    norm = np.linalg.norm(big_n, axis=1)
    ok = norm > 0
    return float(0.5 * (np.einsum("ij,ij->i", big_n[ok], dn[ok]) / norm[ok]).sum())


def structure_model_index(data: np.ndarray, voxel_size_um: float) -> float:
    """SMI = 6 · BV · (dBS/dr) / BS² (Hildebrand & Rüegsegger 1997).

    0 for ideal plates, 3 for ideal rods, 4 for spheres; negative where
    concave surfaces dominate. The surface is the 127.5 level of the bone
    fraction smoothed with a Gaussian of :data:`SMI_SMOOTHING_VOXELS` voxels;
    BV is the voxel count of the smoothed field above that level (consistent
    with the mesh); structures that vanish under the smoothing (1-voxel plates)
    use the raw surface. Returns NaN (with no warning here) where there is no surface.

    Block-wise (:func:`_smi_sums`): slabs of :data:`SURFACE_SLAB` cubes, each smoothed with
    the Gaussian's reach of planes around it (the same values as smoothing the whole volume),
    meshed with one cube more on each side so that every vertex of the slab's own triangles
    has all its triangles (its normal); the outward sense is one vote over all vertices, as
    for the whole mesh. Memory is that of a slab's mesh, not of the volume's.
    """
    data = np.asarray(data)
    if min(data.shape) < 2:
        return float("nan")
    bs, bv, dbs, faces = _smi_sums(data, voxel_size_um, smooth=True)
    if faces == 0:  # structures thinner than the smoothing vanish: use the raw surface
        bs, bv, dbs, faces = _smi_sums(data, voxel_size_um, smooth=False)
    if bs == 0:
        return float("nan")
    return float(6.0 * bv * dbs / bs**2)


def _smi_sums(data: np.ndarray, h: float, *, smooth: bool) -> tuple[float, float, float, int]:
    """(BS, BV, dBS/dr, number of triangles) of the (smoothed) field, summed over z-slabs."""
    from scipy import ndimage

    nz = data.shape[0]
    bs = dbs = 0.0
    n_bv = n_faces = votes = n_votes = 0
    for z0 in range(0, nz - 1, SURFACE_SLAB):
        z1 = min(z0 + SURFACE_SLAB, nz - 1)  # own cubes z0 .. z1-1
        e0, e1 = max(z0 - 1, 0), min(z1 + 1, nz - 1)  # planes meshed: one cube more each side
        if smooth:
            r0, r1 = max(e0 - _SMOOTH_HALO, 0), min(e1 + _SMOOTH_HALO, nz - 1)
            raw = np.asarray(data[r0 : r1 + 1], np.float32)
            field = ndimage.gaussian_filter(raw, SMI_SMOOTHING_VOXELS, mode="nearest")[e0 - r0 : e1 - r0 + 1]
            del raw
        else:
            field = np.asarray(data[e0 : e1 + 1], np.float32)
        own_last = nz if z1 == nz - 1 else z1  # BV: own planes z0 .. z1-1 (the last slab: .. nz-1)
        n_bv += int(np.count_nonzero(field[z0 - e0 : own_last - e0] > BONE_LEVEL))
        verts, faces = surface_mesh(field, h)
        if len(faces) == 0:
            continue
        zv = verts[:, 0] / h + e0  # global z of each vertex, in voxels
        cube = np.floor(zv[faces].min(axis=1) + _Z_TOL)
        mine = (cube >= z0) & (cube < z1)
        n = _vertex_normals(verts, faces)  # complete for the vertices of the own triangles
        own_v = (zv >= z0 - _Z_TOL) & ((zv < z1 - _Z_TOL) if z1 < nz - 1 else (zv <= z1 + _Z_TOL))
        probe = np.concatenate([verts[own_v] + 0.5 * h * n[own_v], verts[own_v] - 0.5 * h * n[own_v]]) / h
        vals = ndimage.map_coordinates(field, probe.T, order=1, mode="nearest")
        m = int(np.count_nonzero(own_v))
        votes += int(np.count_nonzero(vals[:m] > vals[m:]))
        n_votes += m
        f = faces[mine]
        n_faces += len(f)
        bs += mesh_area(verts, f)
        dbs += _derivative_sum(verts, f, n)
    if n_votes and votes / n_votes > 0.5 and dbs:  # normals into the bone: flip them (dBS/dr is linear in n)
        dbs = -dbs
    return bs, float(n_bv) * h**3, dbs, n_faces


def _derivative_sum(verts: np.ndarray, faces: np.ndarray, n: np.ndarray) -> float:
    """Σ ½ N·N'/|N| over ``faces`` with vertex normals ``n`` (see :func:`surface_derivative`)."""
    if len(faces) == 0:
        return 0.0
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    na, nb, nc = n[faces[:, 0]], n[faces[:, 1]], n[faces[:, 2]]
    e1, e2 = b - a, c - a
    big_n = _cross(e1, e2)
    dn = _cross(e1, nc - na) + _cross(nb - na, e2)
    norm = np.linalg.norm(big_n, axis=1)
    ok = norm > 0
    return float(0.5 * (np.einsum("ij,ij->i", big_n[ok], dn[ok]) / norm[ok]).sum())
