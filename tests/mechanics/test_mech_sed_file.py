"""``bonesim mechanics --save-sed``: the SED map file (/maps/sed/<axis>), its attributes and refusals."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import read_volume, write_volume
from bonesim.io.result import volume_digest
from bonesim.io.sed import read_sed_map, read_von_mises_map, sed_axes
from bonesim.mechanics import Uniaxial, solve
from bonesim.volume import Volume
from tests.mechanics.test_mech_cli import lattice
from tests.viz._results import write_result


def run(*args):
    return CliRunner().invoke(main, ["mechanics", *map(str, args), "--backend", "numpy", "--no-progress"])


@pytest.fixture
def bone_file(tmp_path):
    p = tmp_path / "bone.h5"
    write_volume(p, Volume(lattice(), 20.0), xdmf=False)
    return p


def test_save_sed_of_every_axis_with_attributes(bone_file, tmp_path):
    out = tmp_path / "sed.h5"
    r = run(bone_file, "--axis", "all", "--save-sed", out, "--tissue-modulus-gpa", 12, "--poisson", 0.25)
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output
    assert sed_axes(out) == ["z", "y", "x"]
    vol = read_volume(out)  # the bone travels with the maps
    np.testing.assert_array_equal(vol.data, lattice())
    assert vol.voxel_size_um == 20.0
    for ax in ("z", "y", "x"):
        ref = solve(read_volume(bone_file), ax, tissue_modulus_gpa=12, poisson=0.25, backend="numpy")
        sed, attrs = read_sed_map(out, ax)
        assert sed.dtype == np.float32 and sed.shape == lattice().shape
        np.testing.assert_allclose(sed, ref.sed, rtol=1e-5, atol=1e-12)
        assert attrs["units"] == "MPa" and attrs["axis"] == ax
        assert attrs["strain"] == 0.01 and attrs["tissue_modulus_gpa"] == 12 and attrs["poisson"] == 0.25
        assert attrs["apparent_modulus_mpa"] == pytest.approx(ref.apparent_modulus_mpa, rel=1e-9)
        assert attrs["frame"] == -1 and np.isnan(attrs["day"])
        assert attrs["input_digest"] == volume_digest(read_volume(bone_file))
        assert attrs["source"] == str(bone_file)
        # Σ sed·h³ is the strain energy (N·mm = 1e-3 J)
        assert float(sed.sum(dtype=np.float64)) * 0.02**3 * 1e-3 == pytest.approx(
            attrs["strain_energy_j"], rel=1e-5
        )
    assert sed[lattice() == 0].max() == 0.0  # marrow stores no energy
    with h5py.File(out, "r") as f:
        assert json.loads(f["maps/sed"].attrs["axes"]) == ["z", "y", "x"]
    assert "sed_z" in out.with_suffix(".xdmf").read_text()  # ParaView sees the maps too
    assert "von_mises_x" in out.with_suffix(".xdmf").read_text()


def test_save_sed_writes_the_von_mises_strain_of_the_same_solve(bone_file, tmp_path):
    out = tmp_path / "sed.h5"
    r = run(bone_file, "--axis", "y", "--save-sed", out, "--strain", 0.002)
    assert r.exit_code == 0, r.output
    ref = solve(read_volume(bone_file), Uniaxial("y", 0.002), backend="numpy")
    vm = read_von_mises_map(out, "y")
    assert vm.dtype == np.float32 and vm.shape == lattice().shape
    np.testing.assert_allclose(vm, ref.von_mises(), rtol=1e-5, atol=1e-12)
    assert vm[lattice() == 0].max() == 0.0 and vm[lattice() > 0].max() > 0.002  # strain concentrates
    with h5py.File(out, "r") as f:
        assert f["maps/von_mises"].attrs["units"] == "1"
        assert f["maps/von_mises/y"].attrs["strain"] == 0.002
    with pytest.raises(BonesimError, match="no von Mises strain map along z"):
        read_von_mises_map(out, "z")


def test_frame_of_a_result_is_recorded(tmp_path):
    src = write_result(tmp_path / "run.h5")
    out = tmp_path / "sed_last.h5"
    r = run(src, "--frame", -1, "--axis", "x", "--save-sed", out)
    assert r.exit_code == 0, r.output
    _, attrs = read_sed_map(out)  # the only axis by default
    with h5py.File(src, "r") as f:
        n, last_day = f["series/bone"].shape[0], float(f["series/day"][-1])
    assert attrs["axis"] == "x" and attrs["frame"] == n - 1
    assert attrs["day"] == pytest.approx(last_day)
    frame = read_volume(src, frame=-1)
    np.testing.assert_array_equal(read_volume(out).data, frame.data)
    assert read_volume(out).metadata["frame"] == n - 1
    with pytest.raises(BonesimError, match=r"along x only, not z; choose axis='x'") as exc:
        read_sed_map(out, "z")
    assert "choose --axis x" in exc.value.cli_message


def test_refusals(bone_file, tmp_path):
    out = tmp_path / "sed.h5"
    out.write_text("old")
    r = run(bone_file, "--save-sed", out)
    assert r.exit_code == 1 and "exists; pass --overwrite" in r.output and out.read_text() == "old"
    r = run(bone_file, "--save-sed", tmp_path / "sed.png")
    assert r.exit_code == 1 and "must end in .h5" in r.output
    r = run(bone_file, "--save-sed", bone_file, "--overwrite")
    assert r.exit_code == 1 and "also an input" in r.output
    r = run(bone_file, "--save-sed", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert sed_axes(out) == ["z"]
    with pytest.raises(BonesimError, match=r"holds no SED maps .*--save-sed"):
        read_sed_map(bone_file)


def test_help_shows_save_sed_example():
    r = CliRunner().invoke(main, ["mechanics", "--help"])
    assert r.exit_code == 0 and "--save-sed sed.h5" in r.output


def test_frame_of_a_simulation_records_its_run(tmp_path):
    from bonesim.ca.engine import simulate
    from bonesim.ca.params import RemodelingParams
    from bonesim.phantom import gyroid, gyroid_sheet_level_for

    vol = Volume(gyroid((16, 16, 16), 16, gyroid_sheet_level_for(0.4), sheet=True), 25.0)
    res = simulate(
        vol,
        RemodelingParams(acf_per_year=2.0),
        years=0.1,
        spinup_years=0,
        backend="numpy",
        save_every=30,
        out=tmp_path / "sim.h5",
    )
    out = tmp_path / "sed.h5"
    r = run(res.path, "--frame", -1, "--save-sed", out)
    assert r.exit_code == 0, r.output
    _, attrs = read_sed_map(out, "z")
    frame = read_volume(res.path, frame=-1)
    assert attrs["frame"] == frame.metadata["frame"] and attrs["day"] == frame.metadata["day"]
    assert attrs["source_input_digest"] == volume_digest(vol)  # the run's input
    assert attrs["input_digest"] == volume_digest(frame)  # the frame solved
