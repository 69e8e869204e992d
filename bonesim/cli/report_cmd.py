"""``bonesim report``: one self-contained HTML page of one or more results."""

from __future__ import annotations

from pathlib import Path

import click

from bonesim.cli._common import overwrite_option, user_errors


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .html file."
)
@click.option("--title", default=None, help="Page title (default: the scenario names).")
@click.option(
    "--slices", default=3, show_default=True, type=click.IntRange(1, 12), help="Slice overlays per run."
)
@click.option(
    "--time-steps",
    default=8,
    show_default=True,
    type=click.IntRange(1, 24),
    help="Saved frames of the most changed slice shown over time.",
)
@click.option(
    "--max-triangles",
    default=40_000,
    show_default=True,
    type=click.IntRange(100, None),
    help="Triangle budget of each 3-D surface (the volume is block-averaged until it fits).",
)
@click.option("--no-3d", "no_3d", is_flag=True, help="Leave out the interactive 3-D view (a smaller page).")
@overwrite_option
@user_errors
def report(results, out, title, slices, time_steps, max_triangles, no_3d, overwrite):
    """Write one self-contained HTML report of RESULTS (no network needed to view it).

    Scenario and provenance of every run, a comparison table (two or more
    runs, the first is the reference), morphometry and physiology over time,
    first-vs-last slice overlays (grey kept, red resorbed, green formed), the
    most changed slice over time, and
    an interactive 3-D view of the first and last bone surfaces (WebGL).

    \b
    Examples:
      bonesim report run.h5 -o run.html
      bonesim report healthy.h5 postmenopausal.h5 -o compare.html --title "PM vs healthy"
    """
    from bonesim.io.hdf5 import check_input_file
    from bonesim.io.outputs import check_output
    from bonesim.viz.report import REPORT_SUFFIXES, write_report

    for r in results:
        check_input_file(r)
    check_output(out, overwrite=overwrite, inputs=results, suffixes=REPORT_SUFFIXES, what="report")
    info = write_report(
        list(results),
        out,
        overwrite=overwrite,
        title=title,
        slices=slices,
        time_steps=time_steps,
        max_triangles=max_triangles,
        three_d=not no_3d,
    )
    tris = ", ".join(str(m["n_triangles"]) for m in info["meshes"])
    extra = f"; 3-D surfaces of {tris} triangles" if tris else ""
    click.echo(f"wrote {out} ({info['bytes'] / 1e6:.2f} MB{extra})")
