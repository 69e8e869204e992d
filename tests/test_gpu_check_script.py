"""scripts/gpu-check.sh, the prepared device run of issue 16: it parses, and it holds every step the issue names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu-check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_script_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "needle",
    [
        "nvidia-smi",
        "BONESIM_REQUIRE_GPU=1",
        "data/lhdl_3155_D_4_bc/slices",
        "--shape 100,75,133",  # a phantom that is no multiple of either block shape
        "scripts/compare_results.py",
        '--tool "$tool"',
        "memcheck racecheck",
        "command -v compute-sanitizer",
        "BONESIM_KERNEL_MUTATION=no_barriers",
        "--shape 512 --shape 1024",
        "scripts/bench_morphometry.py",
        "has_py dask_cuda",
        "has_py bonesim.mechanics",
        "vtkEGLRenderWindow",
        "--target /tmp/site",
        'timeout -k 5 "$limit"',
    ],
)
def test_script_has_every_step_of_the_issue(needle):
    assert needle in SCRIPT.read_text()
