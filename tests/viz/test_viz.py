"""bonesim.viz: remodeling states, off-screen renders, animations, plots, VTI export, CLI.

Images are checked for properties (size, non-blank, which state colours
appear), never against golden pixels. Rendering tests skip with one reason
when the OpenGL probe finds no off-screen GL.
"""

from __future__ import annotations

import numpy as np
import pytest
from _results import CAVITY_YX, FORMED_YX, HOLE_YX, PLATE_Z1, REFILL_YX, result_frames, write_result
from click.testing import CliRunner

from bonesim.errors import BonesimError, InputError
from bonesim.io.result import Result
from bonesim.viz import gl, scene


# ------------------------------------------------------------ fixtures ----
@pytest.fixture(scope="module")
def run_h5(tmp_path_factory):
    return write_result(tmp_path_factory.mktemp("viz") / "run.h5")


@pytest.fixture(scope="module")
def still_h5(tmp_path_factory):
    return write_result(tmp_path_factory.mktemp("viz") / "still.h5", loss=False, scenario="still")


@pytest.fixture(scope="module")
def gl_ok():
    info = gl.probe()
    if not info.ok:
        pytest.skip(f"no off-screen OpenGL: {info.reason}")
    return info


@pytest.fixture
def pv_clean(gl_ok):
    """PyVista hygiene: default theme before, every plotter closed after."""
    import pyvista as pv

    pv.set_plot_theme("document")
    pv.global_theme.restore_defaults()
    yield pv
    pv.close_all()
    pv.global_theme.restore_defaults()


def state_pixels(img: np.ndarray) -> dict[str, int]:
    """Count pixels whose hue is clearly red, green or magenta (shading-tolerant)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return {
        "resorbed": int(((r > 110) & (r > 2 * g) & (r > 2 * b)).sum()),
        "formed": int(((g > 100) & (g > r + 50) & (g > b + 50)).sum()),
        "perforation": int(((r > 110) & (b > 110) & (g < 0.6 * np.minimum(r, b))).sum()),
    }


# ------------------------------------------------ states, no OpenGL ------
def _grids(t=-1, history=False):
    frames = result_frames()
    b0, bt = frames[0], frames[t]
    bmin = np.minimum.reduce(frames[: (t % len(frames)) + 1]) if history else np.minimum(b0, bt)
    return scene.prepare(b0, bt, bmin, 20.0)


def _mm(zyx, g):
    """Voxel (z, y, x) of the unpadded volume -> point in mm (xyz)."""
    z, y, x = zyx
    return np.array([[(x + 0.5) * 0.02, (y + 0.5) * 0.02, (z + 0.5) * 0.02]])


def test_point_states_mark_cavity_floor_formation_and_refill():
    g = _grids()
    # the cavity floor lies inside the initial plate: resorbed
    floor = _mm((PLATE_Z1 - 4.5, *CAVITY_YX), g)
    assert scene.point_states(floor, g)[0] == scene.RESORBED
    # the top of the new disc lies where the first frame had marrow: formed
    assert scene.point_states(_mm((PLATE_Z1 + 1.5, *FORMED_YX), g), g)[0] == scene.FORMED
    # the refilled cavity is back at the initial surface: unchanged by net change,
    # formed when the history of every frame counts
    refill = _mm((PLATE_Z1 - 0.5, REFILL_YX[0], REFILL_YX[1] + 0.3), g)
    assert scene.point_states(refill, g)[0] == scene.QUIESCENT
    assert scene.point_states(refill, _grids(history=True))[0] == scene.FORMED
    # far from every event: quiescent
    assert scene.point_states(_mm((PLATE_Z1 - 0.5, 24, 24), g), g)[0] == scene.QUIESCENT


def test_perforation_only_where_the_plate_is_cut_through():
    g = _grids()
    top_of_hole = _mm((PLATE_Z1 - 0.5, *HOLE_YX), g)
    top_of_cavity = _mm((PLATE_Z1 - 0.5, *CAVITY_YX), g)
    untouched = _mm((PLATE_Z1 - 0.5, 24, 24), g)
    pts = np.vstack([top_of_hole, top_of_cavity, untouched])
    assert scene.perforated_points(pts, g).tolist() == [True, False, False]
    # frame 1: the hole is only half deep, so not yet a perforation
    assert not scene.perforated_points(top_of_hole, _grids(1)).any()


def test_clip_and_downsample_arguments():
    with pytest.raises(ValueError, match="`clip` must be"):
        scene.clip_slices((0, 1), (8, 8, 8), 0.02)
    with pytest.raises(ValueError, match="less than 2 voxels"):
        scene.clip_slices((0, 0.01, 0, 1, 0, 1), (8, 8, 8), 0.02)
    g = scene.prepare(*(np.zeros((8, 8, 8), np.uint8),) * 3, 20.0, downsample=2)
    assert g.bt.shape == (6, 6, 6) and g.spacing_mm == pytest.approx(0.04)
    # padded voxel 1 (first real block) is centred on the first block's centre (0.02 mm)
    assert g.origin_mm[0] + g.spacing_mm == pytest.approx(0.02)


def test_load_info_reads_days_scenario_tables(run_h5):
    info = Result.open(run_h5)
    assert info.n_frames == 4 and info.shape == (32, 48, 48) and info.scenario == "fixture"
    assert info.days.tolist() == [0, 120, 240, 360]
    assert {"metrics", "physiology"} <= set(info.tables)
    with pytest.raises(BonesimError, match="out of range"):
        info.frame_index(4)


def test_probe_failure_is_one_sentence(monkeypatch):
    monkeypatch.setattr(gl, "_PROBE", "import sys; sys.exit(3)")
    gl.probe.cache_clear()
    try:
        info = gl.probe(timeout=30)
        assert not info.ok and "no off-screen OpenGL" in info.reason
        with pytest.raises(BonesimError, match=r"^cannot render: no off-screen OpenGL") as exc:
            gl.require_rendering()
        assert "\n" not in str(exc.value)
    finally:
        gl.probe.cache_clear()


# ------------------------------------------------------------ renders ----
def test_render_last_frame_shows_every_state(run_h5, pv_clean):
    from bonesim.viz import render_frame

    img = render_frame(run_h5, -1, camera="top", size=(320, 240), legend=False, annotate=False)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # shaded, not blank
    counts = state_pixels(img)
    assert all(n > 20 for n in counts.values()), counts


def test_first_frame_and_still_run_show_no_change(run_h5, still_h5, pv_clean):
    from bonesim.viz import render_frame

    first = render_frame(run_h5, 0, camera="top", size=(320, 240), legend=False, annotate=False)
    last = render_frame(run_h5, -1, camera="top", size=(320, 240), legend=False, annotate=False)
    still = render_frame(still_h5, -1, camera="top", size=(320, 240), legend=False, annotate=False)
    for img in (first, still):
        assert max(state_pixels(img).values()) == 0
        assert img.std() > 10
    assert (np.abs(first.astype(int) - last.astype(int)).sum(axis=2) > 30).mean() > 0.005


def test_cameras_clip_and_plotter(run_h5, pv_clean, tmp_path):
    from bonesim.viz import render_frame, render_plotter

    imgs = {c: render_frame(run_h5, -1, camera=c, size=(200, 160)) for c in ("iso", "top", "side")}
    assert not np.array_equal(imgs["iso"], imgs["top"]) and not np.array_equal(imgs["top"], imgs["side"])
    clipped = render_frame(run_h5, -1, camera="top", size=(200, 160), clip=(0, 0.48, 0, 0.96, 0, 0.64))
    assert not np.array_equal(clipped, imgs["top"])
    p = render_plotter(run_h5, 1, size=(100, 80))
    try:
        assert type(p).__name__ == "Plotter" and "bone" in p.actors
    finally:
        p.close()
    render_frame(run_h5, 0, size=(100, 80), out=tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="`camera` must be one of"):
        render_frame(run_h5, camera="front")
    with pytest.raises(BonesimError, match="frame 7 out of range"):
        render_frame(run_h5, 7)


def test_animation_frame_counts_and_progress(run_h5, pv_clean, tmp_path):
    import imageio.v3 as iio
    import imageio_ffmpeg

    from bonesim.viz import animate

    calls = []
    gif = animate(run_h5, tmp_path / "a.gif", size=(160, 120), progress=lambda d, t: calls.append((d, t)))
    assert iio.imread(gif, index=None).shape == (4, 120, 160, 3)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    mp4 = animate(run_h5, tmp_path / "a.mp4", size=(160, 120), frames=[0, 2, 3])
    assert imageio_ffmpeg.count_frames_and_secs(str(mp4))[0] == 3
    with pytest.raises(BonesimError, match="exists"):
        animate(run_h5, gif)
    with pytest.raises(BonesimError, match=r"\.gif or \.mp4"):
        animate(run_h5, tmp_path / "a.avi")


# -------------------------------------------------------- plots, export ----
def test_plot_lines_per_panel(run_h5, tmp_path):
    from bonesim.viz import plot_metrics

    other = write_result(tmp_path / "other.h5", scenario="other", morphometry=True, physiology=False)
    fig = plot_metrics([run_h5, other], tmp_path / "p.png")
    axes = [a for a in fig.axes if a.get_visible()]
    lines = {a.get_ylabel(): len(a.lines) for a in axes}
    assert lines["BV/TV"] == 2  # both files
    assert lines["Tb.Th (µm)"] == 1  # only `other` has morphometry
    assert lines["PTH (pM)"] == 1 and lines["formation efficiency"] == 1  # only run_h5 has physiology
    assert len(axes) == 1 + 2 + 6 + 6  # BV/TV, resorbed and formed since day 0, morphometry, physiology
    resorbed = next(a for a in axes if a.get_ylabel().startswith("resorbed since day 0"))
    formed = next(a for a in axes if a.get_ylabel().startswith("formed since day 0"))
    y_r, y_f = resorbed.lines[0].get_ydata(), formed.lines[0].get_ydata()
    t = Result.open(run_h5).tables["metrics"]
    day = t["day"]
    np.testing.assert_allclose(y_r, np.cumsum(np.where(day > 0, t["bone_removed"], 0.0)))
    assert (
        np.all(np.diff(y_r) >= 0) and np.all(np.diff(y_f) >= 0) and y_r[0] == 0.0
    )  # running sums from day 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    fig = plot_metrics(run_h5, which="physiology")
    assert [len(a.lines) for a in fig.axes if a.get_visible()] == [1] * 6
    fig = plot_metrics([run_h5, run_h5], columns=["bv_tv", "estrogen"])
    assert [len(a.lines) for a in fig.axes if a.get_visible()] == [2, 2]
    with pytest.raises(BonesimError, match="no result has a column 'nope'"):
        plot_metrics(run_h5, columns=["nope"])


def test_plot_of_a_last_frame_analysis_shows_its_points(tmp_path):
    """`analyze --frames last` fills one row: it is drawn as a marker, and every panel spans the run."""
    import h5py

    from bonesim.viz import plot_metrics

    path = write_result(tmp_path / "last.h5", morphometry=True, physiology=False)
    with h5py.File(path, "r+") as f:  # as `analyze --frames last` leaves it: NaN but in the last row
        for col in ("tb_th_um", "smi"):
            d = f["tables/metrics"][col]
            v = d[...].astype(float)
            v[:-1] = np.nan
            d[...] = v
    fig = plot_metrics(path, which="metrics")
    axes = {a.get_ylabel(): a for a in fig.axes if a.get_visible()}
    th = axes["Tb.Th (µm)"]
    markers = [ln for ln in th.lines if ln.get_marker() == "o"]
    assert len(markers) == 1 and markers[0].get_xdata().size == 1
    assert not [ln for ln in axes["BV/TV"].lines if ln.get_marker() == "o"]  # a full series: a line only
    assert th.get_xlim() == axes["BV/TV"].get_xlim()
    lo, hi = th.get_xlim()
    assert lo < 0.0 and hi > 360 / 365.25


def test_plot_ensemble_draws_mean_and_band_per_scenario(tmp_path):
    from bonesim.viz import plot_metrics

    runs = [
        write_result(tmp_path / f"s{k}.h5", scenario="pm", bvtv_scale=1.0 - 0.05 * k, physiology=False)
        for k in range(3)
    ]
    other = write_result(tmp_path / "h.h5", scenario="healthy", physiology=False)
    fig = plot_metrics([*runs, other], which="metrics", ensemble=True)
    ax = next(a for a in fig.axes if a.get_ylabel() == "BV/TV")
    labels = [ln.get_label() for ln in ax.lines]
    assert labels == ["pm (n=3)", "healthy"]
    assert len(ax.collections) == 1  # one band, for the group of three
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    one = Result.open(runs[0]).tables["metrics"]["bv_tv"]
    assert band.max() == pytest.approx(one.max()) and band.min() == pytest.approx(0.9 * one.min())
    mean = ax.lines[0].get_ydata()
    np.testing.assert_allclose(mean, one * 0.95)
    separate = plot_metrics([*runs, other], which="metrics")  # without --ensemble: one line per run
    ax = next(a for a in separate.axes if a.get_ylabel() == "BV/TV")
    assert len(ax.lines) == 4 and not ax.collections


def test_plot_against_age_needs_the_age_column(tmp_path):
    from bonesim.viz import plot_metrics

    r = write_result(tmp_path / "r.h5")  # the fixture's physiology has no age_years
    with pytest.raises(BonesimError, match="no age_years") as exc:
        plot_metrics(r, x="age")
    assert "x='years'" in str(exc.value) and "--" not in str(exc.value)  # the API's spelling
    with pytest.raises(InputError, match="`x` must be one of"):
        plot_metrics(r, x="weeks")
    from bonesim.cli import main

    res = CliRunner().invoke(main, ["plot", str(r), "--x", "age", "-o", str(tmp_path / "p.png")])
    assert res.exit_code == 1 and "(--x years)" in res.output and "x='years'" not in res.output


def test_plot_against_age_of_a_real_run(tmp_path):
    from bonesim import Volume, phantom, write_volume
    from bonesim.cli import main

    bone = tmp_path / "b.h5"
    write_volume(bone, Volume(phantom.trabecular((16, 16, 16), 25.0, bvtv=0.25, seed=2), 25.0), xdmf=False)
    run = tmp_path / "pm.h5"
    args = ["simulate", str(bone), str(run), "--years", "0.2", "--spinup-years", "0", "--backend", "numpy"]
    r = CliRunner().invoke(main, [*args, "--no-progress", "--scenario", "postmenopausal"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "age.png"
    r = CliRunner().invoke(main, ["plot", str(run), "--x", "age", "--which", "metrics", "-o", str(out)])
    assert r.exit_code == 0, r.output
    from bonesim.viz import plot_metrics

    fig = plot_metrics(run, x="age", which="metrics")
    ax = fig.axes[0]
    age = Result.open(run).tables["physiology"]["age_years"]
    assert ax.get_xlabel() == "age (years)"
    x = ax.lines[0].get_xdata()
    assert x[0] == pytest.approx(age[0]) and x[-1] == pytest.approx(age[-1], abs=1e-6)
    assert 40 < x[0] < 90


def test_export_vti_round_trip(run_h5, tmp_path, gl_ok):
    import pyvista as pv

    from bonesim.viz import export_vti

    out = export_vti(run_h5, tmp_path / "last.vti")
    grid = pv.read(out)
    frames = result_frames()
    assert grid.n_cells == frames[-1].size
    assert grid.bounds[1] == pytest.approx(48 * 0.02) and grid.bounds[5] == pytest.approx(32 * 0.02)
    assert np.array_equal(grid.cell_data["bone"], frames[-1].ravel())
    assert grid.cell_data["change"].min() == -255 and grid.cell_data["change"].max() == 255
    assert {"resorbed_day", "formed_day", "bone_initial"} <= set(grid.cell_data)
    with pytest.raises(ValueError, match=r"\.vti"):
        export_vti(run_h5, tmp_path / "x.vtk")


# -------------------------------------------------------------------- CLI ----
def test_cli_commands(run_h5, tmp_path, pv_clean):
    from bonesim.cli import main

    runner = CliRunner()
    png = tmp_path / "r.png"
    res = runner.invoke(
        main, ["render", str(run_h5), "-o", str(png), "--size", "200x150", "--camera", "side"]
    )
    assert res.exit_code == 0, res.output
    import imageio.v3 as iio

    assert iio.imread(png).shape[:2] == (150, 200)
    res = runner.invoke(main, ["render", str(run_h5), "-o", str(png)])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "exists" in res.output
    res = runner.invoke(main, ["render", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "m.png")])
    assert res.exit_code == 1 and "input file not found" in res.output
    res = runner.invoke(
        main, ["plot", str(run_h5), str(run_h5), "-o", str(tmp_path / "p.png"), "--which", "metrics"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["export", str(run_h5), "-o", str(tmp_path / "e.vti")])
    assert res.exit_code == 0 and (tmp_path / "e.vti").exists()
    res = runner.invoke(main, ["animate", str(run_h5), "-o", str(tmp_path / "a.gif"), "--size", "64x48"])
    assert res.exit_code == 0, res.output
    n = Result.open(run_h5).n_frames  # per-frame progress on stderr, plain lines off a terminal
    assert f"animate: {n}/{n} frame (100 %)" in res.stderr and "\r" not in res.stderr, res.stderr
    for cmd in ("render", "animate", "plot", "export"):
        assert "Examples:" in runner.invoke(main, [cmd, "--help"]).output


def test_history_colours_refilled_cavity_as_formed(run_h5, pv_clean):
    from bonesim.viz import render_frame

    kw = dict(camera="top", size=(320, 240), legend=False, annotate=False)
    net = state_pixels(render_frame(run_h5, -1, **kw))["formed"]
    hist = state_pixels(render_frame(run_h5, -1, history=True, **kw))["formed"]
    assert hist > net + 50, (net, hist)


def test_changes_are_measured_from_day_zero_after_spinup(tmp_path, pv_clean):
    from bonesim.viz import render_frame

    path = write_result(tmp_path / "spin.h5", first_day=-120.0)
    info = Result.open(path)
    assert info.reference_index == 1 and info.days[1] == 0
    kw = dict(camera="top", size=(320, 240), legend=False, annotate=False)
    assert max(state_pixels(render_frame(path, 1, **kw)).values()) == 0  # day 0: nothing changed yet
    assert state_pixels(render_frame(path, -1, **kw))["perforation"] > 20


def test_plain_volume_file_renders_without_states(tmp_path, pv_clean):
    from bonesim.io.hdf5 import write_volume
    from bonesim.phantom import plate
    from bonesim.viz import render_frame
    from bonesim.volume import Volume

    path = write_volume(tmp_path / "plate.h5", Volume(plate((24, 32, 32), thickness=6), 20.0))
    img = render_frame(path, 0, size=(160, 120), legend=False, annotate=False, downsample=2)
    assert img.shape == (120, 160, 3) and img.std() > 10
    assert max(state_pixels(img).values()) == 0


def test_engine_result_renders_bone_loss(tmp_path, pv_clean):
    """End to end: a real (small) simulation with a formation deficit, first vs last frame."""
    from bonesim.ca.engine import simulate
    from bonesim.ca.params import RemodelingParams
    from bonesim.phantom import gyroid, gyroid_sheet_level_for
    from bonesim.viz import plot_metrics, render_frame
    from bonesim.volume import Volume

    vol = Volume(gyroid((40, 40, 40), 40, gyroid_sheet_level_for(0.4), sheet=True), 25.0)
    params = RemodelingParams(acf_per_year=2.0, formation_efficiency=0.5)
    res = simulate(
        vol, params, years=0.4, spinup_years=0, backend="numpy", save_every=50, out=tmp_path / "r.h5"
    )
    assert res.metrics["bv_tv"][-1] < res.metrics["bv_tv"][0]
    kw = dict(camera="iso", size=(320, 240), legend=False, annotate=False)
    first, last = render_frame(res.path, 0, **kw), render_frame(res.path, -1, **kw)
    assert max(state_pixels(first).values()) == 0
    assert state_pixels(last)["resorbed"] > 20
    assert (np.abs(first.astype(int) - last.astype(int)).sum(axis=2) > 30).mean() > 0.005
    fig = plot_metrics(res.path, which="metrics")
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[0].lines[0].get_xdata()) == len(res.metrics["day"])
