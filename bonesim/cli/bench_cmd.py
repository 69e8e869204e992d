"""``bonesim bench``: throughput of the remodeling CA as JSON."""

from __future__ import annotations

import json

import click

from bonesim.cli._common import user_errors


@click.command()
@click.option(
    "--shape", "shapes", type=int, multiple=True, help="Cube edge in voxels (repeatable; default 512, 1024)."
)
@click.option("--steps", type=int, default=50, show_default=True, help="Timed steps per shape.")
@click.option("--backend", type=click.Choice(["auto", "cupy", "numpy"]), default="auto", show_default=True)
@click.option(
    "--baseline-shape", type=int, default=256, show_default=True, help="Naive GPU baseline shape (0: skip)."
)
@click.option("--numpy-shape", type=int, default=64, show_default=True, help="NumPy backend shape (0: skip).")
@click.option("--numpy-steps", type=int, default=20, show_default=True)
@user_errors
def bench(shapes, steps, backend, baseline_shape, numpy_shape, numpy_steps):
    """Benchmark the CA step and print JSON (Gvox/s, GB/s, copy bandwidth, baselines).

    \b
    Examples:
      bonesim bench
      bonesim bench --shape 256 --steps 20 --numpy-shape 0
      bonesim bench --backend numpy --numpy-shape 128
    """
    from bonesim.ca.bench import run_bench

    res = run_bench(
        list(shapes) or None,
        steps,
        backend=backend,
        baseline_shape=baseline_shape,
        numpy_shape=numpy_shape,
        numpy_steps=numpy_steps,
    )
    click.echo(json.dumps(res, indent=2))
