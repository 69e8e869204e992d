"""Helpers shared by CLI commands: one-sentence errors, common options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from bonesim.errors import BonesimError


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-facing errors into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (BonesimError, ValueError, TypeError, FileNotFoundError, PermissionError) as exc:
            msg = str(exc).strip() or exc.__class__.__name__
            click.echo(f"Error: {msg}", err=True)
            raise SystemExit(1) from None

    return wrapper


overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace OUT if it exists (default: refuse)."
)

compression_option = click.option(
    "--compression",
    type=click.Choice(["gzip", "zstd", "none"]),
    default="gzip",
    show_default=True,
    help="HDF5 compression; zstd needs hdf5plugin to read the file back.",
)
