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
