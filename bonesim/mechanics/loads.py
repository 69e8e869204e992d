"""Load cases as Dirichlet boundary conditions on the voxel mesh.

``Uniaxial(axis, strain)``
    compression along ``axis``: on the face at coordinate 0 the axial
    displacement is 0, on the opposite face it is ``−strain · height``; the
    lateral faces are free. What is left of the rigid-body motion (two lateral
    translations and the rotation about the load axis) is removed *minimally*
    by three extra constraints per load-bearing bone component, all on its
    bottom face: node A (the first bottom node in C order) has both lateral
    displacements fixed, node B (the bottom node farthest from A) has the one
    lateral displacement fixed that a rotation about the axis through A would
    change most. These three constraints are statically determinate: the axial
    loads have no lateral resultant and no moment about the load axis, so the
    constraints carry no force and do not change the solution (tested).
``ApparentStrain(tensor)``
    a general apparent strain tensor ε (3×3, symmetric, axes z, y, x):
    every bone node on the six faces of the volume gets ``u = ε · X`` with X its
    position from the volume's corner (kinematic uniform boundary conditions).
    Rigid-body motion is fully suppressed by the face constraints.
Both scale linearly: a physiological magnitude is set by the strain, or after
the solve by :func:`bonesim.mechanics.results.scale_to_force`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bonesim.mechanics.operator import VoxelMesh

AXES = {"z": 0, "y": 1, "x": 2}


@dataclass(frozen=True)
class Uniaxial:
    """Uniaxial compression along ``axis`` by ``strain`` (positive = compression)."""

    axis: str = "z"
    strain: float = 0.01

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise ValueError(f"axis must be one of z, y, x, got {self.axis!r}")
        if not np.isfinite(self.strain) or self.strain == 0:
            raise ValueError(f"strain must be finite and non-zero, got {self.strain}")

    @property
    def axis_index(self) -> int:
        return AXES[self.axis]


@dataclass(frozen=True)
class ApparentStrain:
    """A prescribed apparent strain tensor (3×3 symmetric, components in z, y, x order)."""

    tensor: tuple

    def __post_init__(self) -> None:
        e = np.asarray(self.tensor, dtype=float)
        if e.shape != (3, 3) or not np.allclose(e, e.T) or not np.isfinite(e).all():
            raise ValueError("the apparent strain must be a finite symmetric 3×3 tensor")
        if not np.any(e):
            raise ValueError("the apparent strain tensor is zero")
        object.__setattr__(self, "tensor", tuple(map(tuple, e)))

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.tensor, dtype=float)


@dataclass
class Constraints:
    """Fixed degrees of freedom ``fixed`` (bool, n_nodes × 3) with values ``value`` in mm."""

    fixed: np.ndarray
    value: np.ndarray
    top: np.ndarray | None = None  # nodes of the loaded (top) face, uniaxial only
    pins: int = 0


def _pins(mesh: VoxelMesh, bottom: np.ndarray, ax: int, labels: np.ndarray | None) -> list[tuple[int, int]]:
    """(node, component) pairs that remove the lateral rigid-body motion of each component."""
    lat = [c for c in range(3) if c != ax]
    coords = mesh.node_coords
    out: list[tuple[int, int]] = []
    groups = [bottom] if labels is None else [bottom[labels[bottom] == g] for g in np.unique(labels[bottom])]
    for nodes in groups:
        if nodes.size == 0:
            continue
        a = int(nodes[0])
        d = coords[nodes][:, lat] - coords[a, lat]
        b = int(nodes[int(np.argmax((d**2).sum(axis=1)))])
        out += [(a, lat[0]), (a, lat[1])]
        if b != a:
            dv = coords[b, lat] - coords[a, lat]
            # rotation about the axis through A moves B along (−dv[1], dv[0])
            out.append((b, lat[1] if abs(dv[0]) >= abs(dv[1]) else lat[0]))
    return out


def constraints(
    mesh: VoxelMesh, load: Uniaxial | ApparentStrain, node_labels: np.ndarray | None = None
) -> Constraints:
    """Dirichlet conditions of ``load`` on ``mesh``.

    ``node_labels`` (optional, per node) gives the bone component of every node
    so that each load-bearing component gets its own rigid-body pins.
    """
    coords = mesh.node_coords
    n = mesh.n_nodes
    fixed = np.zeros((n, 3), dtype=bool)
    value = np.zeros((n, 3))
    h = mesh.voxel_mm
    if isinstance(load, Uniaxial):
        ax = load.axis_index
        top_c = mesh.shape[ax]
        bottom = np.flatnonzero(coords[:, ax] == 0)
        top = np.flatnonzero(coords[:, ax] == top_c)
        fixed[bottom, ax] = True
        fixed[top, ax] = True
        value[top, ax] = -load.strain * top_c * h
        pins = _pins(mesh, bottom, ax, node_labels)
        for node, comp in pins:
            fixed[node, comp] = True
        return Constraints(fixed, value, top=top, pins=len(pins))
    if isinstance(load, ApparentStrain):
        eps = load.array
        on_face = np.zeros(n, dtype=bool)
        for ax in range(3):
            on_face |= (coords[:, ax] == 0) | (coords[:, ax] == mesh.shape[ax])
        idx = np.flatnonzero(on_face)
        fixed[idx] = True
        value[idx] = (coords[idx] * h) @ eps.T
        return Constraints(fixed, value)
    raise TypeError(f"unknown load case {load!r}")
