"""``bonesim batch``: run a study manifest on this machine, its GPUs or a SLURM cluster."""

from __future__ import annotations

from pathlib import Path

import click

from bonesim.cli._common import user_errors


@click.command("batch")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--scheduler",
    type=click.Choice(["local", "dask-cuda", "slurm"]),
    default="local",
    show_default=True,
    help="local: process pool here; dask-cuda: one worker per GPU; slurm: Dask workers in SLURM jobs.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local processes, GPUs (dask-cuda) or SLURM jobs (default: see docs/hpc.md).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the runs (and, for slurm, the job scripts); run nothing."
)
@click.option(
    "--slurm-array",
    "slurm_array",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an sbatch array script (one run per index) to FILE instead of running.",
)
@click.option(
    "--run-index",
    "run_index",
    type=click.IntRange(min=0),
    default=None,
    help="Run only run N of the study, in this process (what an array task does).",
)
@click.option("--summarize", is_flag=True, help="Only rebuild summary.csv/.h5, ensemble.csv and the plots.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace results of runs whose settings changed in the manifest (and an existing --slurm-array FILE).",
)
@user_errors
def batch(
    manifest: Path,
    scheduler: str,
    workers: int | None,
    dry_run: bool,
    slurm_array: Path | None,
    run_index: int | None,
    summarize: bool,
    overwrite: bool,
) -> None:
    """Run every simulation of a study MANIFEST (inputs × scenarios × seeds).

    Finished runs are skipped, interrupted runs resume from their checkpoint,
    a failed run is recorded in the summary and does not stop the others.
    Results go to the manifest's `output` folder: runs/<run_id>.h5,
    status/<run_id>.json, summary.csv, summary.h5, ensemble.csv, plots/.

    \b
    Examples:
      bonesim batch study.toml --dry-run
      bonesim batch study.toml --workers 2
      bonesim batch study.toml --scheduler dask-cuda
      bonesim batch study.toml --scheduler slurm --workers 8
      bonesim batch study.toml --slurm-array study.sbatch && sbatch study.sbatch
      bonesim batch study.toml --run-index 3
      bonesim batch study.toml --summarize
      bonesim batch study.toml --overwrite      # after changing years/seeds/... of finished runs
    """
    from bonesim.batch.manifest import load_manifest
    from bonesim.batch.runner import plan

    study = load_manifest(manifest)
    if run_index is not None:
        _run_index(study, run_index, overwrite)
        return
    if summarize:
        from bonesim.batch.summary import write_summary

        paths = write_summary(study)
        _echo_summary(paths["csv"], paths["h5"], paths["plots"])
        return
    if dry_run:
        _dry_run(study, scheduler, slurm_array, plan(study))
        return
    if slurm_array is not None:
        from bonesim.batch.schedulers import slurm_array_script

        todo = [r.index for r, s in plan(study) if s != "done"]
        from bonesim.io.outputs import atomic_write

        script = slurm_array_script(study, indices=todo, manifest=manifest.resolve())
        with atomic_write(slurm_array, overwrite=overwrite, inputs=[manifest], what="SLURM script") as tmp:
            tmp.write_text(script)
        (study.output / "logs").mkdir(parents=True, exist_ok=True)
        click.echo(
            f"wrote {slurm_array}: {len(todo)} array tasks of {len(study.runs)} runs; "
            f"submit with: sbatch {slurm_array}"
        )
        return
    _run(study, scheduler, workers, overwrite)


def _run(study, scheduler: str, workers: int | None, overwrite: bool = False) -> None:
    from bonesim.batch.runner import run_study

    click.echo(f"study {study.name}: {len(study.runs)} runs -> {study.output}")

    def progress(rec: dict, n: int, total: int) -> None:
        status = rec.get("status", "?")
        wall = rec.get("wall_s")
        extra = f" {wall:.1f} s" if isinstance(wall, (int, float)) and status != "skipped" else ""
        dev = f" [{rec['device']}]" if rec.get("device") and status == "done" else ""
        err = f": {rec.get('error', '')}" if status == "failed" else ""
        click.echo(f"[{n}/{total}] {status:<7} {rec.get('run_id', '?')}{extra}{dev}{err}")

    res = run_study(study, scheduler=scheduler, workers=workers, progress=progress, overwrite=overwrite)
    done, skipped, failed = res.count("done"), res.count("skipped"), res.count("failed")
    click.echo(
        f"{len(res.records)} runs in {res.wall_s:.1f} s: {done} done, {skipped} already finished, "
        f"{failed} failed"
    )
    _echo_summary(res.summary_csv, res.summary_h5, res.plots)
    if failed:
        click.echo(
            f"Error: {failed} run(s) failed (errors in {res.summary_csv}); rerun the same command "
            "to retry them",
            err=True,
        )
        raise SystemExit(1)


def _run_index(study, index: int, overwrite: bool = False) -> None:
    from bonesim.batch.runner import run_one

    rec = run_one(study, index, overwrite=overwrite)
    status = rec.get("status")
    if status == "failed":
        click.echo(f"Error: run {index} ({rec.get('run_id')}) failed: {rec.get('error')}", err=True)
        raise SystemExit(1)
    wall = f" in {rec['wall_s']:.1f} s" if status == "done" else " (finished before)"
    click.echo(f"run {index} ({rec.get('run_id')}) {status}{wall}")


def _echo_summary(csv_path, h5_path, plots) -> None:
    if csv_path:
        click.echo(f"summary: {csv_path} and {h5_path}")
    for p in plots or []:
        click.echo(f"plot: {p}")


def _dry_run(study, scheduler: str, slurm_array: Path | None, states) -> None:
    from bonesim.batch.schedulers import default_workers

    click.echo(
        f"study {study.name}: {len(study.runs)} runs "
        f"({len(study.inputs)} inputs × {len(study.scenarios)} scenarios × {len(study.seeds)} seeds), "
        f"{study.years:g} years, save every {study.save_every} d, spin-up {study.spinup_years:g} y, "
        f"backend {study.backend}"
    )
    click.echo(f"output: {study.output}")
    first = study.runs[0]
    if first.chunks is not None:
        click.echo(
            f"chunked: blocks of {'x'.join(map(str, first.chunks))} voxels, "
            f"{first.steps_per_exchange} steps per halo exchange"
        )
    width = max(len(r.run_id) for r, _ in states)
    for r, s in states:
        click.echo(f"{r.index:>4}  {r.run_id:<{width}}  {s:<8} {r.input.describe()} | {r.scenario.ref}")
    todo = [r.index for r, s in states if s != "done"]
    click.echo(f"{len(todo)} to run, {len(states) - len(todo)} finished")
    if scheduler == "slurm" or slurm_array is not None:
        from bonesim.batch.schedulers import slurm_array_script, slurm_dask_job_script

        manifest = study.manifest
        click.echo(f"\n# --- sbatch array script{f' ({slurm_array})' if slurm_array else ''} ---")
        if todo:
            click.echo(slurm_array_script(study, indices=todo, manifest=manifest))
        else:
            click.echo("# nothing left to run")
        if scheduler == "slurm" and slurm_array is None:
            n = default_workers(study, "slurm", len(todo))
            click.echo(f"# --- dask-jobqueue worker job script (x{n} jobs) ---")
            click.echo(slurm_dask_job_script(study))
    elif scheduler == "dask-cuda":
        click.echo("would start dask_cuda.LocalCUDACluster: one worker per visible GPU")
    else:
        n = default_workers(study, "local", len(todo))
        click.echo(f"would run on a local pool of {n} worker process(es)")
