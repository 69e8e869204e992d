"""``bonesim mechanics``: table, JSON per axis, frames of a result, refusals and error sentences."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import read_volume, write_volume
from bonesim.mechanics import solve
from bonesim.volume import Volume
from tests.viz._results import write_result

KEYS = {
    "apparent_modulus_mpa",
    "reaction_force_n",
    "strain_energy_j",
    "iterations",
    "relative_residual",
    "seconds",
}


def lattice(n=12) -> np.ndarray:
    """Rods along z, y and x (2×2 voxels, period 6): connects every pair of faces."""
    b = np.zeros((n, n, n), np.uint8)
    r = (np.arange(n) % 6) < 2
    b[:, r[:, None] & r[None, :]] = 255
    b[r[:, None] & r[None, :], :] = 255
    b[:, :, :][np.broadcast_to(r[:, None, None] & r[None, None, :], b.shape)] = 255
    return b


@pytest.fixture
def bone_file(tmp_path):
    p = tmp_path / "bone.h5"
    write_volume(p, Volume(lattice(), 20.0), xdmf=False)
    return p


def test_help_has_examples():
    r = CliRunner().invoke(main, ["mechanics", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output and "bonesim mechanics bone.h5" in r.output


def test_all_axes_json_and_table(bone_file, tmp_path):
    out = tmp_path / "s.json"
    r = CliRunner().invoke(
        main,
        [
            "mechanics",
            str(bone_file),
            "--axis",
            "all",
            "--json",
            str(out),
            "--backend",
            "numpy",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert set(data) == {"z", "y", "x"}
    for ax, row in data.items():
        assert set(row) == KEYS
        ref = solve(read_volume(bone_file), ax, backend="numpy")
        assert row["apparent_modulus_mpa"] == pytest.approx(ref.apparent_modulus_mpa, rel=1e-9)
        assert row["relative_residual"] <= 1e-6 and row["iterations"] > 0
        assert f"{row['apparent_modulus_mpa']:.2f}" in r.output
    # the lattice is cubic-symmetric: same modulus along every axis
    assert data["y"]["apparent_modulus_mpa"] == pytest.approx(data["z"]["apparent_modulus_mpa"], rel=1e-5)
    # refuses to overwrite
    r2 = CliRunner().invoke(main, ["mechanics", str(bone_file), "--json", str(out), "--backend", "numpy"])
    assert r2.exit_code == 1 and "--overwrite" in r2.output
    r3 = CliRunner().invoke(
        main,
        [
            "mechanics",
            str(bone_file),
            "--json",
            str(out),
            "--overwrite",
            "--backend",
            "numpy",
            "--no-progress",
        ],
    )
    assert r3.exit_code == 0 and set(json.loads(out.read_text())) == {"z"}


def test_frame_of_a_result_and_disconnected_axis(tmp_path):
    p = tmp_path / "run.h5"
    write_result(p)
    rows = []
    for frame in ("0", "-1"):
        out = tmp_path / f"f{frame}.json"
        r = CliRunner().invoke(
            main, ["mechanics", str(p), "--frame", frame, "--axis", "x", "--json", str(out), "--no-progress"]
        )
        assert r.exit_code == 0, r.output
        rows.append(json.loads(out.read_text())["x"]["apparent_modulus_mpa"])
    ref = solve(read_volume(p, frame=-1), "x", backend="numpy").apparent_modulus_mpa
    assert rows[1] == pytest.approx(ref, rel=1e-9)
    assert rows[1] != pytest.approx(rows[0], rel=1e-6)  # the frames differ, so do their moduli
    # the fixture is a horizontal plate: nothing connects z = 0 to the top
    r = CliRunner().invoke(main, ["mechanics", str(p), "--axis", "z"])
    assert r.exit_code == 1
    assert "does not connect the loaded faces" in r.output


def test_error_sentences():
    with pytest.raises(BonesimError, match="holds no bone"):
        solve(np.zeros((4, 4, 4), np.uint8), "z", voxel_size_um=20)
    two = np.zeros((8, 4, 4), np.uint8)
    two[:3], two[5:] = 255, 255
    with pytest.raises(BonesimError, match=r"does not connect the loaded faces \(z = 0 and z = 8\)"):
        solve(two, "z", voxel_size_um=20)
    with pytest.raises(BonesimError, match="uint8 bone-fraction"):
        solve(Volume(np.ones((4, 4, 4), np.float32), 20), "z")
    with pytest.raises(BonesimError, match="tissue modulus"):
        solve(np.full((3, 3, 3), 255, np.uint8), "z", voxel_size_um=20, tissue_modulus_gpa=-1)
    with pytest.raises(BonesimError, match="GB of host memory"):
        from bonesim.mechanics.api import preflight

        preflight(10**15, 10**9)


def test_islands_are_removed_and_counted():
    b = np.zeros((6, 6, 6), np.uint8)
    b[:, :2, :2] = 255  # column
    b[2:4, 4:, 4:] = 255  # floating island, 8 voxels
    r = solve(b, "z", voxel_size_um=20, backend="numpy")
    assert r.removed_voxels == 8 and r.n_elements == 24


def test_progress_callback_reports_iterations():
    seen = []
    r = solve(
        lattice(),
        "x",
        voxel_size_um=20,
        backend="numpy",
        preconditioner="jacobi",
        callback=lambda i, res: seen.append((i, res)),
    )
    assert [i for i, _ in seen] == list(range(1, r.iterations + 1))
    assert seen[-1][1] <= 1e-6 < seen[0][1]


def test_import_does_not_load_cupy():
    import subprocess

    code = "import sys, bonesim.mechanics, bonesim.cli.mechanics_cmd; sys.exit('cupy' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0
    )


def test_pcg_progress_writes_no_carriage_returns_off_a_terminal(bone_file):
    r = CliRunner().invoke(main, ["mechanics", str(bone_file), "--axis", "z", "--backend", "numpy"])
    assert r.exit_code == 0, r.output
    assert "\r" not in r.stderr, repr(r.stderr[:200])
