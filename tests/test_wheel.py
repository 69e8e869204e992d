"""The built wheel ships the CUDA kernels (and data) so an installed bonesim finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _kernels() -> list[Path]:
    return sorted((ROOT / "bonesim").glob("*/kernels/*.cu*"))


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="not a source checkout")
def test_wheel_ships_kernels(tmp_path):
    pytest.importorskip("hatchling")
    # build with the installed hatchling, no network (no isolated build env)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (whl,) = tmp_path.glob("bonesim-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert _kernels(), "no kernel sources found in bonesim/*/kernels"
    for cu in _kernels():
        rel = cu.relative_to(ROOT).as_posix()
        assert rel in names, f"{rel} missing from {whl.name}"
    for sub in ("scenarios", "reference"):
        for f in (ROOT / "data" / sub).glob("*"):
            if f.is_file() and not f.name.startswith("."):
                assert f"bonesim/_data/{sub}/{f.name}" in names
    assert "bonesim/cli/volume_cmds.py" in names
    # the real sample ships segmented, with its README and LICENSE; its slices stay out
    for f in ("bone_sigma1_t63.npz", "README.md", "LICENSE"):
        assert f"bonesim/_data/lhdl_3155_D_4_bc/{f}" in names
    assert not any(n.startswith("bonesim/_data/lhdl_3155_D_4_bc/slices") for n in names)
    # the core set (issue 17): a plain `pip install bonesim` brings Numba, PyVista/VTK, matplotlib
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(whl).read(meta).decode()
    core = [ln for ln in text.splitlines() if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    for pkg in ("numba", "edt", "connected-components-3d", "matplotlib", "pyvista", "vtk", "imageio"):
        assert any(ln.split()[1].startswith(pkg) for ln in core), pkg
    assert not any("cupy" in ln or "dask" in ln for ln in core)
    assert "Provides-Extra: morph" in text and "Provides-Extra: gpu13" in text
