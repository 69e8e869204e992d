"""Peer comparison: apparent moduli along z, y, x from bonesim and from ParOSol (parosol-py).

Same mesh (the bone voxels of the real sample, σ = 1, threshold 63, largest
component), same moduli and Poisson ratio, same boundary conditions (bonesim's
uniaxial constraints, including its three rigid-body pins, are handed to
ParOSol as fixed displacements). Prints one JSON object.

    python scripts/compare_parosol.py [--crop N] [--tol 1e-6]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bonesim.mechanics import Uniaxial, solve  # noqa: E402
from bonesim.mechanics.api import _load_path, modulus_field  # noqa: E402
from bonesim.mechanics.loads import constraints  # noqa: E402
from bonesim.mechanics.operator import VoxelMesh  # noqa: E402

VOXEL_UM = 19.5


def segment_sample() -> np.ndarray:
    """σ = 1 Gaussian, threshold 63, largest 26-connected component (data/lhdl_3155_D_4_bc/README.md)."""
    from bonesim.io.sample import real_sample_mask

    return real_sample_mask()


def central_crop(bone: np.ndarray, n: int | None) -> np.ndarray:
    if not n or n >= min(bone.shape):
        return bone
    lo = [(s - n) // 2 for s in bone.shape]
    return np.ascontiguousarray(bone[lo[0] : lo[0] + n, lo[1] : lo[1] + n, lo[2] : lo[2] + n])


def parosol_modulus(bone_u8: np.ndarray, axis: str, *, e0_gpa=10.0, nu=0.3, strain=0.01, tol=1e-6, work=None):
    """E_app (MPa) of ParOSol with bonesim's mesh, moduli and constraints; also its seconds."""
    import parosol_py as pp

    load = Uniaxial(axis, strain)
    kept, labels, _ = _load_path(bone_u8, load)
    modulus = modulus_field(np.where(kept, bone_u8, 0), e0_gpa, 2.0)  # MPa, zyx
    mesh = VoxelMesh.from_modulus(modulus, VOXEL_UM / 1000.0)
    node_labels = np.zeros(mesh.n_nodes, dtype=np.int64)
    node_labels[mesh.conn] = labels.ravel()[mesh.elements][:, None]
    bc = constraints(mesh, load, node_labels)
    nodes, comps = np.nonzero(bc.fixed)
    zyx = mesh.node_coords[nodes]
    coords = np.column_stack([zyx[:, 2], zyx[:, 1], zyx[:, 0], 2 - comps]).astype(np.uint16)
    values = bc.value[nodes, comps].astype(np.float32)
    bcs = pp.BoundaryConditionSet(fixed_coordinates=coords, fixed_values=values)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = pp.solve(
            material=modulus.astype(np.float32),
            spacing=(VOXEL_UM / 1000.0,) * 3,
            array_order="zyx",
            material_unit="MPa",
            poisson_ratio=nu,
            test_axis=axis,
            strain=-strain,
            boundary_conditions=bcs,
            outputs=("forces",),
            tolerance=tol,
            work_dir=tmp,
        )
    seconds = time.perf_counter() - t0
    forces = np.asarray(out.fields["forces"]).reshape(-1, 3)  # xyz components
    mapper = pp.field_export.NativeFieldMapper(np.swapaxes(modulus, 0, 2))
    nc = np.asarray(mapper.active_node_coordinates)  # xyz
    ax_xyz = 2 - load.axis_index
    top = nc[:, ax_xyz] == bone_u8.shape[load.axis_index]
    force = float(-forces[top, ax_xyz].sum())
    lat = [n for i, n in enumerate(bone_u8.shape) if i != load.axis_index]
    area = lat[0] * lat[1] * (VOXEL_UM / 1000.0) ** 2
    return force / area / strain, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=None, help="central crop edge in voxels (default: full)")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--axes", default="zyx")
    args = ap.parse_args()
    bone = central_crop(segment_sample(), args.crop).astype(np.uint8) * np.uint8(255)
    rows = {}
    for axis in args.axes:
        ours = solve(bone, axis, voxel_size_um=VOXEL_UM, backend="numpy", tol=args.tol, keep_fields=False)
        theirs, secs = parosol_modulus(bone, axis, tol=args.tol)
        rows[axis] = {
            "bonesim_mpa": ours.apparent_modulus_mpa,
            "parosol_mpa": theirs,
            "ratio": ours.apparent_modulus_mpa / theirs,
            "bonesim_iterations": ours.iterations,
            "bonesim_seconds": ours.seconds,
            "parosol_seconds": secs,
        }
        print(json.dumps({axis: rows[axis]}), file=sys.stderr, flush=True)
    print(json.dumps({"shape": list(bone.shape), "bv_tv": float((bone > 0).mean()), "axes": rows}, indent=2))


if __name__ == "__main__":
    main()
