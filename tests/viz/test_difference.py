"""The difference view: lost/formed/perforated masks against day 0, and `render --diff`."""

from __future__ import annotations

import numpy as np
import pytest
from _results import write_result
from click.testing import CliRunner

from bonesim.errors import InputError
from bonesim.viz import gl
from bonesim.viz.difference import COLOURS, difference_masks

SHAPE = (24, 40, 40)
#: The plate (z range) and the known blocks: a hole through it, a shallow pit, new bone on top.
PLATE = slice(10, 16)
HOLE = (PLATE, slice(24, 32), slice(24, 32))
PIT = (slice(13, 16), slice(6, 14), slice(6, 14))
NEW = (slice(16, 18), slice(6, 14), slice(24, 32))


def frames() -> tuple[np.ndarray, np.ndarray]:
    b0 = np.zeros(SHAPE, np.uint8)
    b0[PLATE] = 255
    bt = b0.copy()
    bt[HOLE] = 0
    bt[PIT] = 0
    bt[NEW] = 255
    return b0, bt


def block(*slices) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    for s in slices:
        m[s] = True
    return m


def test_masks_equal_the_removed_and_added_blocks():
    b0, bt = frames()
    d = difference_masks(b0, bt)
    assert np.array_equal(d.lost, block(HOLE, PIT))
    assert np.array_equal(d.perforated, block(HOLE))  # through the plate; the pit is not
    assert np.array_equal(d.formed, block(NEW))
    assert np.array_equal(d.current, bt > 127)
    s = d.summary()
    n0 = int((b0 > 127).sum())
    assert s["lost_vox"] == 8 * 8 * 6 + 8 * 8 * 3
    assert s["lost_pct"] == pytest.approx(100 * s["lost_vox"] / n0)


def test_perforation_needs_the_whole_run_lost_and_inside_the_volume():
    b0, bt = frames()
    bt[HOLE] = 0
    bt[10, 24:32, 24:32] = 255  # a floor left under the hole: a deep pit, not a perforation
    assert not difference_masks(b0, bt).perforated.any()
    # a plate that fills the volume to its top face: a hole through it is not known to be whole
    top = np.zeros((6, 20, 20), np.uint8)
    top[2:] = 255
    cut = top.copy()
    cut[2:, 5:10, 5:10] = 0
    assert not difference_masks(top, cut).perforated.any()
    # a perforation smaller than the 12-voxel cluster filter is dropped as noise
    b0 = np.zeros(SHAPE, np.uint8)
    b0[10:11] = 255
    bt = b0.copy()
    bt[10, 5:7, 5:7] = 0  # 4 voxels through a one-voxel plate
    assert not difference_masks(b0, bt).perforated.any()
    assert difference_masks(b0, bt, min_cluster=0).perforated.sum() == 4


def test_bad_input_is_refused():
    b0, bt = frames()
    with pytest.raises(InputError, match="one shape"):
        difference_masks(b0, bt[:-1])
    with pytest.raises(InputError, match="min_cluster"):
        difference_masks(b0, bt, min_cluster=-1)


# ----------------------------------------------------------- rendering ----
@pytest.fixture(scope="module")
def gl_ok():
    info = gl.probe()
    if not info.ok:
        pytest.skip(f"no off-screen OpenGL: {info.reason}")
    return info


@pytest.fixture(scope="module")
def diff_h5(tmp_path_factory):
    b0, bt = frames()
    return write_result(tmp_path_factory.mktemp("diff") / "diff.h5", volumes=[b0, b0, bt], physiology=False)


def colour_pixels(img: np.ndarray, name: str, tol: int = 60) -> int:
    """Pixels whose hue is that of colour ``name`` (shading scales all channels)."""
    ref = np.array(COLOURS[name], float)
    rgb = img.astype(float)
    lum = rgb.max(axis=2, keepdims=True)
    scaled = rgb / np.maximum(lum, 1) * ref.max()  # compare hues at the colour's brightness
    return int(((np.abs(scaled - ref).max(axis=2) < tol) & (lum[..., 0] > 60)).sum())


def test_render_diff_shows_lost_formed_and_perforated_colours(diff_h5, gl_ok, tmp_path):
    from bonesim.viz import render_frame

    kw = dict(camera="top", size=(320, 240), legend=False, annotate=False, style="difference")
    last = render_frame(diff_h5, -1, **kw)
    first = render_frame(diff_h5, 0, **kw)
    for name in ("lost", "formed", "perforated"):
        assert colour_pixels(last, name) > 100, name
        assert colour_pixels(first, name) == 0, name
    with pytest.raises(ValueError, match="`style` must be one of"):
        render_frame(diff_h5, style="volume")


def test_cli_render_diff_writes_the_lost_colour(diff_h5, gl_ok, tmp_path):
    import imageio.v3 as iio

    from bonesim.cli import main

    png = tmp_path / "d.png"
    res = CliRunner().invoke(
        main, ["render", str(diff_h5), "--diff", "--camera", "top", "--size", "320x240", "-o", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert colour_pixels(iio.imread(png)[..., :3], "lost") > 100
    res = CliRunner().invoke(main, ["render", str(diff_h5), "--diff", "--field", "sed", "-o", str(png)])
    assert res.exit_code == 2 and "--diff shows bone" in res.output
    assert "--diff" in CliRunner().invoke(main, ["render", "--help"]).output


def test_cli_animate_diff(diff_h5, gl_ok, tmp_path):
    import imageio.v3 as iio

    from bonesim.cli import main

    gif = tmp_path / "d.gif"
    res = CliRunner().invoke(
        main, ["animate", str(diff_h5), "--diff", "--camera", "top", "--size", "160x120", "-o", str(gif)]
    )
    assert res.exit_code == 0, res.output
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] >= 2  # (the GIF writer may merge the two identical first frames)
    assert colour_pixels(frames[0][..., :3], "lost") == 0 < colour_pixels(frames[-1][..., :3], "lost")
