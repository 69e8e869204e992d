"""``bonesim render --field sed``: the bone surface coloured by a stored SED map.

Images are checked for properties (size, SED colours present, the axes differ),
never against golden pixels; rendering tests skip when no off-screen GL exists.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import write_volume
from bonesim.io.sed import source_info, write_sed_file
from bonesim.mechanics import solve
from bonesim.viz import gl, scene
from bonesim.volume import Volume
from tests.mechanics.test_mech_cli import lattice

KW = dict(camera="iso", size=(240, 180), legend=False, annotate=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sed")
    bone = d / "bone.h5"
    vol = Volume(lattice(12), 20.0)
    write_volume(bone, vol, xdmf=False)
    maps, solves = {}, {}
    for ax in ("z", "x"):
        r = solve(vol, ax, backend="numpy")
        maps[ax] = r.sed
        solves[ax] = {"strain": r.strain, "apparent_modulus_mpa": r.apparent_modulus_mpa}
    sed = write_sed_file(
        d / "sed.h5",
        vol,
        maps,
        solves,
        settings={"tissue_modulus_gpa": 10.0, "poisson": 0.3},
        source=source_info(bone, vol),
    )
    return bone, sed


@pytest.fixture
def pv_clean():
    info = gl.probe()
    if not info.ok:
        pytest.skip(f"no off-screen OpenGL: {info.reason}")
    import pyvista as pv

    pv.global_theme.restore_defaults()
    yield pv
    pv.close_all()


def warm_pixels(img: np.ndarray) -> int:
    """Pixels of the orange/yellow/purple end of the SED map (ivory bone has r - b < 50)."""
    r, b = img[..., 0].astype(int), img[..., 2].astype(int)
    return int(((r - b) > 80).sum())


def test_field_grid_takes_the_bone_value_at_the_surface():
    bone = np.zeros((6, 6, 6), np.uint8)
    bone[2:4, 2:4, 2:4] = 255
    sed = np.where(bone > 0, 3.0, 0.0).astype(np.float32)
    sed[2, 2, 2] = 1.0
    g = scene.field_grid(sed, bone, 20.0)
    assert g.shape == (8, 8, 8)
    assert g.min() >= 1.0 and g.max() == 3.0  # marrow carries the nearest bone value, never 0
    assert g[1 + 2, 1 + 2, 1 + 2] == 1.0
    coarse = scene.field_grid(sed, bone, 20.0, downsample=2)
    assert coarse[2, 2, 2] == pytest.approx((1.0 + 7 * 3.0) / 8)  # mean over the bone of the block
    lo, hi = scene.log_range(np.array([0.0, 1.0, 2.0, 3.0, 1000.0]), (0, 100))
    assert (lo, hi) == (1.0, 1000.0)
    with pytest.raises(BonesimError, match="zero everywhere"):
        scene.log_range(np.zeros(4))


def test_render_sed_colours_and_axes(files, pv_clean):
    from bonesim.viz import render_frame, render_plotter

    _, sed = files
    plain = render_frame(sed, **KW)  # the bone alone: ivory
    z = render_frame(sed, field="sed", **KW)  # default: the first of z, y, x present
    x = render_frame(sed, field="sed", axis="x", **KW)
    assert z.shape == (180, 240, 3)
    assert warm_pixels(plain) < 20 < warm_pixels(z)
    assert np.array_equal(z, render_frame(sed, field="sed", axis="z", **KW))
    assert (np.abs(z.astype(int) - x.astype(int)).sum(axis=2) > 30).mean() > 0.01
    p = render_plotter(sed, field="sed", size=(200, 150))
    try:
        assert "SED [kJ/m³]" in p.scalar_bars  # the labelled colour bar
    finally:
        p.close()


def test_cli_render_sed_and_errors(files, pv_clean, tmp_path):
    bone, sed = files
    runner = CliRunner()
    png = tmp_path / "s.png"
    r = runner.invoke(
        main, ["render", str(sed), "--field", "sed", "--axis", "x", "-o", str(png), "--size", "160x120"]
    )
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 1000
    r = runner.invoke(main, ["render", str(bone), "--field", "sed", "-o", str(tmp_path / "b.png")])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "holds no SED maps" in r.output and "--save-sed" in r.output
    r = runner.invoke(
        main, ["render", str(sed), "--field", "sed", "--axis", "y", "-o", str(tmp_path / "y.png")]
    )
    assert r.exit_code == 1 and "along z, x only, not y" in r.output
    r = runner.invoke(main, ["render", str(sed), "--axis", "z", "-o", str(tmp_path / "a.png")])
    assert r.exit_code == 2 and "--field sed" in r.output
    help_ = runner.invoke(main, ["render", "--help"]).output
    assert "Examples:" in help_ and "--field sed --axis z" in help_
