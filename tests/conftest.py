"""Shared pytest fixtures: GPU detection, small phantoms, temporary outputs.

GPU tests (marked ``gpu``) are skipped where CuPy or a CUDA device is missing,
unless the run is *asked to test the GPU*: ``BONESIM_REQUIRE_GPU=1`` (set by
``make test-gpu`` and ``scripts/gpu-check.sh``) or ``-m gpu``. Then a missing or
broken CuPy/device fails every GPU test with the reason, instead of reporting
green. ``BONESIM_REQUIRE_GPU=0`` turns that off explicitly.
"""

from __future__ import annotations

import functools
import os

import pytest


@functools.cache
def gpu_status() -> tuple[bool, str]:
    """(usable, reason): CuPy imports, a CUDA device answers, and a small kernel runs and gives 56."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a wheel built for another CUDA
        return False, f"CuPy does not import: {type(e).__name__}: {e}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
        if n <= 0:
            return False, "CuPy imports but sees no CUDA device"
        got = int((cupy.arange(8, dtype=cupy.uint32) * cupy.uint32(2)).sum().get())
        if got != 56:
            return False, f"a CuPy kernel on the device computed {got} instead of 56"
    except Exception as e:
        return False, f"CuPy imports but the CUDA device does not work: {type(e).__name__}: {e}"
    return True, ""


def gpu_available() -> bool:
    """True when CuPy imports, a CUDA device answers and a kernel runs on it."""
    return gpu_status()[0]


def gpu_required(config) -> bool:
    env = os.environ.get("BONESIM_REQUIRE_GPU", "").strip()
    if env:
        return env not in ("0", "false", "no")
    return (config.getoption("markexpr", "") or "").strip() == "gpu"


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    ok, reason = gpu_status()
    if ok:
        return
    if gpu_required(config):
        msg = f"the GPU was asked for (BONESIM_REQUIRE_GPU=1 or -m gpu) but is unusable: {reason}"
        for item in gpu_items:
            item.add_marker(pytest.mark.gpu_required_but_missing(msg))
        return
    skip = pytest.mark.skip(reason=f"no CUDA device / CuPy ({reason})")
    for item in gpu_items:
        item.add_marker(skip)


def pytest_runtest_setup(item):
    m = item.get_closest_marker("gpu_required_but_missing")
    if m is not None:
        pytest.fail(m.args[0], pytrace=False)
