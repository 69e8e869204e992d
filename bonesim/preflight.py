"""Resource pre-flight: bytes a job needs against what the machine has, before allocating them.

>>> check_memory(1024, what="a test")          # a kilobyte always fits
>>> human(3 * 2**30)
'3.0 GiB'
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bonesim.errors import BonesimError


def human(nbytes: float) -> str:
    """Bytes as a short human string (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def available_memory() -> int | None:
    """Bytes of host memory available now (``MemAvailable`` of /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes: float, *, what: str) -> None:
    """Refuse ``what`` when it needs more host memory than is available, saying both numbers."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise BonesimError(f"{what} needs about {human(nbytes)} of memory; {human(avail)} is available")


def check_disk(path: str | os.PathLike, nbytes: float, *, what: str) -> None:
    """Refuse ``what`` when the file system holding ``path`` has less than ``nbytes`` free."""
    p = Path(path)
    folder = p if p.is_dir() else (p.parent if str(p.parent) else Path("."))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if nbytes > free:
        raise BonesimError(f"{what} needs about {human(nbytes)} of disk at {folder}; {human(free)} is free")
