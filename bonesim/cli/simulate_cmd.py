"""``bonesim simulate``: run the remodeling CA on a bone volume."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from bonesim.cli._common import compression_option, overwrite_option, user_errors
from bonesim.errors import BonesimError


def _input_volume(path: str, frame: int | None):
    """The volume to simulate: ``/volume/bone`` of a volume file, or frame ``frame`` of a result."""
    from bonesim.io.hdf5 import read_volume
    from bonesim.io.result import Result

    info = Result.open(path)
    if info.has_series and frame is None:
        raise BonesimError(
            f"{path} is a simulation result, not a volume: pass --frame -1 to continue from its last frame "
            "(or --frame N for frame N; --frame 0 is the day-0 state)"
        )
    if not info.has_series and frame not in (None, 0):
        raise BonesimError(f"{path} is a plain volume: it has no frames to choose (drop --frame)")
    return read_volume(path, frame=frame if info.has_series else None)


def _base_params(params_file: str | None, scenario):
    """``--params`` as RemodelingParams; with ``--scenario`` only keys the daily table does not control."""
    from bonesim.ca.params import TABLE_COLUMNS, RemodelingParams

    if not params_file:
        return None
    base = RemodelingParams.from_toml(params_file)
    if scenario is not None:
        shadowed = sorted(set(RemodelingParams.toml_keys(params_file)) & set(TABLE_COLUMNS))
        if shadowed:
            raise BonesimError(
                f"{params_file} sets {', '.join(shadowed)}, which --scenario controls day by day, so it would "
                "be ignored; set it in the scenario file instead (e.g. [remodeling] acf0_per_year) or drop --scenario"
            )
    return base


def _already_complete(output_path: str) -> bool:
    """True when OUT is a finished result and no run folder is left (a requeued --resume is safe)."""
    from bonesim.io.result import Result, partial_path

    if not Path(output_path).is_file() or partial_path(output_path).exists():
        return False
    try:
        return Result.open(output_path).complete
    except BonesimError:
        return False


@click.command()
@click.argument("input_path", metavar="IN.h5", type=click.Path(dir_okay=False))
@click.argument("output_path", metavar="OUT.h5", type=click.Path(dir_okay=False))
@click.option(
    "--years", type=float, default=10.0, show_default=True, help="Years simulated after the spin-up."
)
@click.option(
    "--scenario",
    "scenario_name",
    metavar="NAME|FILE.toml",
    default=None,
    help="Physiological scenario (a preset name or a TOML file) that drives the daily parameters.",
)
@click.option(
    "--params",
    "params_file",
    metavar="FILE.toml",
    type=click.Path(dir_okay=False),
    default=None,
    help="Remodeling parameters (RemodelingParams fields, optionally under [remodeling]).",
)
@click.option("--backend", type=click.Choice(["auto", "cupy", "numpy"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the counter-based RNG.")
@click.option("--save-every", type=float, default=30.0, show_default=True, help="Days between saved frames.")
@click.option(
    "--spinup-years",
    type=float,
    default=1.0,
    show_default=True,
    help="Spin-up under the baseline parameters before day 0 (opens the remodeling space).",
)
@click.option(
    "--chunks",
    type=int,
    default=None,
    metavar="N",
    help="Step the volume in N^3 chunks with halos (needs the [hpc] extra); same bits as unchunked.",
)
@click.option(
    "--steps-per-exchange",
    type=int,
    default=16,
    show_default=True,
    help="With --chunks: CA steps between halo exchanges (the halo is this many voxels deep).",
)
@click.option(
    "--frame",
    type=int,
    default=None,
    help="Start from frame N of a result file (IN.h5 is then a result; -1 = its last frame).",
)
@click.option(
    "--mechanics/--no-mechanics",
    default=None,
    help="Mechanoregulation: re-solve the micro-FE on the current bone and let the strain energy the "
    "osteocytes sense steer where BMUs start (default: on when the scenario changes the load).",
)
@click.option(
    "--mechanics-every",
    type=float,
    default=30.0,
    show_default=True,
    metavar="DAYS",
    help="With --mechanics: days between FE solves.",
)
@click.option(
    "--modeling/--no-modeling",
    default=None,
    help="With --mechanics: modeling-based formation, new bone on surfaces whose strain energy exceeds "
    "twice the habitual mean (default: the MechanoParams default; see docs/model.md, Mechanoregulation).",
)
@click.option(
    "--checkpoint-compression",
    type=click.Choice(["auto", "none", "gzip", "lz4", "zstd"]),
    default="auto",
    show_default=True,
    help="Compression of the checkpoint in OUT.h5.partial/ (auto: lz4 when hdf5plugin is installed, "
    "else none; lz4 and zstd need the [io] extra). Frames and OUT.h5 follow --compression.",
)
@click.option(
    "--checkpoint-every-minutes",
    type=float,
    default=None,
    metavar="M",
    help="Checkpoint at the first save point after M wall-clock minutes (and at the end and on Ctrl-C) "
    "instead of at every save point; frames are still written at every save point.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its folder OUT.h5.partial/.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@overwrite_option
@compression_option
@user_errors
def simulate(
    input_path,
    output_path,
    years,
    scenario_name,
    params_file,
    backend,
    seed,
    save_every,
    spinup_years,
    chunks,
    steps_per_exchange,
    frame,
    mechanics,
    mechanics_every,
    modeling,
    checkpoint_compression,
    checkpoint_every_minutes,
    resume,
    no_progress,
    overwrite,
    compression,
):
    """Simulate bone remodeling of IN.h5 and write the result to OUT.h5.

    The run starts with a spin-up (default one year) under the baseline
    parameters, stored before day 0; frames, remodeling maps, metrics and the
    daily parameters are written to OUT.h5 (schema 1). Ctrl-C writes a
    checkpoint in the folder OUT.h5.partial/; --resume continues from it, bit for bit.

    \b
    Examples:
      bonesim simulate bone.h5 run.h5 --years 5
      bonesim simulate bone.h5 run.h5 --params low_f.toml --backend numpy --seed 3
      bonesim simulate bone.h5 run.h5 --scenario postmenopausal --years 10
      bonesim simulate bone.h5 run.h5 --scenario postmenopausal --years 10 --mechanics
      bonesim simulate bone.h5 run.h5 --years 5 --mechanics --modeling   # + formation on loaded surfaces
      bonesim simulate bone.h5 run.h5 --years 5 --resume
      bonesim simulate big.h5 run.h5 --years 5 --chunks 512 --backend cupy
      bonesim simulate run.h5 next.h5 --frame -1 --years 5   # continue from a result's last frame
    """
    from bonesim.ca.backends import make_backend
    from bonesim.ca.engine import simulate as run
    from bonesim.ca.params import RemodelingParams
    from bonesim.io.result import partial_path
    from bonesim.physiology import scenario_table

    if resume and _already_complete(output_path):
        click.echo(f"{output_path} is already complete; nothing to resume.")
        return
    if Path(input_path).resolve() == Path(output_path).resolve():
        raise BonesimError(f"IN.h5 and OUT.h5 are the same file ({input_path}); choose another output")
    volume = _input_volume(input_path, frame)
    scenario = scenario_table(scenario_name, years) if scenario_name else None
    base = _base_params(params_file, scenario)
    params = None if scenario is not None else (base or RemodelingParams())
    mech = _mechanics_settings(mechanics, mechanics_every, scenario, modeling)
    be = make_backend(backend, chunks=chunks, steps_per_exchange=steps_per_exchange)
    click.echo(
        f"backend {be.name} on {be.device}; {volume.shape} voxels of {volume.voxel_size_um:g} µm", err=True
    )
    bar = _SimulateProgress(quiet=no_progress)
    command = "bonesim simulate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "bonesim simulate"
    try:
        with bar:  # closed (its line ended) before any message below, an error included
            res = run(
                volume,
                params,
                years=years,
                backend=be,
                seed=seed,
                save_every=save_every,
                out=output_path,
                overwrite=overwrite,
                spinup_years=spinup_years,
                resume=resume,
                progress=bar,
                scenario=scenario,
                base_params=base,
                compression=compression,
                mechanics=mech,
                command=command,
                checkpoint_compression=checkpoint_compression,
                checkpoint_every_minutes=checkpoint_every_minutes,
            )
    except KeyboardInterrupt:
        part = partial_path(output_path)
        if Path(output_path).is_file() and not part.exists():
            click.echo(f"Interrupted after the run completed; {output_path} is whole.", err=True)
            raise SystemExit(130) from None
        if Path(part).exists():
            click.echo(
                f"Interrupted; checkpoint in {part}. Continue with the same command and --resume.", err=True
            )
        else:
            click.echo("Interrupted.", err=True)
        raise SystemExit(130) from None
    m = res.metrics
    click.echo(
        f"{res.path}: {len(m['day'])} frames over {m['day'][-1]:g} days on {res.backend} ({res.device}); "
        f"BV/TV input {volume.bv_tv:.4f}, day 0 (after spin-up) {m['bv_tv'][0]:.4f}, "
        f"end {m['bv_tv'][-1]:.4f}; {res.timings['gvox_per_s']:.4f} Gvox/s"
    )


class _SimulateProgress:
    """The engine's progress callback: one bar over spin-up + run, in simulated days.

    The position is the days simulated since the start of the spin-up, so the
    bar moves (and the ETA, from the measured rate, is known) during the
    spin-up too; its label says which phase runs ("spin-up" before day 0,
    "simulate" after). Opened on the first report, which carries the totals.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __enter__(self) -> _SimulateProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, info: dict) -> None:
        from bonesim.cli._progress import Progress

        spin = info.get("spinup_days", 0.0)
        pos = round(info["day"] + spin)
        if self.bar is None:  # the rate is measured from here: the first simulated day is done
            self.bar = Progress(
                round(spin + info["total_days"]),
                desc="spin-up" if info["day"] < 0 else "simulate",
                unit="d",
                initial=pos,
                quiet=self.quiet,
            )
        phase = "spin-up" if info["day"] < 0 else "simulate"
        day = f"day {info['day']:g}" + (" (before day 0)" if info["day"] < 0 else "")
        self.bar.update(
            pos,
            phase=phase,
            postfix=f"{day}, {info['steps_per_s']:.1f} steps/s, {info['gvox_per_s']:.3f} Gvox/s",
        )


def _mechanics_settings(flag, every, scenario, modeling=None):
    """MechanoParams for the run, or None: on with --mechanics, or when the scenario changes the load."""
    from bonesim.ca.mechano import MechanoParams

    load = None if scenario is None else scenario.table.get("load_magnitude")
    changes_load = load is not None and bool((np.asarray(load) != 1.0).any())
    if flag is None:
        flag = changes_load
        if flag:
            click.echo(
                "the scenario changes the mechanical load: mechanoregulation on (--no-mechanics: off)",
                err=True,
            )
    elif not flag and changes_load:
        click.echo(
            "warning: --no-mechanics ignores the scenario's [loading] (it acts through mechanics)", err=True
        )
    if not flag:
        if modeling:
            click.echo("warning: --modeling needs mechanoregulation; it is off", err=True)
        return None
    axis = getattr(scenario, "load_axis", None) or "z"
    extra = {} if modeling is None else {"modeling": bool(modeling)}
    return MechanoParams(interval_days=every, axis=axis, **extra)
