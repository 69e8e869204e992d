"""``bonesim mechanics``: apparent stiffness of a bone volume by linear voxel micro-FE."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bonesim.cli._common import user_errors

COLUMNS = (
    ("apparent_modulus_mpa", "E_app [MPa]", "{:.2f}"),
    ("reaction_force_n", "F [N]", "{:.4g}"),
    ("strain_energy_j", "W [J]", "{:.4g}"),
    ("iterations", "iter", "{:d}"),
    ("relative_residual", "rel. res.", "{:.2e}"),
    ("seconds", "s", "{:.1f}"),
)


@click.command()
@click.argument("input_file", metavar="IN.h5", type=click.Path(dir_okay=False))
@click.option(
    "--axis", type=click.Choice(["z", "y", "x", "all"]), default="z", show_default=True, help="Load axis."
)
@click.option(
    "--tissue-modulus-gpa",
    type=float,
    default=10.0,
    show_default=True,
    help="Young's modulus E0 of full bone; voxel modulus E0·(b/255)^p.",
)
@click.option("--poisson", type=float, default=0.3, show_default=True, help="Poisson's ratio of bone tissue.")
@click.option(
    "--strain", type=float, default=0.01, show_default=True, help="Apparent compressive strain applied."
)
@click.option("--exponent", type=float, default=2.0, show_default=True, help="Exponent p of the modulus law.")
@click.option(
    "--backend",
    type=click.Choice(["auto", "numpy", "cupy"]),
    default="auto",
    show_default=True,
    help="auto: CuPy when a CUDA device answers, else NumPy.",
)
@click.option("--tol", type=float, default=1e-6, show_default=True, help="Relative residual of PCG.")
@click.option(
    "--frame", type=int, default=None, help="Solve saved frame N of a result file (negative: from the end)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results as JSON.")
@click.option(
    "--save-sed",
    "sed_path",
    metavar="OUT.h5",
    type=click.Path(dir_okay=False),
    help="Write the SED (/maps/sed/<axis>, MPa) and von Mises strain (/maps/von_mises/<axis>) maps of each axis with the bone to OUT.h5.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the --json / --save-sed file if it exists (default: refuse)."
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show PCG iterations.")
@user_errors
def mechanics(
    input_file: str,
    axis: str,
    tissue_modulus_gpa: float,
    poisson: float,
    strain: float,
    exponent: float,
    backend: str,
    tol: float,
    frame: int | None,
    json_path: str | None,
    sed_path: str | None,
    overwrite: bool,
    progress: bool,
) -> None:
    """Compress the bone of IN.h5 uniaxially and report its apparent modulus.

    Every bone voxel is an 8-node hexahedron; the face at 0 along the axis is
    held axially, the opposite face is displaced by −strain × height, the
    lateral faces are free. E_app = (F / A) / strain with A the full
    cross-section. --save-sed stores the per-voxel strain-energy density and
    von Mises strain of each axis beside the bone (view the SED with
    `bonesim render --field sed`).
    See docs/mechanics.md.

    \b
    Examples:
      bonesim mechanics bone.h5
      bonesim mechanics bone.h5 --axis all --json stiffness.json
      bonesim mechanics run.h5 --frame -1 --tissue-modulus-gpa 15 --backend numpy
      bonesim mechanics run.h5 --frame -1 --axis all --save-sed sed.h5
    """
    from bonesim.errors import BonesimError
    from bonesim.io.hdf5 import check_input_file, read_volume
    from bonesim.io.outputs import atomic_write, check_output
    from bonesim.mechanics import Uniaxial, solve

    path = check_input_file(input_file)
    if json_path is not None:
        check_output(json_path, overwrite=overwrite, inputs=[path], what="JSON file")
    if sed_path is not None:
        from bonesim.io.sed import check_sed_output

        check_sed_output(sed_path, overwrite=overwrite, inputs=[path])
        if json_path is not None and Path(json_path).resolve() == Path(sed_path).resolve():
            raise BonesimError("--json and --save-sed name the same file; choose two names")
    volume = read_volume(path, frame=frame)
    out: dict[str, dict] = {}
    maps: dict = {}
    von_mises: dict = {}
    solves: dict[str, dict] = {}
    for ax in ("z", "y", "x") if axis == "all" else (axis,):
        r = solve(
            volume,
            Uniaxial(ax, strain),
            tissue_modulus_gpa=tissue_modulus_gpa,
            poisson=poisson,
            backend=backend,
            tol=tol,
            exponent=exponent,
            progress=progress,
            keep_fields=sed_path is not None,
        )
        out[ax] = r.summary()
        if sed_path is not None:
            maps[ax] = r.sed
            von_mises[ax] = r.von_mises()
            solves[ax] = {**r.summary(), "strain": r.strain, "converged": r.converged}
            solves[ax].update(backend=r.backend, removed_voxels=r.removed_voxels)
        del r  # the displacement and mesh of one axis at a time
    head = "axis  " + "  ".join(f"{label:>12}" for _, label, _ in COLUMNS)
    click.echo(head)
    for ax, row in out.items():
        cells = "  ".join(f"{fmt.format(row[key]):>12}" for key, _, fmt in COLUMNS)
        click.echo(f"{ax:<4}  {cells}")
    if json_path is not None:
        with atomic_write(json_path, overwrite=overwrite, inputs=[path], what="JSON file") as tmp:
            tmp.write_text(json.dumps(out, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if sed_path is not None:
        import sys

        from bonesim.io.sed import source_info, write_sed_file

        write_sed_file(
            sed_path,
            volume,
            maps,
            solves,
            settings={
                "tissue_modulus_gpa": tissue_modulus_gpa,
                "poisson": poisson,
                "exponent": exponent,
                "tol": tol,
            },
            source=source_info(path, volume),
            overwrite=overwrite,
            inputs=[path],
            command="bonesim mechanics " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None,
            von_mises=von_mises,
        )
        click.echo(f"wrote {sed_path}")
