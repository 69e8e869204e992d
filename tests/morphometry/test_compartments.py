"""Cortical/trabecular compartments: a phantom with a known cortical shell, import and analyze --roi."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.errors import BonesimError, InputError
from bonesim.morphometry.compartments import CORTICAL, OUTSIDE, TRABECULAR, compartments, region, summary

VOXEL_UM = 40.0
R_IN, R_OUT = 34, 44  # cortex 10 voxels = 400 µm; trabecular walls 3 voxels = 120 µm


def phantom(shape=(24, 96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """A tube (cortex, with 8 pores of 2.4 voxels) around a lattice of trabecular walls; the true labels."""
    _, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    r = np.hypot(y - 47.5, x - 47.5)
    cortex = (r >= R_IN) & (r < R_OUT)
    bone = cortex | ((((y % 12) < 3) | ((x % 12) < 3)) & (r < R_IN))
    for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        bone &= ~(np.hypot(y - 47.5 - 39 * np.sin(a), x - 47.5 - 39 * np.cos(a)) <= 1.2)
    truth = np.where(r < R_OUT, np.uint8(TRABECULAR), np.uint8(OUTSIDE))
    truth[cortex] = CORTICAL
    return np.broadcast_to(bone * np.uint8(255), shape).copy(), np.broadcast_to(truth, shape).copy()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_compartments_of_a_shell_around_trabeculae_within_tolerance():
    bone, truth = phantom()
    lab = compartments(bone, VOXEL_UM)
    # stated tolerance (docs/import.md): Dice >= 0.93 cortex, >= 0.95 trabecular; nothing outside
    assert dice(lab == CORTICAL, truth == CORTICAL) >= 0.93
    assert dice(lab == TRABECULAR, truth == TRABECULAR) >= 0.95
    assert np.array_equal(lab == OUTSIDE, truth == OUTSIDE)
    assert not ((lab == TRABECULAR) & (truth == CORTICAL)).any()  # the pores stay in the cortex
    got, want = summary(lab, bone, VOXEL_UM), summary(truth, bone, VOXEL_UM)
    assert got["ct_th_um"] == pytest.approx(want["ct_th_um"], rel=0.2)
    assert got["trabecular_bv_tv"] == pytest.approx(want["trabecular_bv_tv"], abs=0.04)


def test_a_cortex_thinner_than_the_trabecular_limit_is_not_found():
    bone, truth = phantom()
    found = compartments(bone, VOXEL_UM, trabecular_max_um=500.0) == CORTICAL  # 500 µm > 400 µm cortex
    assert found.sum() < 0.5 * (truth == CORTICAL).sum()  # only thick wall-cortex junctions remain
    with pytest.raises(InputError, match="trabecular_max_um"):
        compartments(bone, VOXEL_UM, trabecular_max_um=0)
    with pytest.raises(InputError, match="roi"):
        region(np.zeros(3, np.uint8), "marrow")


def test_morphometry_inside_a_region_uses_its_volume():
    from bonesim.morphometry import morphometry

    bone, truth = phantom()
    inside = region(truth, "trabecular")
    m = morphometry(bone, voxel_size_um=VOXEL_UM, indices=["bv_tv", "tb_th", "tb_sp"], roi=inside)
    assert m["bv_tv"] == pytest.approx(float((bone[inside] > 127).mean()))
    _, y, x = np.ogrid[: bone.shape[0], : bone.shape[1], : bone.shape[2]]
    lattice = np.broadcast_to((((y % 12) < 3) | ((x % 12) < 3)) * np.uint8(255), bone.shape)
    walls = morphometry(lattice, voxel_size_um=VOXEL_UM, indices=["tb_th"])["tb_th_um"]
    assert m["tb_th_um"] == pytest.approx(walls, rel=0.1)  # the walls, not the cortex
    whole = morphometry(bone, voxel_size_um=VOXEL_UM, indices=["tb_th"])
    assert whole["tb_th_um"] > 1.3 * m["tb_th_um"]
    with pytest.raises(InputError, match="backend='cpu'"):
        morphometry(bone, voxel_size_um=VOXEL_UM, roi=inside, backend="gpu")


def test_import_compartments_auto_and_analyze_roi(tmp_path):
    from bonesim.cli import main
    from bonesim.morphometry import analyze

    bone, truth = phantom()
    np.save(tmp_path / "scan.npy", bone)
    out = tmp_path / "bone.h5"
    runner = CliRunner()
    args = ["import", str(tmp_path / "scan.npy"), str(out), "--voxel-size", "40", "--threshold", "127"]
    res = runner.invoke(main, [*args, "--compartments", "auto"])
    assert res.exit_code == 0, res.output
    assert "compartments: cortical" in res.output
    with h5py.File(out, "r") as f:
        lab = f["volume/compartments"][...]
    assert dice(lab == CORTICAL, truth == CORTICAL) >= 0.93
    info = runner.invoke(main, ["info", str(out)])
    assert info.exit_code == 0 and "compartments cortical" in info.output and "morphological" in info.output
    res = runner.invoke(main, ["analyze", str(out), "--roi", "trabecular", "--no-progress"])
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        bv_tv = float(f["tables/morphometry_trabecular/bv_tv"][0])
    assert bv_tv == pytest.approx(float((bone[lab == TRABECULAR] > 127).mean()))
    assert bv_tv < float((bone > 127).mean() * bone.size / (truth > 0).sum())  # the cortex left out
    # a simulation carries its input's compartments into the result
    run = tmp_path / "run.h5"
    sim = ["simulate", str(out), str(run), "--years", "0.05", "--spinup-years", "0", "--no-progress"]
    assert runner.invoke(main, sim).exit_code == 0
    table = analyze(run, roi="trabecular", write=False)
    assert len(table["frame"]) >= 2 and table["bv_tv"][0] == pytest.approx(bv_tv)
    # a file without compartments: API spelling from the library, option spelling from the CLI
    plain = tmp_path / "plain.h5"
    assert runner.invoke(main, [*args[:2], str(plain), *args[3:]]).exit_code == 0
    with pytest.raises(BonesimError, match=r"Volume\(\.\.\., compartments=labels\)") as exc:
        analyze(plain, roi="trabecular", write=False)
    assert "--" not in str(exc.value)
    res = runner.invoke(main, ["analyze", str(plain), "--roi", "trabecular", "--no-progress"])
    assert res.exit_code == 1 and "--compartments auto" in res.output and "write_volume" not in res.output
