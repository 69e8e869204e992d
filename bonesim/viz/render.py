"""Render one saved frame of a result as an off-screen PyVista image.

See :mod:`bonesim.viz.scene` for what the colours mean. Everything is placed in
millimetres (voxel centres at ``(i + 0.5) * voxel_size``, matching the XDMF
sidecar), so the scale bar and the clipping box are in mm.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from bonesim._validation import check_choice
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import BonesimError, InputError
from bonesim.io.outputs import atomic_write
from bonesim.io.result import Result
from bonesim.viz import scene

log = logging.getLogger(__name__)

CAMERAS = ("iso", "top", "side")
#: What ``render`` colours the bone surface by: the remodeling state, or a stored SED map.
FIELDS = ("remodeling", "sed")
#: How ``render`` draws the change since day 0: coloured surface states (with the day-0 ghost),
#: or the difference view (lost/formed/perforated bone as solid volumes, :mod:`bonesim.viz.diffview`).
STYLES = ("surface", "difference")
#: Colour map and percentile clip of ``field="sed"`` (log scale, kJ/m³).
SED_CMAP = "inferno"
SED_PERCENTILES = (2.0, 98.0)
BACKGROUND = (30, 32, 36)
#: Camera direction (from focal point towards the eye) and view-up, VTK xyz.
_VIEWS = {
    "iso": ((1.0, -1.0, 0.85), (0.0, 0.0, 1.0)),
    "top": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "side": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
}


def _as_info(result: str | os.PathLike | Result) -> Result:
    return result if isinstance(result, Result) else Result.open(result)


def _rgb(c: Sequence[int]) -> tuple[float, float, float]:
    return tuple(v / 255.0 for v in c)  # type: ignore[return-value]


def nice_length(extent_mm: float) -> float:
    """A round scale-bar length, at most ~30 % of ``extent_mm``.

    >>> nice_length(0.96), nice_length(5.12), nice_length(0.1)
    (0.25, 1.0, 0.025)
    """
    target = 0.3 * extent_mm
    exp = math.floor(math.log10(target))
    for m in (5, 2.5, 2, 1):
        if m * 10**exp <= target:
            return float(f"{m * 10**exp:.6g}")
    return float(f"{10**exp:.6g}")  # pragma: no cover


def _frame_states(info: Result, indices: Sequence[int], history: bool) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, (b0, bt, bmin))`` for increasing frame ``indices``.

    ``b0`` is the reference frame (the first saved frame at day >= 0, i.e.
    after any stored spin-up). ``bmin`` is ``min(b0, bt)``, or with
    ``history`` the running minimum over every saved frame from the
    reference to the index (so refilled cavities count as formed bone).
    """
    ref = info.reference_index
    (b0,) = info.frames([ref])
    running = b0.copy()
    last = ref
    for idx in indices:
        (bt,) = (b0,) if idx == ref else info.frames([idx])
        if history and idx > ref:
            if idx < last:
                raise InputError("frames must be rendered in increasing order")
            for j in range(last + 1, idx):
                (bj,) = info.frames([j])
                np.minimum(running, bj, out=running)
            np.minimum(running, bt, out=running)
            last = idx
            bmin = running.copy()
        else:
            bmin = np.minimum(b0, bt)
        yield idx, (b0, bt, bmin)


def build_plotter(
    info: Result,
    idx: int,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    camera: str = "iso",
    clip: Sequence[float] | None = None,
    size: tuple[int, int] = (800, 600),
    downsample: int | str = "auto",
    max_edge: int = 256,
    max_triangles: int = 1_500_000,
    ghost: bool = True,
    perforations: bool = True,
    annotate: bool = True,
    legend: bool = True,
    scale_bar: bool = True,
    tolerance: float = scene.TOLERANCE,
    smooth: float = 0.6,
    parallel: bool | None = None,
    field: tuple[np.ndarray, dict[str, Any]] | None = None,
    style: str = "surface",
) -> Any:
    """Make an off-screen ``pyvista.Plotter`` showing frame ``idx`` (arrays already read).

    ``style="difference"`` draws the difference view instead of the surface
    states: the bone now in grey, the bone of day 0 lost since in red, new
    bone in green, perforations in magenta (:mod:`bonesim.viz.difference`).

    ``field`` = ``(sed, attrs)`` (see :func:`bonesim.io.sed.read_sed_map`)
    colours the surface by the SED map instead of the remodeling state: a log
    colour scale clipped to the 2nd–98th percentile of the bone's SED, with a
    colour bar in kJ/m³; no ghost.
    """
    import pyvista as pv

    check_choice(camera, CAMERAS, name="camera")
    check_choice(style, STYLES, name="style")
    if style == "difference" and field is not None:
        raise InputError("the difference view shows bone, not a field: use style='surface' with field='sed'")
    w, h = (int(v) for v in size)
    if w < 16 or h < 16:
        raise InputError(f"`size` must be at least 16x16 pixels, got {tuple(size)!r}")
    if downsample == "auto":
        k = scene.auto_downsample(info.shape, max_edge)
    elif isinstance(downsample, (int, np.integer)) and downsample >= 1:
        k = int(downsample)
    else:
        raise InputError(f"`downsample` must be 'auto' or an integer >= 1, got {downsample!r}")
    b0, bt, bmin = arrays

    def grid(arr: np.ndarray, origin: tuple[float, ...], spacing: float) -> Any:
        img = pv.ImageData(dimensions=arr.shape[::-1], spacing=(spacing,) * 3, origin=origin)
        img.point_data["bone"] = arr.ravel()
        return img

    def surface(arr: np.ndarray, origin: tuple[float, ...], spacing: float) -> Any:
        return grid(arr, origin, spacing).contour(
            [scene.BONE_LEVEL],
            scalars="bone",
            method="flying_edges",
            compute_normals=True,
            compute_scalars=False,
        )

    if downsample == "auto":
        # triangles scale with the square of the voxel edge: coarsen to fit the budget
        # (counted on the unsmoothed current frame, which is cheap)
        probe_g = scene.prepare(bt, bt, bt, info.voxel_size_um, downsample=k, clip=clip)
        n_tri = surface(probe_g.bt, probe_g.origin_mm, probe_g.spacing_mm).n_cells
        if n_tri > max_triangles:
            k *= math.ceil(math.sqrt(n_tri / max_triangles))
            log.info("%d triangles > max_triangles=%d: downsampling by %d", n_tri, max_triangles, k)
        del probe_g
    diff_summary = None
    if style == "difference":
        from bonesim.viz.diffview import add_difference

        p = pv.Plotter(off_screen=True, window_size=(w, h))
        p.set_background(_rgb(BACKGROUND))
        diff_summary = add_difference(
            p,
            b0,
            bt,
            info.voxel_size_um,
            downsample=k,
            clip=clip,
            smooth=smooth,
            legend=legend,
            background=BACKGROUND,
        )
    else:
        g = scene.prepare(b0, bt, bmin, info.voxel_size_um, downsample=k, clip=clip, smooth=smooth)
        current = surface(g.bt, g.origin_mm, g.spacing_mm)
        ghost_mesh = None
        if ghost and idx != info.reference_index and field is None:
            # the translucent ghost is context: a coarser mesh when the scene is large
            kg = 2 * k if downsample == "auto" and current.n_cells > max_triangles // 4 else k
            if kg == k:
                g0 = (g.b0, g.origin_mm, g.spacing_mm)
            else:
                gg = scene.prepare(b0, b0, b0, info.voxel_size_um, downsample=kg, clip=clip, smooth=smooth)
                g0 = (gg.b0, gg.origin_mm, gg.spacing_mm)
            ghost_mesh = surface(*g0)

        p = pv.Plotter(off_screen=True, window_size=(w, h))
        p.set_background(_rgb(BACKGROUND))
        if current.n_points and field is not None:
            _add_sed_surface(p, current, field, bt, info.voxel_size_um, k, clip, g, legend, h)
        elif current.n_points:
            states = scene.point_states(current.points, g, tolerance)
            current.point_data["state"] = states
            cmap = [_rgb(scene.COLOURS[n]) for n in scene.STATE_NAMES]
            from matplotlib.colors import ListedColormap

            p.add_mesh(
                current,
                scalars="state",
                cmap=ListedColormap(cmap),
                clim=(-0.5, 2.5),
                interpolate_before_map=False,
                show_scalar_bar=False,
                specular=0.2,
                name="bone",
            )
        if ghost_mesh is not None and ghost_mesh.n_points:
            p.add_mesh(ghost_mesh, color=_rgb(scene.COLOURS["initial"]), opacity=0.22, name="initial")
            if perforations:
                mask = scene.perforated_points(ghost_mesh.points, g, tol=tolerance)
                if mask.any():
                    holes = ghost_mesh.extract_points(mask, adjacent_cells=False)
                    if holes.n_cells:
                        p.add_mesh(
                            holes, color=_rgb(scene.COLOURS["perforation"]), opacity=0.8, name="perforation"
                        )

    # the whole volume's box fixes the camera, whatever is clipped or rendered
    hmm = info.voxel_size_um / 1000.0
    nz, ny, nx = info.shape
    box = (0.0, nx * hmm, 0.0, ny * hmm, 0.0, nz * hmm)
    p.add_mesh(pv.Box(bounds=box).outline(), color=(0.55, 0.55, 0.55), line_width=1, name="box")
    if scale_bar:
        _add_scale_bar(p, box, camera)
    if annotate and field is not None:
        p.add_text(
            _sed_label(info, field[1]),
            position="upper_left",
            font_size=max(6, h // 60),
            color="white",
            name="label",
        )
    elif annotate:
        day = float(info.days[idx])
        bv = float(np.mean(bt, dtype=np.float64)) / 255.0
        text = f"{info.scenario}\nday {day:g} ({day / DAYS_PER_YEAR:.2f} y), frame {idx + 1}/{info.n_frames}\nBV/TV {bv:.3f}"
        if diff_summary is not None:
            from bonesim.viz.diffview import summary_text

            text += "\n" + summary_text(diff_summary)
        p.add_text(text, position="upper_left", font_size=max(6, h // 60), color="white", name="label")
    if legend and field is None and style == "surface":
        order = ["initial", "quiescent", "resorbed", "formed", "perforation"]
        labels = {
            "initial": "initial surface",
            "quiescent": "bone",
            "resorbed": "resorbed",
            "formed": "formed",
            "perforation": "perforation",
        }
        entries = [[labels[n], _rgb(scene.COLOURS[n])] for n in order]  # the same key on every frame
        if entries:
            p.add_legend(
                entries,
                bcolor=_rgb(BACKGROUND),
                border=False,
                size=(0.2, 0.04 * len(entries)),
                face="rectangle",
                loc="lower right",
            )
    direction, up = _VIEWS[camera]
    centre = np.array([(box[0] + box[1]) / 2, (box[2] + box[3]) / 2, (box[4] + box[5]) / 2])
    d = np.asarray(direction) / np.linalg.norm(direction)
    p.camera_position = [tuple(centre + d), tuple(centre), up]
    p.camera.parallel_projection = camera != "iso" if parallel is None else bool(parallel)
    pad = 0.08 * max(box[1], box[3], box[5])
    p.reset_camera(
        bounds=(box[0] - pad, box[1] + pad, box[2] - pad, box[3] + pad, box[4] - pad, box[5] + pad)
    )
    p.camera.zoom(1.15 if camera == "iso" else 1.05)
    return p


def _add_sed_surface(p, mesh, field, bt, voxel_size_um, k, clip, g, legend, height) -> None:
    """Colour ``mesh`` by the SED map of ``field`` (log scale, kJ/m³) and add its colour bar."""
    sed, _ = field
    grid = scene.field_grid(sed, bt, voxel_size_um, downsample=k, clip=clip)
    bone_sed = sed[bt > 0] * 1000.0  # MPa -> kJ/m³
    lo, hi = scene.log_range(bone_sed, SED_PERCENTILES)
    values = np.clip(scene.sample_field(mesh.points, grid, g) * 1000.0, lo, hi)
    mesh.point_data["sed_kj_m3"] = values
    p.add_mesh(
        mesh,
        scalars="sed_kj_m3",
        cmap=SED_CMAP,
        clim=(lo, hi),
        log_scale=True,
        show_scalar_bar=legend,
        scalar_bar_args={
            "title": "SED [kJ/m³]",
            "color": "white",
            "vertical": True,
            "position_x": 0.86,
            "position_y": 0.2,
            "width": 0.08,
            "height": 0.6,
            "fmt": "%.3g",
            "n_labels": 4,
            "title_font_size": max(8, height // 45),
            "label_font_size": max(7, height // 55),
        },
        specular=0.2,
        name="bone",
    )
    bar = p.scalar_bars["SED [kJ/m³]"] if legend and "SED [kJ/m³]" in p.scalar_bars else None
    if bar is not None:  # keep the title clear of the top label
        bar.SetVerticalTitleSeparation(max(4, height // 40))


def _sed_label(info: Result, attrs: dict[str, Any]) -> str:
    axis = attrs.get("axis", "?")
    lines = [f"{info.scenario}: SED, {axis} compression"]
    strain, e_app = attrs.get("strain"), attrs.get("apparent_modulus_mpa")
    if strain is not None:
        lines[0] += f" {100 * float(strain):g} %"
    if e_app is not None:
        lines.append(f"E_app,{axis} {float(e_app):.0f} MPa")
    frame, day = attrs.get("frame", -1), attrs.get("day")
    if frame is not None and int(frame) >= 0:
        lines.append(
            f"frame {int(frame)}" + (f", day {float(day):g}" if day is not None and np.isfinite(day) else "")
        )
    lines.append(f"colour: log, {SED_PERCENTILES[0]:g}-{SED_PERCENTILES[1]:g} percentile")
    return "\n".join(lines)


def _add_scale_bar(p: Any, box: tuple[float, ...], camera: str) -> None:
    """A white bar of a round length in mm along x, just outside the box, facing the camera."""
    import pyvista as pv

    length = nice_length(box[1] - box[0])
    off = 0.04 * max(box[1], box[3], box[5])
    if camera == "side":  # looking along y: put the bar under the box
        start, label_at = (box[0], box[2], box[4] - off), (box[0] + length / 2, box[2], box[4] - 3 * off)
    elif camera == "top":
        start, label_at = (box[0], box[2] - off, box[4]), (box[0] + length / 2, box[2] - 3 * off, box[4])
    else:  # iso: the label below the bar on screen
        start = (box[0], box[2] - off, box[4])
        label_at = (box[0] + length / 2, box[2] - 2 * off, box[4] - 3 * off)
    bar = pv.Line(start, (start[0] + length, start[1], start[2]))
    p.add_mesh(bar, color="white", line_width=4, name="scale_bar")
    label = f"{length * 1000:g} µm" if length < 0.1 else f"{length:g} mm"
    p.add_point_labels(
        [label_at],
        [label],
        font_size=12,
        text_color="white",
        shape=None,
        show_points=False,
        always_visible=True,
        name="scale_label",
    )


def render_plotter(result: str | os.PathLike | Result, frame: int = -1, **kwargs: Any) -> Any:
    """Like :func:`render_frame` but return the (off-screen) ``pyvista.Plotter``.

    The caller owns the plotter: add to it, ``screenshot`` it, and ``close()`` it.
    """
    from bonesim.viz.gl import require_rendering

    info = _as_info(result)
    idx = info.frame_index(frame)
    history = kwargs.pop("history", False)
    field = kwargs.pop("field", "remodeling")
    axis = kwargs.pop("axis", None)
    check_choice(field, FIELDS, name="field")
    if axis is not None and field != "sed":
        raise InputError("`axis` chooses an SED map: use it with field='sed'")
    sed = None
    if field == "sed":
        from bonesim.io.sed import read_sed_map

        sed = read_sed_map(info.path, axis)
        if sed[0].shape != tuple(info.shape):
            raise BonesimError(f"{info.path}: the SED map is {sed[0].shape}, the bone {tuple(info.shape)}")
    require_rendering()
    (_, arrays), *_ = list(_frame_states(info, [idx], history))
    return build_plotter(info, idx, arrays, field=sed, **kwargs)


def render_frame(
    result: str | os.PathLike | Result,
    frame: int = -1,
    *,
    camera: str = "iso",
    clip: Sequence[float] | None = None,
    size: tuple[int, int] = (800, 600),
    out: str | os.PathLike | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Render a saved frame of a result off-screen; return the image (H, W, 3) uint8.

    Parameters
    ----------
    result : path or Result
        A schema-1 result (``/series/bone``) or a plain volume file.
    frame : int
        Saved frame to show; negative counts from the end.
    camera : {'iso', 'top', 'side'}
        Camera preset; the camera depends only on the volume's box, so every
        frame of a result is seen from the same place.
    clip : (x0, x1, y0, y1, z0, z1), optional
        Keep only the box (in mm from the volume's corner) to look inside.
    size : (width, height)
        Image size in pixels.
    out : path, optional
        Also save the image (PNG, JPEG, ... by extension).
    **kwargs
        ``downsample`` ('auto' or an int), ``max_edge`` and ``max_triangles``
        (bounds of the 'auto' downsampling: longest edge 256 voxels, 1.5 M
        surface triangles; software GL draws ~1 M triangles per second), ``history`` (False: colour the net change from the first frame;
        True: count cavities refilled since then as formed, reading every
        frame up to ``frame``), ``smooth`` (Gaussian sigma in voxels, 0.6),
        ``ghost``, ``perforations``, ``annotate``, ``legend``, ``scale_bar``
        (all True), ``tolerance`` (bone-fraction change that counts, 48),
        ``parallel`` (projection; default parallel for top/side), ``field``
        ('remodeling', the default, or 'sed': colour by the SED map that
        ``bonesim mechanics --save-sed`` stored in the file, log scale in
        kJ/m³) and ``axis`` (which SED map: 'z', 'y' or 'x'; default the first
        of z, y, x present).
        ``style``: 'surface' (the default: the surface coloured by state,
        with the day-0 ghost) or 'difference' (the bone now in grey, the
        day-0 bone lost since in red, new bone in green, perforations in
        magenta, as solid volumes; :mod:`bonesim.viz.difference`).

    Returns
    -------
    ndarray
        RGB image, shape ``(size[1], size[0], 3)``.

    Raises
    ------
    BonesimError
        No off-screen OpenGL here (one sentence), or a bad file/frame.

    Examples
    --------
    >>> img = render_frame("run.h5", -1, camera="top", out="last.png")  # doctest: +SKIP
    """
    p = render_plotter(result, frame, camera=camera, clip=clip, size=size, **kwargs)
    try:
        img = np.asarray(p.screenshot(return_img=True))[..., :3].copy()
    finally:
        p.close()
    if out is not None:
        save_image(img, out, inputs=[] if isinstance(result, Result) else [result])
    return img


#: Image formats ``render`` writes (imageio picks the format from the extension).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def save_image(img: np.ndarray, path: str | os.PathLike, *, overwrite: bool = True, inputs=()) -> None:
    """Write an RGB image with imageio (format from the extension), atomically."""
    from bonesim._optional import require

    iio = require("imageio.v3", "writing images")

    try:
        with atomic_write(
            path, overwrite=overwrite, inputs=inputs, suffixes=IMAGE_SUFFIXES, what="image"
        ) as tmp:
            iio.imwrite(tmp, img)
    except (OSError, ValueError) as exc:
        raise BonesimError(f"cannot write image {path}: {exc}") from None


def iter_frames(
    result: str | os.PathLike | Result,
    frames: Sequence[int] | None = None,
    *,
    history: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> Iterator[np.ndarray]:
    """Render several frames (default: all) with one camera and colours; yield images."""
    from bonesim.viz.gl import require_rendering

    info = _as_info(result)
    indices = (
        sorted({info.frame_index(f) for f in frames}) if frames is not None else list(range(info.n_frames))
    )
    require_rendering()
    for n, (idx, arrays) in enumerate(_frame_states(info, indices, history), start=1):
        p = build_plotter(info, idx, arrays, **kwargs)
        try:
            img = np.asarray(p.screenshot(return_img=True))[..., :3].copy()
        finally:
            p.close()
        if progress is not None:
            progress(n, len(indices))
        yield img
