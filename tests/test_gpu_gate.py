"""`make test-gpu` fails, not skips, when CuPy or the device is missing (tests/conftest.py, issue 16).

Runs one GPU test in a child pytest on this machine, with and without the request
to test the GPU. Skipped where a GPU works (the child would then really run it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import gpu_available

ROOT = Path(__file__).resolve().parents[1]
ONE_GPU_TEST = "tests/ca/test_ca_gpu.py::test_cupy_matches_numpy_6_neighbourhood"

pytestmark = pytest.mark.skipif(gpu_available(), reason="a GPU works here: the gate has nothing to refuse")


def _child(*args: str, require: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BONESIM_REQUIRE_GPU"}
    env["PYTHONPATH"] = str(ROOT)
    env["CUDA_VISIBLE_DEVICES"] = ""  # no device even where CuPy is installed
    if require is not None:
        env["BONESIM_REQUIRE_GPU"] = require
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", *args, ONE_GPU_TEST]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_gpu_test_fails_when_the_gpu_is_required():
    r = _child(require="1")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "1 error" in out and "the GPU was asked for" in out and "CuPy does not import" in out, out


def test_dash_m_gpu_requires_the_gpu_too():
    r = _child("-m", "gpu", require=None)
    assert r.returncode == 1 and "the GPU was asked for" in r.stdout, r.stdout + r.stderr


def test_plain_run_skips_gpu_tests_cleanly():
    r = _child(require=None)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout + r.stderr
    r = _child("-m", "gpu", require="0")  # explicit opt-out
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout + r.stderr
