"""``bonesim render | animate | plot | export``: thin wrappers over :mod:`bonesim.viz`."""

from __future__ import annotations

from pathlib import Path

import click

from bonesim.cli._common import overwrite_option, user_errors

_result_arg = click.argument("result", type=click.Path(dir_okay=False, path_type=Path))
_camera_option = click.option(
    "--camera",
    type=click.Choice(["iso", "top", "side"]),
    default="iso",
    show_default=True,
    help="Camera preset.",
)


#: Largest image side rendered (pixels): beyond it VTK aborts or the memory runs out.
MAX_SIDE = 16384


def _size(value: str) -> tuple[int, int]:
    parts = value.lower().split("x")
    try:
        w, h = (int(v) for v in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        w = h = None
    if w is None or h is None:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 800x600, got {value!r}")
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise click.BadParameter(f"each side must be 1..{MAX_SIDE} pixels, got {value!r}")
    return w, h


def _clip(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        box = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected six numbers x0,x1,y0,y1,z0,z1 in mm, got {value!r}") from None
    if len(box) != 6:
        raise click.BadParameter(f"expected six numbers x0,x1,y0,y1,z0,z1 in mm, got {value!r}")
    return box


def _downsample(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or an integer, got {value!r}") from None


_render_options = [
    _camera_option,
    click.option("--size", default="800x600", show_default=True, help="Image size WIDTHxHEIGHT in pixels."),
    click.option(
        "--clip", default=None, metavar="X0,X1,Y0,Y1,Z0,Z1", help="Keep only this box (mm) to look inside."
    ),
    click.option(
        "--downsample",
        default="auto",
        show_default=True,
        help="Block-average factor, or 'auto' (edge <= 256).",
    ),
    click.option(
        "--diff",
        is_flag=True,
        help="Difference view: bone now grey, bone lost since day 0 red, new bone green, "
        "perforations magenta, as solid volumes.",
    ),
    click.option("--no-ghost", is_flag=True, help="Do not draw the initial surface (nor perforations)."),
    click.option("--no-legend", is_flag=True, help="No legend, text or scale bar."),
]


def _with(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


def _render_kwargs(camera, size, clip, downsample, diff, no_ghost, no_legend) -> dict:
    return dict(
        style="difference" if diff else "surface",
        camera=camera,
        size=_size(size),
        clip=_clip(clip),
        downsample=_downsample(downsample),
        ghost=not no_ghost,
        legend=not no_legend,
        annotate=not no_legend,
        scale_bar=not no_legend,
    )


@click.command()
@_result_arg
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image file (.png, .jpg).",
)
@click.option("--frame", default=-1, show_default=True, help="Saved frame; negative counts from the end.")
@click.option(
    "--field",
    type=click.Choice(["remodeling", "sed"]),
    default="remodeling",
    show_default=True,
    help="Colour by remodeling state, or by the SED map of a `bonesim mechanics --save-sed` file.",
)
@click.option(
    "--axis",
    type=click.Choice(["z", "y", "x"]),
    default=None,
    help="With --field sed: which load axis's map (default: the first of z, y, x in the file).",
)
@_with(_render_options)
@overwrite_option
@user_errors
def render(
    result, out, frame, field, axis, camera, size, clip, downsample, diff, no_ghost, no_legend, overwrite
):
    """Render one saved frame of RESULT off-screen (bone surface coloured by remodeling or SED).

    Colours relative to the first frame: translucent grey = initial surface,
    ivory = unchanged bone, red = resorbed, green = newly formed, magenta =
    perforation (bone gone all the way through).

    --diff shows the change since day 0 as volumes instead: the bone now in
    grey, the day-0 bone lost since in red, new bone in green, bone lost
    through a whole plate or rod (a perforation) in magenta, with the amounts
    (% of day-0 bone) in the label.

    --field sed colours the surface by the strain-energy density stored by
    `bonesim mechanics IN.h5 --save-sed SED.h5` (render SED.h5): a log scale
    clipped to the 2nd-98th percentile of the bone's SED, colour bar in kJ/m³.

    \b
    Examples:
      bonesim render run.h5 -o last.png
      bonesim render run.h5 --frame 0 --camera top -o first.png
      bonesim render run.h5 --diff -o lost.png
      bonesim render run.h5 --clip 0,1,0,0.5,0,1 --size 1200x900 -o inside.png
      bonesim render sed.h5 --field sed --axis z -o sed_z.png
    """
    from bonesim.io.hdf5 import check_input_file
    from bonesim.io.outputs import check_output
    from bonesim.viz import render_frame
    from bonesim.viz.render import IMAGE_SUFFIXES

    if axis is not None and field != "sed":
        raise click.UsageError("--axis chooses an SED map: use it with --field sed")
    if diff and field == "sed":
        raise click.UsageError("--diff shows bone, not a field: use it without --field sed")
    check_input_file(result)
    check_output(out, overwrite=overwrite, inputs=[result], suffixes=IMAGE_SUFFIXES, what="image")
    extra = {"field": "sed", "axis": axis} if field == "sed" else {}
    if extra:
        from bonesim.io.sed import read_sed_map

        read_sed_map(result, axis)  # no SED map (or not along --axis): say so before any rendering
    render_frame(
        result,
        frame,
        out=out,
        **_render_kwargs(camera, size, clip, downsample, diff, no_ghost, no_legend),
        **extra,
    )
    click.echo(f"wrote {out}")


@click.command()
@_result_arg
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Animation (.gif or .mp4).",
)
@click.option("--fps", default=4.0, show_default=True, help="Frames per second.")
@click.option("--no-progress", is_flag=True, help="No per-frame progress on stderr.")
@_with(_render_options)
@overwrite_option
@user_errors
def animate(
    result, out, fps, no_progress, camera, size, clip, downsample, diff, no_ghost, no_legend, overwrite
):
    """Animate every saved frame of RESULT to a GIF or MP4 (one camera, same colours).

    Progress (one step per rendered frame) goes to stderr: a bar on a
    terminal, a plain line every 10 % or minute in a log.

    \b
    Examples:
      bonesim animate run.h5 -o run.mp4
      bonesim animate run.h5 -o run.gif --fps 2 --size 640x480 --camera side
      bonesim animate run.h5 -o run.mp4 --no-progress
      bonesim animate run.h5 --diff -o lost.mp4
    """
    from bonesim._optional import require
    from bonesim.cli._progress import Progress
    from bonesim.io.hdf5 import check_input_file
    from bonesim.io.result import Result
    from bonesim.viz import animate as animate_

    require("imageio.v2")  # missing packages: one sentence before the progress bar starts
    require("pyvista")
    check_input_file(result)
    n = Result.open(result).n_frames
    with Progress(n, desc="animate", unit="frame", quiet=no_progress) as bar:
        bar.update(0)
        animate_(
            result,
            out,
            fps=fps,
            overwrite=overwrite,
            progress=lambda done, total: bar.update(done),
            **_render_kwargs(camera, size, clip, downsample, diff, no_ghost, no_legend),
        )
    click.echo(f"wrote {out}")


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Figure (.png, .pdf, .svg).",
)
@click.option(
    "--which",
    type=click.Choice(["all", "metrics", "physiology"]),
    default="all",
    show_default=True,
    help="Panel group.",
)
@click.option("--columns", default=None, help="Comma-separated columns to plot instead (e.g. bv_tv,pth_pM).")
@click.option(
    "--label", "labels", multiple=True, help="Legend entry per RESULT (repeat; default scenario names)."
)
@click.option("--title", default=None, help="Figure title.")
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["years", "age"]),
    default="years",
    show_default=True,
    help="Time axis: years since day 0, or age (from the physiology table).",
)
@click.option(
    "--ensemble",
    is_flag=True,
    help="Runs with the same legend entry (one scenario, several seeds): mean line and min-max band.",
)
@overwrite_option
@user_errors
def plot(results, out, which, columns, labels, title, x_axis, ensemble, overwrite):
    """Plot BV/TV, morphometry and daily physiology of one or more RESULTS over time.

    \b
    Examples:
      bonesim plot run.h5 -o run.png
      bonesim plot healthy.h5 postmenopausal.h5 -o compare.png --which metrics
      bonesim plot run.h5 --columns bv_tv,pth_pM,estrogen -o hormones.pdf
      bonesim plot pm_s0.h5 pm_s1.h5 pm_s2.h5 healthy.h5 --ensemble --x age -o bands.png
    """
    from bonesim.io.hdf5 import check_input_file
    from bonesim.io.outputs import check_output
    from bonesim.viz import plot_metrics
    from bonesim.viz.plot import PLOT_SUFFIXES

    for r in results:
        check_input_file(r)
    check_output(out, overwrite=overwrite, inputs=results, suffixes=PLOT_SUFFIXES, what="plot")
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    plot_metrics(
        list(results),
        out,
        which=which,
        columns=cols,
        labels=list(labels) or None,
        title=title,
        x=x_axis,
        ensemble=ensemble,
    )
    click.echo(f"wrote {out}")


@click.command()
@_result_arg
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="VTK image file (.vti).")
@click.option("--frame", default=-1, show_default=True, help="Saved frame; negative counts from the end.")
@click.option(
    "--xdmf", is_flag=True, help="(Re)write the XDMF sidecar RESULT.xdmf for ParaView (all frames)."
)
@click.option(
    "--timelapse",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write a simulated time-lapse study: one session per frame from day 0 (MetaImage), "
    "remodeling labels 1/2/3 per pair, a manifest.",
)
@click.option("--subject", default=None, help="With --timelapse: subject id (default: RESULT's name).")
@click.option("--site", default="sim", show_default=True, help="With --timelapse: VOI token of the names.")
@overwrite_option
@user_errors
def export(result, out, frame, xdmf, timelapse, subject, site, overwrite):
    """Export RESULT for ParaView (.vti, XDMF) or as a time-lapse study (--timelapse).

    The .vti holds cell arrays bone, bone_initial, change and the
    resorbed_day/formed_day maps, in mm. The XDMF sidecar describes every
    saved frame in place (no copy) as a time series.

    --timelapse DIR writes the run as the time-lapse HR-pQCT tools read it
    (docs/visualisation.md): per saved frame from day 0 a session with the
    image and the bone mask, per consecutive pair the remodeling labels
    (1 resorption, 2 quiescent, 3 formation; clusters < 12 voxels dropped),
    a CSV of the volumes and a bone-imaging-derivatives manifest.

    \b
    Examples:
      bonesim export run.h5 -o last.vti
      bonesim export run.h5 --frame 0 -o first.vti --overwrite
      bonesim export run.h5 --xdmf
      bonesim export run.h5 --timelapse run-timelapse --subject pm01 --site radius
    """
    from bonesim.viz import export_vti

    if out is None and not xdmf and timelapse is None:
        raise click.UsageError("give -o FILE.vti, --xdmf and/or --timelapse DIR")
    if (subject is not None or site != "sim") and timelapse is None:
        raise click.UsageError("--subject and --site name the sessions of --timelapse DIR: use them with it")
    if out is not None:
        export_vti(result, out, frame, overwrite=overwrite)
        click.echo(f"wrote {out}")
    if xdmf:
        from bonesim.io.hdf5 import open_bonesim
        from bonesim.io.xdmf import write_xdmf

        with open_bonesim(result):
            pass
        click.echo(f"wrote {write_xdmf(result)}")
    if timelapse is not None:
        from bonesim.io.hdf5 import check_input_file
        from bonesim.io.timelapse import export_timelapse

        check_input_file(result)
        done = export_timelapse(result, timelapse, subject=subject, site=site, overwrite=overwrite)
        click.echo(
            f"wrote {timelapse}: {len(done.images)} session(s), {len(done.labels)} label map(s), "
            f"manifest {done.manifest}"
        )
