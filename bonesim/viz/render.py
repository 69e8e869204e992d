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
) -> Any:
    """Make an off-screen ``pyvista.Plotter`` showing frame ``idx`` (arrays already read)."""
    import pyvista as pv

    check_choice(camera, CAMERAS, name="camera")
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
    g = scene.prepare(b0, bt, bmin, info.voxel_size_um, downsample=k, clip=clip, smooth=smooth)
    current = surface(g.bt, g.origin_mm, g.spacing_mm)
    ghost_mesh = None
    if ghost and idx != info.reference_index:
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
    if current.n_points:
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
    if annotate:
        day = float(info.days[idx])
        bv = float(np.mean(bt, dtype=np.float64)) / 255.0
        text = f"{info.scenario}\nday {day:g} ({day / DAYS_PER_YEAR:.2f} y), frame {idx + 1}/{info.n_frames}\nBV/TV {bv:.3f}"
        p.add_text(text, position="upper_left", font_size=max(6, h // 60), color="white", name="label")
    if legend:
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
    require_rendering()
    (_, arrays), *_ = list(_frame_states(info, [idx], history))
    return build_plotter(info, idx, arrays, **kwargs)


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
        ``parallel`` (projection; default parallel for top/side).

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
    import imageio.v3 as iio

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
