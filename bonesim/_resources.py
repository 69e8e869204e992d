"""Where package data lives, both installed (wheel) and in a source checkout.

CUDA sources live beside the Python that launches them, as package data:
``bonesim/ca/kernels`` (the CA step) and ``bonesim/morphometry/kernels``
(GPU local thickness). Scenario presets and reference tables live in the
repository's ``data/`` and ship in the wheel as ``bonesim/_data``.
"""

from __future__ import annotations

from pathlib import Path

from bonesim.errors import InputError

_PKG = Path(__file__).resolve().parent

#: Rooms that ship CUDA sources in ``bonesim/<room>/kernels``.
KERNEL_ROOMS = ("ca", "mechanics", "morphometry")


def kernel_dir(room: str = "ca") -> Path:
    """The folder holding the ``*.cu``/``*.cuh`` sources of ``room`` (one of :data:`KERNEL_ROOMS`)."""
    if room not in KERNEL_ROOMS:
        raise InputError(f"no kernels for {room!r}; rooms with kernels: {', '.join(KERNEL_ROOMS)}")
    path = _PKG / room / "kernels"
    if not any(path.glob("*.cu")):
        raise FileNotFoundError(f"bonesim kernel sources (*.cu) not found in {path}")
    return path


def kernel_sources() -> list[Path]:
    """Every ``*.cu`` and ``*.cuh`` file bonesim ships, in all rooms."""
    return sorted(
        p for room in KERNEL_ROOMS for p in kernel_dir(room).iterdir() if p.suffix in (".cu", ".cuh")
    )


def data_dir() -> Path:
    """The folder holding scenario presets and reference tables (``data/``)."""
    for candidate in (_PKG / "_data", _PKG.parent / "data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bonesim data folder not found in {_PKG / '_data'} or {_PKG.parent / 'data'}")
