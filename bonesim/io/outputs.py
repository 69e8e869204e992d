"""The one output policy of every command that writes a file.

Before any work starts, :func:`check_output` refuses:

- a path that exists, unless ``overwrite`` (and even then anything that is not
  a regular file: a folder, a device such as ``/dev/null``, a FIFO, a socket);
- a path that is one of the command's inputs (the same file under any name);
- a file name whose suffix is not one the writer produces (the format is
  known before the file is opened);
- a folder that does not exist or cannot be written.

:func:`atomic_write` then hands out a unique temporary name beside the target
and renames it onto the target only when the writer has finished, so a crash,
Ctrl-C or a full disk never leaves a half-written file or destroys the old one.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_write(d / "a.csv", suffixes=(".csv",)) as tmp:
...     _ = tmp.write_text("x\\n1\\n")
>>> (d / "a.csv").read_text()
'x\\n1\\n'
>>> check_output(d / "a.csv")
Traceback (most recent call last):
...
bonesim.errors.BonesimError: output file ... exists; pass overwrite=True to replace it
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from bonesim.errors import BonesimError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
    suffixes: Iterable[str] | None = None,
    what: str = "output file",
) -> Path:
    """Check that ``path`` may be written by a command (see the module docstring); return it."""
    p = Path(path)
    for src in inputs:
        if src is not None and (_same_file(p, Path(src)) or p.resolve() == Path(src).resolve()):
            raise BonesimError(f"{what} {p} is also an input of this command ({src}); choose another name")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if p.suffix.lower() not in allowed:
            raise BonesimError(
                f"{what} {p} must end in {' or '.join(allowed)} (got {p.suffix or 'no suffix'!r})"
            )
    if p.exists() or p.is_symlink():
        try:
            mode = os.stat(p).st_mode
        except OSError:
            mode = 0
        if stat.S_ISDIR(mode):
            raise BonesimError(f"{what} {p} is a directory, expected a file name")
        if not stat.S_ISREG(mode):
            raise BonesimError(
                f"{what} {p} exists and is not a regular file (a device, FIFO or socket); refusing"
            )
        if not overwrite:
            raise BonesimError.fix(
                f"{what} {p} exists", "pass overwrite=True to replace it", "pass --overwrite to replace it"
            )
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise BonesimError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BonesimError(f"output folder {parent} is not writable")
    return p


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
    suffixes: Iterable[str] | None = None,
    what: str = "output file",
) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file keeps the target's suffix (writers that pick the format
    from the suffix, such as matplotlib or imageio, see the right one). On any
    exception it is removed and ``path`` is untouched; a full disk becomes one
    :class:`~bonesim.errors.BonesimError` sentence.
    """
    target = check_output(path, overwrite=overwrite, inputs=inputs, suffixes=suffixes, what=what)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes it private; give the usual mode
        # the target may have appeared while we worked (another process): same policy again
        check_output(target, overwrite=overwrite, what=what)
        os.replace(tmp_path, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if exc.errno == errno.ENOSPC:
            raise BonesimError(f"disk full while writing {target}; nothing was replaced") from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
