"""``bonesim scenarios``, ``bonesim physiology`` and ``bonesim validate``: the systemic model on the command line."""

from __future__ import annotations

import click

from bonesim.cli._common import overwrite_option, user_errors
from bonesim.defaults import DAYS_PER_YEAR

#: Plot formats of ``physiology --plot`` (matplotlib picks the format from the extension).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")

_SUMMARY_COLUMNS = (
    ("age_years", "age", "{:6.1f}"),
    ("acf_per_year", "Ac.f/yr", "{:8.3f}"),
    ("formation_efficiency", "f", "{:7.4f}"),
    ("mar_um_per_day", "MAR", "{:6.3f}"),
    ("remodeling_period_days", "period_d", "{:8.1f}"),
    ("estrogen", "E", "{:5.2f}"),
    ("calcium_mM", "Ca_mM", "{:6.3f}"),
    ("pth_pM", "PTH_pM", "{:7.2f}"),
    ("calcitriol_pM", "D3_pM", "{:6.1f}"),
    ("ca_absorption_mmol_d", "abs", "{:5.2f}"),
    ("urinary_ca_mmol_d", "urine", "{:5.2f}"),
    ("bv_rel", "BV_rel", "{:7.4f}"),
    ("bmd_rel", "BMD_rel", "{:7.4f}"),
)


def _yearly_rows(table, step_years: float = 1.0):
    from bonesim.physiology.factors import DAYS_PER_YEAR

    n = len(table["day"])
    idx = sorted(
        {
            min(n - 1, round(k * step_years * DAYS_PER_YEAR))
            for k in range(int(n / DAYS_PER_YEAR / step_years) + 2)
        }
    )
    return idx


def _summary(table) -> str:
    head = (
        "  year "
        + " ".join(f"{lbl:>{len(fmt.format(0.0))}}" for _, lbl, fmt in _SUMMARY_COLUMNS)
        + "  rate%/yr"
    )
    lines = [head]
    prev = None
    for i in _yearly_rows(table):
        year = table["day"][i] / DAYS_PER_YEAR
        vals = " ".join(fmt.format(float(table[c][i])) for c, _, fmt in _SUMMARY_COLUMNS)
        rate = ""
        if prev is not None and i > prev:
            rate = f"{100 * (table['bv_rel'][i] / table['bv_rel'][prev] - 1) / ((i - prev) / DAYS_PER_YEAR):8.2f}"
        lines.append(f"{year:6.2f} {vals}  {rate}")
        prev = i
    return "\n".join(lines)


@click.group()
def scenarios() -> None:
    """List and show the physiological scenario presets (data/scenarios/*.toml).

    \b
    Examples:
      bonesim scenarios list
      bonesim scenarios show postmenopausal
      bonesim scenarios show my_case.toml --years 20
      bonesim scenarios show postmenopausal+glucocorticoid
    """


@scenarios.command("list")
@user_errors
def list_() -> None:
    """List the preset scenarios with their descriptions.

    \b
    Examples:
      bonesim scenarios list
    """
    from bonesim.physiology import list_scenarios, load_scenario

    for name in list_scenarios():
        click.echo(f"{name:<32} {load_scenario(name).description}")


@scenarios.command("show")
@click.argument("name")
@click.option("--years", type=float, default=10.0, show_default=True, help="Span of the time-course summary.")
@user_errors
def show(name: str, years: float) -> None:
    """Show a scenario: the full resolved TOML and the yearly time course of its inputs.

    NAME is a preset name, a TOML file, or presets joined by '+'.

    \b
    Examples:
      bonesim scenarios show aging-woman --years 40
      bonesim scenarios show postmenopausal+glucocorticoid
    """
    import numpy as np

    from bonesim.physiology import load_scenario
    from bonesim.physiology.factors import DAYS_PER_YEAR, Forcing

    scn = load_scenario(name)
    click.echo(scn.to_toml())
    f = Forcing(scn)
    t = np.arange(0, years + 1e-9, 1.0) * DAYS_PER_YEAR
    _, x_gc = f.drives(t)
    inp = f.inputs(t, np.zeros_like(t), np.zeros_like(t))
    click.echo("# input time course (adaptation states at 0)")
    click.echo(
        f"{'year':>5} {'age':>6} {'estrogen':>8} {'GC_effect':>9} {'thyroid':>7} {'gland':>6} "
        f"{'25OHD_eff':>9} {'Ca_mg/d':>8} {'abs_mult':>8} {'A_OBa_x':>7}"
    )
    cols = {k: np.broadcast_to(np.asarray(inp[k], dtype=float), t.shape) for k in inp}
    gc = np.broadcast_to(np.asarray(x_gc, dtype=float), t.shape)
    for i, ti in enumerate(t):
        click.echo(
            f"{ti / DAYS_PER_YEAR:5.0f} {float(f.age(ti)):6.1f} {cols['estrogen'][i]:8.3f} {gc[i]:9.3f} "
            f"{cols['d_ocp'][i]:7.2f} {cols['gland'][i]:6.2f} {cols['vitamin_d_eff_ng_ml'][i]:9.1f} "
            f"{cols['oral_ca'][i] * 24 * 964 / 24.055:8.0f} {cols['abs_mult'][i]:8.3f} {cols['a_oba'][i]:7.3f}"
        )


@click.command()
@click.argument("name")
@click.option("--years", type=float, required=True, help="Simulated years from day 0.")
@click.option(
    "--spinup-years",
    type=float,
    default=0.0,
    show_default=True,
    help="Years under the day-0 inputs before day 0 (start from the state they sustain).",
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write the daily table as CSV."
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a PNG/PDF plot of the main columns (needs matplotlib).",
)
@overwrite_option
@user_errors
def physiology(
    name: str,
    years: float,
    spinup_years: float,
    csv_path: str | None,
    plot_path: str | None,
    overwrite: bool,
) -> None:
    """Run the systemic physiology of a scenario and print a yearly summary.

    NAME is a preset name, a TOML file, or presets joined by '+'. The daily
    table (one row per day: the CA parameters and the hormones, cells and
    calcium fluxes that explain them) goes to --csv.

    \b
    Examples:
      bonesim physiology postmenopausal --years 12
      bonesim physiology glucocorticoid --years 5 --csv gc.csv --plot gc.png
      bonesim physiology my_case.toml --years 30 --spinup-years 2
    """
    from bonesim.io.outputs import check_output
    from bonesim.physiology import load_scenario, run_physiology

    if csv_path:  # before any work
        check_output(csv_path, overwrite=overwrite, suffixes=(".csv",), what="CSV file")
    if plot_path:
        check_output(plot_path, overwrite=overwrite, suffixes=PLOT_SUFFIXES, what="plot")
    scn = load_scenario(name)
    table = run_physiology(scn, years, spinup_years=spinup_years)
    click.echo(f"scenario {scn.name}: {scn.description}")
    click.echo(_summary(table))
    if csv_path:
        write_csv(table, csv_path, overwrite=overwrite)
        click.echo(f"wrote {csv_path} ({len(table['day'])} rows)")
    if plot_path:
        plot_table(table, plot_path, title=scn.name, overwrite=overwrite)
        click.echo(f"wrote {plot_path}")


def write_csv(table, path: str, *, overwrite: bool = False) -> None:
    """Write a daily table as CSV (header = column names), atomically."""
    import numpy as np

    from bonesim.io.outputs import atomic_write

    cols = list(table)
    data = np.column_stack([np.asarray(table[c], dtype=float) for c in cols])
    with atomic_write(path, overwrite=overwrite, suffixes=(".csv",), what="CSV file") as tmp:
        np.savetxt(tmp, data, delimiter=",", header=",".join(cols), comments="", fmt="%.10g")


def plot_table(table, path: str, title: str = "", *, overwrite: bool = False) -> None:
    """Plot Ac.f, f, PTH, calcium, estrogen and BV over time (matplotlib, imported lazily)."""
    from bonesim._optional import require

    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    years = table["day"] / DAYS_PER_YEAR
    panels = [
        ("acf_per_year", "Ac.f (1/yr)"),
        ("formation_efficiency", "formation efficiency f"),
        ("pth_pM", "PTH (pM)"),
        ("calcium_mM", "plasma Ca (mM)"),
        ("estrogen", "estrogen (rel.)"),
        ("bv_rel", "BV / BV(0)"),
    ]
    fig, axes = plt.subplots(3, 2, figsize=(10, 8), sharex=True)
    for ax, (col, label) in zip(axes.flat, panels, strict=True):
        ax.plot(years, table[col])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("years from day 0")
    fig.suptitle(title)
    fig.tight_layout()
    from bonesim.io.outputs import atomic_write

    with atomic_write(path, overwrite=overwrite, suffixes=PLOT_SUFFIXES, what="plot") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


@click.command()
@click.option("--scenario", "scenario", default=None, help="Only the targets of this preset.")
@click.option(
    "--level",
    type=click.Choice(["physiology", "ca", "all"]),
    default="all",
    show_default=True,
    help="physiology: the model's bone-volume prediction; ca: the scenarios through the CA engine.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "numpy", "cupy"]),
    default="auto",
    show_default=True,
    help="CA backend for the CA-level runs.",
)
@click.option(
    "--volume",
    "volume_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="bonesim HDF5 volume for the CA-level runs (default: a gyroid-sheet phantom).",
)
@click.option(
    "--years",
    type=float,
    default=None,
    help="Years of each CA-level run (default: as in data/reference/ca_checks.csv).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed of the CA-level runs (results vary with it; see docs/physiology.md).",
)
@user_errors
def validate(
    scenario: str | None,
    level: str,
    backend: str,
    volume_path: str | None,
    years: float | None,
    seed: int,
) -> None:
    """Compare the simulator with clinical rates (data/reference/clinical_rates.csv).

    Prints simulated vs target per period with PASS/FAIL, in two lists:
    'fitted' rows (a model coefficient was fitted to them, so they do not
    validate the model) and 'independent' rows (the validation), each with its
    evidence grade (read: the number was read in retrieved text of the source;
    memory: not verified; assumed) and the measured site and modality. Exit
    status 1 if any fitted or independent row or a required pattern fails
    ('info' rows are reported only), or, at --level ca/all, if a CA-level check
    (data/reference/ca_checks.csv) fails. The CA level runs the engine (about 40 s with the NumPy backend on
    2 cores); its values vary with --seed.

    \b
    Examples:
      bonesim validate --level physiology
      bonesim validate --scenario postmenopausal
      bonesim validate --level ca --backend cupy --years 4
      bonesim validate --level ca --volume sample.h5 --seed 1
    """
    from bonesim.physiology.calibration import evaluate, format_results

    failed = False
    if level in ("physiology", "all"):
        results, patterns = evaluate(scenario=scenario)
        if scenario is not None:
            patterns = [p for p in patterns if p[1] is not None]
        click.echo("Physiology level (bone volume predicted by the systemic model):")
        click.echo(format_results(results, patterns))
        failed |= any(r.passed is False and r.target.kind in ("fitted", "independent") for r in results)
        failed |= any(ok is False for _, ok in patterns)
    if level in ("ca", "all"):
        from bonesim.validation import ca_level as ca_validation

        click.echo("")
        click.echo("CA level (scenarios through bonesim.ca.engine.simulate):")
        res = ca_validation.run_ca_checks(
            scenario=scenario,
            backend=backend,
            volume_path=volume_path,
            years=years,
            seed=seed,
            progress=lambda msg: click.echo(f"  {msg}", err=True),
        )
        click.echo(ca_validation.format_ca_results(res))
        failed |= any(r.passed is False for r in res)
    if failed:
        raise SystemExit(1)
