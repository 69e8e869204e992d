"""SMI is reported with BoneJ's caveat (concave surfaces) in docs, help and output (issue 17)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bonesim import phantom
from bonesim.cli import main
from bonesim.io.hdf5 import write_volume
from bonesim.volume import Volume

ROOT = Path(__file__).resolve().parents[2]


def test_help_states_the_caveat_and_keeps_examples():
    r = CliRunner().invoke(main, ["analyze", "--help"])
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "ill-defined where much of the surface is concave" in text and "Salmon" in text
    assert "Examples:" in r.output


def test_output_line_flags_smi(tmp_path):
    p = tmp_path / "bone.h5"
    write_volume(p, Volume(phantom.gyroid((16, 16, 16), 8), 20.0), xdmf=False)
    r = CliRunner().invoke(main, ["analyze", str(p), "--no-write"])
    assert r.exit_code == 0, r.output
    assert "SMI" in r.output and "ill-defined on concave surfaces" in r.output


def test_docs_state_the_caveat():
    text = (ROOT / "docs" / "morphometry.md").read_text(encoding="utf-8")
    assert "Salmon et al. (2015" in text and "6:162" in text and "concave" in text
