"""``bonesim analyze``: morphometry of every saved frame of a result file."""

from __future__ import annotations

import click

from bonesim.cli._common import overwrite_option, user_errors


@click.command()
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table as CSV.")
@click.option(
    "--frames",
    type=click.Choice(["all", "last"]),
    default="all",
    show_default=True,
    help="Analyse every saved frame or only the last one.",
)
@click.option(
    "--backend",
    type=click.Choice(["cpu", "gpu"]),
    default="cpu",
    show_default=True,
    help="gpu: BV/TV, Tb.Th and Tb.Sp with CuPy.",
)
@click.option(
    "--mechanics",
    is_flag=True,
    help="Also compress each frame along z by micro-FE (bonesim mechanics defaults) and report "
    "e_app_z_mpa (slow).",
)
@click.option(
    "--histomorphometry",
    is_flag=True,
    help="Also report dynamic histomorphometry (ASBMR): MS/BS, MAR, BFR/BS over the interval "
    "since the previous frame, ES/BS and OS/BS (last frame), Ac.f.",
)
@click.option(
    "--roi",
    type=click.Choice(["trabecular", "cortical", "bone"]),
    default=None,
    help="Measure inside one compartment of `import --compartments auto` only; the table goes to "
    "/tables/morphometry_<roi>.",
)
@click.option(
    "--psf-um",
    type=float,
    default=0.0,
    show_default=True,
    help="Measure each frame as a scanner sees it: blur the bone fraction by a Gaussian of this "
    "sigma (µm) before binarising; the table goes to /tables/morphometry_psf.",
)
@click.option("--no-write", is_flag=True, help="Do not store the results in RESULT (CSV/print only).")
@click.option("--no-progress", is_flag=True, help="No per-frame progress on stderr.")
@overwrite_option
@user_errors
def analyze(
    result: str,
    csv_path: str | None,
    frames: str,
    backend: str,
    mechanics: bool,
    histomorphometry: bool,
    roi: str | None,
    psf_um: float,
    no_write: bool,
    no_progress: bool,
    overwrite: bool,
) -> None:
    """Measure BV/TV, BS/BV, Tb.Th, Tb.Sp, Tb.N, Conn.D, SMI, DA and vBMD of RESULT.

    The columns are added to /tables/metrics of a simulation result (one row
    per saved frame), or written to /tables/morphometry of a plain volume
    file. The file is updated in place; nothing else in it changes.
    --mechanics adds the apparent modulus in z compression, e_app_z_mpa
    (the E_app of `bonesim mechanics FILE --axis z`; 0 when the bone does
    not connect the faces). vbmd_mgha_cm3 and tmd_mgha_cm3 are the mineral
    per total and per bone volume (mg HA/cm³) from the age of each voxel's
    bone (primary and secondary mineralisation; docs/treatments.md), for a
    simulation result. --histomorphometry adds, per frame, the dynamic
    histomorphometry of the interval since the frame before it, in the
    ASBMR nomenclature with units in the column names: ms_bs_pct,
    mar_um_per_day, bfr_bs_um3_um2_yr, es_bs_pct and os_bs_pct (from the CA
    phase: last frame only), ac_f_per_yr, ac_f_bfr_per_yr and
    activations_per_mm2_yr (definitions in docs/morphometry.md).
    --roi trabecular (or cortical) measures inside that compartment of
    `bonesim import --compartments auto` only (a result carries its input's
    compartments): TV is the compartment's volume; the table goes to
    /tables/morphometry_trabecular, /tables/metrics is left alone.
    --psf-um S measures the frames as a micro-CT would image them: the bone
    fraction blurred by a Gaussian of sigma S µm, then binarised; the
    sub-voxel bone that f < 1 leaves at refilled surfaces otherwise shows as
    one-voxel pits, pockets and tunnels (Conn.D, cavities). About one voxel
    (e.g. 20) is a typical choice; the table goes to /tables/morphometry_psf.
    Progress (one step per frame) goes to stderr: a bar on a terminal, a
    plain line every 10 % or minute in a log; --no-progress silences it.

    SMI (plate 0, rod 3, sphere 4) assumes a convex surface: it is
    ill-defined where much of the surface is concave, as in dense or
    plate-like bone, where it goes negative (the caveat of BoneJ; Salmon et
    al. 2015, Front Endocrinol 6:162). Read it beside Tb.Th, Conn.D and DA.

    \b
    Examples:
      bonesim analyze run.h5
      bonesim analyze run.h5 --frames last --csv run_morphometry.csv
      bonesim analyze bone.h5 --no-write --csv bone.csv
      bonesim analyze run.h5 --mechanics --csv stiffness_over_time.csv
      bonesim analyze run.h5 --histomorphometry --csv histo.csv
      bonesim analyze run.h5 --no-progress --csv run.csv
      bonesim analyze bone.h5 --roi trabecular --csv trabecular.csv
      bonesim analyze run.h5 --psf-um 20 --csv as_scanned.csv
    """
    import numpy as np

    from bonesim.cli._progress import Progress
    from bonesim.errors import BonesimError
    from bonesim.io.result import Result
    from bonesim.morphometry import analyze as run

    try:
        total = 1 if frames == "last" else Result.open(result).n_frames
    except BonesimError:
        total = None  # analyze() says what is wrong with the file
    bar = Progress(total, desc="analyze", unit="frame", quiet=no_progress)
    bar.update(0)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    with bar:  # closed (its line ended) before an error or the summary is printed
        table = run(
            result,
            frames=frames,
            csv=csv_path,
            progress=progress,
            write=not no_write,
            backend=backend,
            overwrite=overwrite,
            mechanics=mechanics,
            histomorphometry=histomorphometry,
            roi=roi,
            psf_um=psf_um,
        )
    last = {k: v[-1] for k, v in table.items()}
    click.echo(
        f"{len(table['frame'])} frame(s) analysed{f' in the {roi} compartment' if roi else ''}; last (day {last['day']:g}): "
        f"BV/TV {last['bv_tv']:.4f}, BS/BV {last['bs_bv_per_mm']:.2f}/mm, "
        f"Tb.Th {last['tb_th_um']:.1f} µm, Tb.Sp {last['tb_sp_um']:.1f} µm, "
        f"Tb.N {last['tb_n_per_mm']:.3f}/mm, Conn.D {last['conn_d_per_mm3']:.2f}/mm³, "
        f"SMI {last['smi']:.2f} (ill-defined on concave surfaces, see --help), DA {last['da']:.2f}"
        + (f", E_app,z {last['e_app_z_mpa']:.1f} MPa" if mechanics else "")
        + (
            f", vBMD {last['vbmd_mgha_cm3']:.1f} mg HA/cm³ (TMD {last['tmd_mgha_cm3']:.0f})"
            if np.isfinite(last["vbmd_mgha_cm3"])
            else ""
        )
    )
    if histomorphometry:
        click.echo(
            f"histomorphometry (day {last['day']:g}, interval since the previous frame): "
            f"MS/BS {last['ms_bs_pct']:.2f} %, MAR {last['mar_um_per_day']:.3f} µm/d, "
            f"BFR/BS {last['bfr_bs_um3_um2_yr']:.2f} µm³/µm²/yr, ES/BS {last['es_bs_pct']:.2f} %, "
            f"OS/BS {last['os_bs_pct']:.2f} %, Ac.f {last['ac_f_per_yr']:.3f}/yr "
            f"(BFR/BS / W.Th: {last['ac_f_bfr_per_yr']:.3f}/yr)"
        )
    if csv_path:
        click.echo(f"wrote {csv_path}")
