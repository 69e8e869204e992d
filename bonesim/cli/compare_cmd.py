"""``bonesim compare``: scenario differences between results (table, JSON, figure)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bonesim.cli._common import overwrite_option, user_errors


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--day", type=float, default=None, help="Simulated day to compare at (default: the last day all reached)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the table as JSON.")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the runs' metrics over time into this figure (.png, .pdf, .svg).",
)
@overwrite_option
@user_errors
def compare(results, day, json_path, out, overwrite):
    """Compare two or more RESULTS: each quantity's change since day 0, and its net effect.

    The first result is the reference: for every other run the table gives the
    value at the day, its change since day 0 (%) and that change minus the
    reference's (percentage points), e.g. a cause net of health on the same
    bone and seed. BV/TV, vBMD and Ac.f are always there; morphometry (Tb.Th,
    Tb.Sp, Tb.N, Conn.D, SMI, DA, E_app) once `bonesim analyze` has run.

    \b
    Examples:
      bonesim compare healthy.h5 postmenopausal.h5
      bonesim compare healthy.h5 pm.h5 pm+denosumab.h5 --json effect.json -o effect.png
      bonesim compare healthy.h5 pm.h5 --day 1826
    """
    from bonesim.compare import compare as compare_runs
    from bonesim.compare import format_table
    from bonesim.io.hdf5 import check_input_file
    from bonesim.io.outputs import atomic_write, check_output

    if len(results) < 2:
        raise click.UsageError("give at least two result files")
    for r in results:
        check_input_file(r)
    if json_path is not None:
        check_output(json_path, overwrite=overwrite, inputs=results, what="JSON file")
    if out is not None:
        from bonesim.viz.plot import PLOT_SUFFIXES

        check_output(out, overwrite=overwrite, inputs=results, suffixes=PLOT_SUFFIXES, what="plot")
    c = compare_runs(list(results), day=day)
    click.echo(format_table(c))
    if json_path is not None:
        with atomic_write(json_path, overwrite=overwrite, inputs=results, what="JSON file") as tmp:
            tmp.write_text(json.dumps(c.to_dict(), indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if out is not None:
        from bonesim.viz import plot_metrics

        plot_metrics(list(results), out, which="metrics", title=f"{' vs '.join(c.scenarios)}")
        click.echo(f"wrote {out}")
