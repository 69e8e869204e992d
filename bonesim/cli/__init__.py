"""The ``bonesim`` command line: a thin click layer over the library.

Each command lives in its own module under ``bonesim.cli`` and is imported only
when it is run (or listed by ``--help``), so ``bonesim info`` never pays for
PyVista, Dask or CuPy imports.
"""

from __future__ import annotations

import importlib

import click

from bonesim._version import __version__

# command name -> "module:attribute" (modules under bonesim.cli)
COMMANDS: dict[str, str] = {
    "info": "bonesim.cli.volume_cmds:info",
    "phantom": "bonesim.cli.volume_cmds:phantom",
    "import": "bonesim.cli.volume_cmds:import_",
    "sample": "bonesim.cli.volume_cmds:sample",
    "simulate": "bonesim.cli.simulate_cmd:simulate",
    "scenarios": "bonesim.cli.physiology_cmds:scenarios",
    "physiology": "bonesim.cli.physiology_cmds:physiology",
    "validate": "bonesim.cli.physiology_cmds:validate",
    "analyze": "bonesim.cli.analyze_cmd:analyze",
    "render": "bonesim.cli.viz_cmds:render",
    "animate": "bonesim.cli.viz_cmds:animate",
    "plot": "bonesim.cli.viz_cmds:plot",
    "compare": "bonesim.cli.compare_cmd:compare",
    "report": "bonesim.cli.report_cmd:report",
    "export": "bonesim.cli.viz_cmds:export",
    "batch": "bonesim.cli.batch_cmd:batch",
    "bench": "bonesim.cli.bench_cmd:bench",
    "mechanics": "bonesim.cli.mechanics_cmd:mechanics",
}


def _load(spec: str) -> click.Command:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        return _load(spec) if spec else None  # an unknown name: click says so


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bonesim")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """bonesim: GPU-accelerated simulation of bone remodeling on micro-CT volumes.

    \b
    Examples:
      bonesim phantom bone.h5 --shape 128 --bvtv 0.2 --voxel-size 20
      bonesim info bone.h5
      bonesim simulate bone.h5 run.h5 --scenario postmenopausal --years 5
      bonesim render run.h5 -o run.png
    """
    import logging

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
