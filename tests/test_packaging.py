"""The core install set does the whole CPU job; GPU and HPC stay add-ons (issue 17)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="not a source checkout")


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _names(reqs):
    return {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_core_set_runs_simulate_analyze_render_plot_at_full_speed():
    core = _names(_project()["dependencies"])
    # analyze at full speed (issue 17: ~20x slower without Numba), render, plot, GIF animations
    assert {"numba", "edt", "connected-components-3d", "matplotlib", "pyvista", "vtk", "imageio"} <= core
    assert not core & {"cupy-cuda12x", "cupy-cuda13x", "dask", "distributed", "dask-jobqueue", "dask-cuda"}


def test_every_core_requirement_has_a_lower_bound():
    for r in _project()["dependencies"]:
        assert ">=" in r, r


def test_gpu_and_hpc_extras_are_true_add_ons():
    extras = _project()["optional-dependencies"]
    for name in ("gpu", "gpu13", "hpc", "hpc-gpu", "viz", "morph", "io"):
        assert name in extras
    assert _names(extras["gpu"]) == {"cupy-cuda12x"} and _names(extras["gpu13"]) == {"cupy-cuda13x"}
    assert {"dask", "distributed"} <= _names(extras["hpc"])


def test_the_extras_named_by_missing_package_messages_exist():
    from bonesim._optional import OPTIONAL

    extras = _project()["optional-dependencies"]
    for module, (_, extra) in OPTIONAL.items():
        assert extra in extras, (module, extra)


def test_readme_install_section_names_the_extras():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for extra in ("bonesim[gpu]", "bonesim[gpu13]", "bonesim[hpc]", "bonesim[io]"):
        assert extra in text, extra
    assert "pip install bonesim" in text
