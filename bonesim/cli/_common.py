"""Helpers shared by CLI commands: one-sentence errors, common options."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any

import click

from bonesim._optional import MissingDependencyError, missing_message
from bonesim.errors import BonesimError


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """One line on stderr and a non-zero exit for the user's mistakes; a bug keeps its traceback.

    :class:`~bonesim.errors.BonesimError` (bad input, on purpose) and the OS
    errors a user causes (missing file, no permission, disk full) print one
    sentence and exit 1. Anything else is a bug in bonesim: it says so and
    prints the traceback with ``bonesim -v``, exit 2.

    A missing optional package (a ``ModuleNotFoundError`` for one of
    :data:`bonesim._optional.OPTIONAL`) is a user error too: one sentence
    naming the command and the pip extra, e.g. ``bonesim plot needs
    matplotlib: pip install 'bonesim[viz]'``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MissingDependencyError as exc:
            _fail(exc.sentence(_command_name()))
        except BonesimError as exc:
            _fail(exc.cli_message.strip() or exc.__class__.__name__)
        except ImportError as exc:
            msg = missing_message(exc.name or "", _command_name()) if exc.name else None
            if msg is None:
                _bug(exc)
            _fail(msg)
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                _fail(
                    f"disk full ({exc.filename or 'output'}); free space and retry (a simulation resumes with --resume)"
                )
            _bug(exc)
        except MemoryError:
            _fail("out of memory; use a smaller volume (or --chunks for simulate)")
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            _bug(exc)

    return wrapper


def _command_name() -> str:
    """``bonesim CMD`` for the command being run (``bonesim`` outside a click context)."""
    ctx = click.get_current_context(silent=True)
    return f"bonesim {ctx.info_name}" if ctx is not None and ctx.parent is not None else "bonesim"


def _fail(msg: str) -> None:
    click.echo(f"Error: {msg}", err=True)
    raise SystemExit(1)


def _bug(exc: BaseException) -> None:
    import logging
    import traceback

    click.echo(
        f"Internal error (this is a bug in bonesim, please report it): {type(exc).__name__}: {exc}", err=True
    )
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        click.echo("".join(traceback.format_exception(exc)), err=True)
    else:
        click.echo("Run with `bonesim -v ...` to see the traceback.", err=True)
    raise SystemExit(2)


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
