"""A missing optional package: one sentence naming the pip extra, exit 1, no traceback (issue 17).

Each package is hidden by ``sys.modules[name] = None`` (``import name`` then
raises ``ModuleNotFoundError``), so these run with everything installed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from _results import write_result

from bonesim import _optional, phantom
from bonesim.cli import main
from bonesim.cli._common import user_errors
from bonesim.io.hdf5 import write_volume
from bonesim.io.result import partial_path
from bonesim.volume import Volume


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_sentence(r, *words):
    assert r.exit_code == 1, r.output
    out = r.output.strip()
    assert "Traceback" not in out and "Internal error" not in out, out
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, out
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def hide(monkeypatch, *names):
    for n in names:
        monkeypatch.setitem(sys.modules, n, None)


@pytest.fixture(scope="module")
def run_h5(tmp_path_factory):
    return write_result(tmp_path_factory.mktemp("opt") / "run.h5", shape=(12, 16, 16), frames=2)


def test_plot_without_matplotlib(monkeypatch, run_h5, tmp_path):
    hide(monkeypatch, "matplotlib")
    line = one_sentence(
        run("plot", run_h5, "-o", tmp_path / "p.png"), "bonesim plot needs matplotlib", "'bonesim[viz]'"
    )
    assert line == "Error: bonesim plot needs matplotlib: pip install 'bonesim[viz]'"
    assert not (tmp_path / "p.png").exists()


def test_export_without_pyvista(monkeypatch, run_h5, tmp_path):
    hide(monkeypatch, "pyvista")
    one_sentence(run("export", run_h5, "-o", tmp_path / "x.vti"), "bonesim export needs pyvista", "[viz]")
    assert not (tmp_path / "x.vti").exists()


def test_render_and_animate_without_pyvista(monkeypatch, run_h5, tmp_path):
    hide(monkeypatch, "pyvista")
    one_sentence(run("render", run_h5, "-o", tmp_path / "r.png"), "bonesim render needs pyvista", "[viz]")
    r = run("animate", run_h5, "-o", tmp_path / "a.gif")
    one_sentence(r, "bonesim animate needs pyvista", "[viz]")
    assert r.output.startswith("Error:"), r.output


def test_animate_without_imageio(monkeypatch, run_h5, tmp_path):
    hide(monkeypatch, "imageio", "imageio.v2")
    r = run("animate", run_h5, "-o", tmp_path / "a.gif")
    one_sentence(r, "bonesim animate needs imageio", "[viz]")
    assert r.output.startswith("Error:"), r.output  # before the progress bar, not glued to it


def test_physiology_plot_without_matplotlib(monkeypatch, tmp_path):
    hide(monkeypatch, "matplotlib")
    r = run("physiology", "healthy-adult", "--years", "0.1", "--plot", tmp_path / "p.png")
    one_sentence(r, "bonesim physiology needs matplotlib", "[viz]")


def test_chunks_without_dask_leaves_nothing_behind(monkeypatch, tmp_path):
    write_volume(tmp_path / "bone.h5", Volume(phantom.gyroid((16, 16, 16), 8, 0.5, sheet=True), 20.0))
    hide(monkeypatch, "dask", "dask.array")
    out = tmp_path / "run.h5"
    r = run("simulate", tmp_path / "bone.h5", out, "--chunks", 8, "--backend", "numpy", "--years", "0.01")
    one_sentence(r, "bonesim simulate --chunks needs dask", "'bonesim[hpc]'")
    assert not out.exists() and not partial_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bone.h5", "bone.xdmf"]


def test_cupy_backend_without_cupy_names_the_extra(monkeypatch, tmp_path):
    write_volume(tmp_path / "bone.h5", Volume(phantom.gyroid((16, 16, 16), 8, 0.5, sheet=True), 20.0))
    hide(monkeypatch, "cupy")
    r = run("simulate", tmp_path / "bone.h5", tmp_path / "run.h5", "--backend", "cupy", "--years", "0.01")
    one_sentence(r, "'bonesim[gpu]'", "gpu13")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bone.h5", "bone.xdmf"]


def _invoke_demo(body):
    """Run ``body`` as the command ``bonesim demo`` behind the CLI's error handling."""
    demo = click.command("demo")(user_errors(body))

    @click.group()
    def grp():
        pass

    grp.add_command(demo)
    return CliRunner().invoke(grp, ["demo"])


def test_a_stray_import_of_an_optional_package_is_one_sentence(monkeypatch):
    hide(monkeypatch, "distributed")

    def demo():
        import distributed  # noqa: F401

    r = _invoke_demo(demo)
    assert r.exit_code == 1
    assert r.output.strip() == "Error: bonesim demo needs distributed: pip install 'bonesim[hpc]'"


def test_a_missing_core_module_is_still_a_bug(monkeypatch):
    def demo():
        import bonesim_no_such_module  # noqa: F401

    r = _invoke_demo(demo)
    assert r.exit_code == 2 and "Internal error" in r.output


def test_numba_fallback_warns_once(monkeypatch, caplog):
    from bonesim.morphometry import thickness

    hide(monkeypatch, "numba")
    monkeypatch.setattr(thickness, "_NUMBA_RIDGE", None)
    monkeypatch.setattr(thickness, "_NUMBA_KERNEL", None)
    monkeypatch.setattr(_optional, "_warned", set())
    with caplog.at_level(logging.WARNING):
        assert thickness._numba_ridge() is None
        assert thickness._numba_kernel() is None
    warnings = [r.getMessage() for r in caplog.records if "numba" in r.getMessage()]
    assert len(warnings) == 1 and "'bonesim[morph]'" in warnings[0] and "slow" in warnings[0]
