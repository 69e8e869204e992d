"""Where package data lives, both installed (wheel) and in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def kernel_dir() -> Path:
    """The folder holding ``*.cu`` kernel sources.

    The wheel ships ``kernels/`` as ``bonesim/_kernels``; a source checkout
    (``PYTHONPATH=.``) has it at the repository root.
    """
    for candidate in (_PKG / "_kernels", _PKG.parent / "kernels"):
        if candidate.is_dir() and any(candidate.glob("*.cu")):
            return candidate
    raise FileNotFoundError(
        f"bonesim kernel sources (*.cu) not found in {_PKG / '_kernels'} or {_PKG.parent / 'kernels'}"
    )


def data_dir() -> Path:
    """The folder holding scenario presets and reference tables (``data/``)."""
    for candidate in (_PKG / "_data", _PKG.parent / "data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bonesim data folder not found in {_PKG / '_data'} or {_PKG.parent / 'data'}")
