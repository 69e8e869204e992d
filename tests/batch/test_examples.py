"""The example study that ships in examples/ loads, plans and runs as copied."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from bonesim.batch import load_manifest
from bonesim.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "study.toml"


def test_example_study_loads_and_plans():
    study = load_manifest(EXAMPLE)
    assert len(study.runs) == 8
    r = CliRunner().invoke(main, ["batch", str(EXAMPLE), "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def test_example_study_runs_as_copied_when_shortened(tmp_path):
    """The file as shipped, with only `years` shortened so the test stays fast, runs one of its runs."""
    text = (
        EXAMPLE.read_text()
        .replace("years = 2 ", "years = 0.05 ")
        .replace("spinup_years = 0.5", "spinup_years = 0")
    )
    assert text != EXAMPLE.read_text()
    m = tmp_path / "study.toml"
    m.write_text(text)
    r = CliRunner().invoke(main, ["batch", str(m), "--run-index", "0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "results" / "example" / "runs").glob("*.h5"))) == 1
    shutil.rmtree(tmp_path / "results")


def _hpc_md_toml_blocks() -> list[str]:
    import re

    text = (EXAMPLE.parents[1] / "docs" / "hpc.md").read_text()
    return re.findall(r"```toml\n(.*?)```", text, re.S)


def test_example_slurm_array_asks_for_no_gpu(tmp_path):
    """The shipped example is a NumPy study: its array script has no --gres."""
    m = tmp_path / "study.toml"
    shutil.copy(EXAMPLE, m)
    r = CliRunner().invoke(main, ["batch", str(m), "--slurm-array", tmp_path / "s.sbatch"])
    assert r.exit_code == 0, r.output
    script = (tmp_path / "s.sbatch").read_text()
    assert "#SBATCH --array=0-7" in script and "--gres" not in script


def test_hpc_md_manifest_plans_as_copied(tmp_path):
    """docs/hpc.md's manifest, copied with the files it names, passes --dry-run (also with its chunks lines)."""
    from bonesim import phantom
    from bonesim.io.hdf5 import write_volume
    from bonesim.volume import Volume

    blocks = _hpc_md_toml_blocks()
    assert len(blocks) >= 2
    (tmp_path / "volumes").mkdir()
    (tmp_path / "scenarios").mkdir()
    vol = Volume(phantom.gyroid((16, 16, 16), 8), 20.0)
    for name in ("femoral_head", "L1", "L2"):
        write_volume(tmp_path / "volumes" / f"{name}.h5", vol, xdmf=False)
    (tmp_path / "scenarios" / "my_case.toml").write_text('name = "my_case"\n')
    m = tmp_path / "study.toml"
    m.write_text(blocks[0])
    study = load_manifest(m)
    assert len(study.runs) == 4 * 3 * 4  # femoral_head, L1, L2, gyroid128 x 3 scenarios x 4 seeds
    r = CliRunner().invoke(main, ["batch", str(m), "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "48 to run, 0 finished" in r.output
    r = CliRunner().invoke(main, ["batch", str(m), "--slurm-array", tmp_path / "s.sbatch"])
    assert r.exit_code == 0, r.output
    script = (tmp_path / "s.sbatch").read_text()
    assert "#SBATCH --gres=gpu:h100:1" in script and "#SBATCH --array=0-47%16" in script
    # the chunked-volume lines of the same page, uncommented into the manifest
    m.write_text(blocks[0].replace("# chunks = 512", "\n".join(blocks[1].splitlines()[:2]), 1))
    assert load_manifest(m).runs[0].chunks == (512, 512, 512)
