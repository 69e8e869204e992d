"""BoneJ-style purified connectivity, particle and cavity counts, on phantoms with known Betti numbers.

Every expected value is derived here from the phantom's construction (χ = β0 − β1 + β2;
a loose speck adds one particle, an enclosed pocket one cavity), never read off the code.
"""

from __future__ import annotations

import numpy as np
import pytest

from bonesim import phantom
from bonesim.morphometry import METRIC_COLUMNS, morphometry
from bonesim.morphometry.topology import (
    connectivity,
    connectivity_purified,
    enclosed_cavities,
    euler_3d,
    euler_boundary_corrected,
    largest_particle,
    particle_counts,
    purify,
)

H = 10.0  # µm


def solid_cube(k: int) -> tuple[np.ndarray, list[int]]:
    """A 24³ cube inside a 32³ box with ``k`` separate pockets of 1..9 voxels; their sizes."""
    m = np.zeros((32, 32, 32), bool)
    m[4:28, 4:28, 4:28] = True
    sizes = []
    for i in range(k):
        size = 1 + i % 9
        z, y, x = 6 + 4 * (i % 5), 6 + 4 * (i // 5 % 5), 6 + 10 * (i // 25)
        m[z, y, x : x + size] = False  # a straight run of `size` voxels, 3 voxels of bone around
        sizes.append(size)
    return m, sizes


@pytest.mark.parametrize("k", [0, 1, 3, 12])
def test_solid_cube_with_k_cavities(k):
    m, sizes = solid_cube(k)
    c = particle_counts(m)
    assert (c.n_particles, c.n_cavities, c.cavity_voxels) == (1, k, sum(sizes))
    # solid cube strictly inside the box: β0 = 1, β1 = 0, β2 = k  ->  χ = 1 + k, raw Conn = −k
    assert euler_3d(m) == 1 + k
    assert connectivity(m) == -k
    solid, _ = solid_cube(0)
    np.testing.assert_array_equal(purify(m), solid)
    assert connectivity_purified(m) == connectivity(solid) == 0


def torus(shape=(24, 40, 40), major=12.0, minor=4.0) -> np.ndarray:
    """A solid ring around the z axis: β0 = 1, β1 = 1, β2 = 0 (χ = 0)."""
    z, y, x = (np.arange(n) - (n - 1) / 2 for n in shape)
    z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
    rho = np.sqrt(y**2 + x**2)
    return (rho - major) ** 2 + z**2 <= minor**2


def test_torus_with_speck_and_pocket_purifies_to_one_loop():
    ring = torus()
    assert euler_3d(ring) == 0 and connectivity(ring) == 1  # the digital ring is a true torus
    m = ring.copy()
    cz, cy, cx = 12, 20, 20 + 12  # on the tube's core circle (the grid centre is 19.5)
    assert m[cz - 1 : cz + 2, cy - 1 : cy + 2, cx - 1 : cx + 2].all()
    m[cz, cy, cx] = False  # a one-voxel pocket inside the tube: β2 += 1
    m[1, 1, 1] = True  # a loose speck in the corner: β0 += 1
    m[1, 1, 30:33] = True  # and a 3-voxel rod-speck
    c = particle_counts(m)
    assert (c.n_particles, c.n_cavities, c.cavity_voxels) == (3, 1, 1)
    # raw: χ = β0 − β1 + β2 = 3 − 1 + 1 = 3, Conn = 1 − χ = −2; purified: the ring alone
    assert connectivity(m) == -2
    assert connectivity_purified(m) == 1
    np.testing.assert_array_equal(purify(m), ring)
    # with loop-free specks inside the box: β1 = β0 + β2 − χ from the counts of the raw bone
    assert c.n_particles + c.n_cavities - euler_boundary_corrected(m) == 1


def grid_loops(n: int) -> int:
    """β1 of an n×n×n grid of nodes joined by rods to their axis neighbours: one component,
    V = n³ nodes, E = 3·n²·(n − 1) rods, a graph's cycle rank β1 = E − V + 1."""
    return 3 * n * n * (n - 1) - n**3 + 1


@pytest.mark.parametrize("n", [2, 3])
def test_rod_lattice_with_specks_and_pockets(n):
    width = 3
    m = phantom.lattice((40, 40, 40), n, width) > 0
    assert connectivity(m) == grid_loops(n)  # 5 for n = 2, 28 for n = 3
    # a pocket at the centre voxel of every node cube (its 6 neighbours are node voxels)
    span = 40 - 2 * width - width
    lines = [width + round(i * span / (n - 1)) for i in range(n)]
    nodes = [(a + 1, b + 1, c + 1) for a in lines for b in lines for c in lines]
    for p in nodes:
        m[p] = False
    # a speck at the centre of every lattice cell (far from every bar)
    mids = [(lines[i] + lines[i + 1] + width) // 2 for i in range(n - 1)]
    specks = [(a, b, c) for a in mids for b in mids for c in mids]
    for p in specks:
        m[p] = True
    c = particle_counts(m)
    assert (c.n_particles, c.n_cavities, c.cavity_voxels) == (1 + len(specks), len(nodes), len(nodes))
    assert connectivity(m) == grid_loops(n) - len(specks) - len(nodes)
    assert connectivity_purified(m) == grid_loops(n)
    assert c.n_particles + c.n_cavities - euler_boundary_corrected(m) == grid_loops(n)
    vol = np.where(m, 255, 0).astype(np.uint8)
    r = morphometry(vol, voxel_size_um=H, indices=["conn_d"])
    tv_mm3 = (40 * H / 1000) ** 3
    assert r["conn_d_purified_per_mm3"] == pytest.approx(grid_loops(n) / tv_mm3, rel=1e-12)
    assert r["conn_d_per_mm3"] == pytest.approx(connectivity(m) / tv_mm3, rel=1e-12)
    assert (r["n_particles"], r["n_cavities"], r["cavity_voxels"]) == (
        1 + len(specks),
        len(nodes),
        len(nodes),
    )


def test_marrow_is_6_connected_bone_26_connected():
    # BoneJ's convention: foreground 26-connected, background 6-connected
    m = np.zeros((12, 12, 12), bool)
    m[2:10, 2:10, 2:10] = True
    m[2, 2, 2] = False  # a notch in the corner: open to the outside through its faces
    m[3, 3, 3] = False  # touches the notch only at a vertex: an enclosed cavity (6-connected marrow)
    m[0, 0, 0] = m[1, 1, 1] = True  # a speck: its only 26-neighbour in the cube is the notch
    c = particle_counts(m)
    assert c.n_particles == 2
    assert (c.n_cavities, c.cavity_voxels) == (1, 1)
    p = purify(m)
    assert p[3, 3, 3] and not p[2, 2, 2] and not p[1, 1, 1]


def test_cavities_cut_by_the_faces_are_open():
    m = np.ones((10, 10, 10), bool)
    m[0, 4, 4] = False  # a pit in a face: marrow outside the box
    m[4:6, 4:6, 9] = False  # a dent in another face
    m[5, 5, 5] = False  # enclosed
    assert np.argwhere(enclosed_cavities(m)).tolist() == [[5, 5, 5]]
    # no marrow region touches the faces: the largest one counts as the outside
    m = np.ones((16, 16, 16), bool)
    m[2:14, 2:14, 2:14] = False  # a hollow box (1512 marrow voxels once the cube is in) ...
    m[5:11, 5:11, 5:11] = True  # ... around a solid cube ...
    m[8, 8, 8] = False  # ... with a one-voxel pocket
    c = particle_counts(m)
    assert (c.n_particles, c.n_cavities, c.cavity_voxels) == (2, 1, 1)


def test_empty_and_full_volumes():
    empty = np.zeros((6, 6, 6), bool)
    assert particle_counts(empty).as_dict() == {"n_particles": 0, "n_cavities": 0, "cavity_voxels": 0}
    assert not purify(empty).any() and not largest_particle(empty).any()
    full = np.ones((6, 6, 6), bool)
    assert particle_counts(full).as_dict() == {"n_particles": 1, "n_cavities": 0, "cavity_voxels": 0}
    assert purify(full).all()


def test_analyze_declares_the_new_columns():
    for k in ("conn_d_per_mm3", "conn_d_purified_per_mm3", "n_particles", "n_cavities", "cavity_voxels"):
        assert k in METRIC_COLUMNS
    with pytest.warns(UserWarning, match="Conn.D is undefined"):
        m = morphometry(np.zeros((8, 8, 8), np.uint8), voxel_size_um=H, indices=["conn_d"])
    assert np.isnan(m["conn_d_per_mm3"]) and np.isnan(m["conn_d_purified_per_mm3"])
    assert (m["n_particles"], m["n_cavities"], m["cavity_voxels"]) == (0, 0, 0)


def test_analyze_writes_the_counts(tmp_path):
    import csv

    import h5py

    from bonesim.io.hdf5 import write_volume
    from bonesim.morphometry import analyze
    from bonesim.volume import Volume

    m = torus()
    m[12, 20, 32] = False  # pocket
    m[1, 1, 1] = True  # speck
    p = tmp_path / "ring.h5"
    write_volume(p, Volume(np.where(m, 255, 0).astype(np.uint8), H), xdmf=False)
    table = analyze(p, csv=tmp_path / "ring.csv")
    tv_mm3 = m.size * (H / 1000) ** 3
    assert table["conn_d_purified_per_mm3"][0] == pytest.approx(1 / tv_mm3)
    assert table["conn_d_per_mm3"][0] == pytest.approx((1 - (2 - 1 + 1)) / tv_mm3)
    with h5py.File(p, "r") as f:
        assert f["tables/morphometry/n_particles"][0] == 2
        assert f["tables/morphometry/cavity_voxels"][0] == 1
    row = next(csv.DictReader(open(tmp_path / "ring.csv")))
    assert (row["n_particles"], row["n_cavities"], row["cavity_voxels"]) == ("2", "1", "1")
