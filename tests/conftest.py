"""Shared pytest fixtures: GPU detection, small phantoms, temporary outputs."""

from __future__ import annotations

import functools

import pytest


@functools.cache
def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device / CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
