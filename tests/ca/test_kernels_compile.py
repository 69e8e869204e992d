"""Every CUDA kernel compiles standalone for sm_90 with nvcc (a CPU-only check of the sources)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bonesim._resources import kernel_sources

NVCC = shutil.which("nvcc")
SOURCES = {p.name: p for p in kernel_sources() if p.suffix == ".cu"}


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize(
    "defines", [[], ["-DBONESIM_NEIGH=6"], ["-DBONESIM_NEIGH=26", "-DBONESIM_BX=64", "-DBONESIM_BY=2"]]
)
def test_kernel_compiles_for_sm90(source, defines, tmp_path):
    r = subprocess.run(
        [
            NVCC,
            "-std=c++17",
            "-arch=sm_90",
            "-ptx",
            *defines,
            str(SOURCES[source]),
            "-o",
            str(tmp_path / "k.ptx"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    neigh = next((d.split("=")[1] for d in defines if "NEIGH" in d), "26")
    expected = {
        "remodel.cu": [f"bonesim_remodel_step_n{neigh}", f"bonesim_remodel_step_zm_n{neigh}"],
        "morphometry.cu": ["bonesim_morph_ridge_n26", "bonesim_morph_paint_balls_warp"],
        "matvec.cu": ["hex8_matvec"],
    }
    assert source in expected, f"add the kernels of {source} to this test"
    for name in expected[source]:
        assert name in ptx


def test_every_macro_has_a_default():
    import re

    text = "\n".join(p.read_text() for p in kernel_sources())
    for macro in set(re.findall(r"\bBONESIM_(?:NEIGH|BX|BY|BZ|NSLOT|MIN_BLOCKS|ZBX|ZBY|ZCHUNK)\b", text)):
        assert f"#ifndef {macro}" in text, f"{macro} has no #ifndef default"


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
def test_no_barriers_mutation_builds_and_removes_every_barrier(tmp_path):
    """The mutation gpu-check.sh runs on the device (BONESIM_NO_BARRIERS) compiles, and has no barrier left."""
    counts = {}
    for defines in ([], ["-DBONESIM_NO_BARRIERS=1"]):
        ptx = tmp_path / "k.ptx"
        r = subprocess.run(
            [NVCC, "-std=c++17", "-arch=sm_90", "-ptx", *defines, str(SOURCES["remodel.cu"]), "-o", str(ptx)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        text = ptx.read_text()
        # plain barriers, and the voting ones of the uniform-tile skip (__syncthreads_or: bar.red.or)
        counts[bool(defines)] = (text.count("bar.sync"), text.count("bar.red"))
    assert sum(counts[False]) >= 4 and counts[False][1] >= 2 and counts[True] == (0, 0), counts


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize(
    ("script", "kernels"),
    [
        ("sass_staging.cu", ["stage_checked", "stage_interior"]),
        ("sass_parts.cu", ["counters_seven_shfl", "counters_packed", "skip_uniform"]),
    ],
)
def test_sass_micro_kernels_compile(script, kernels, tmp_path):
    """The micro kernels scripts/sass_count.py counts still build against the kernel headers."""
    from pathlib import Path

    from bonesim._resources import kernel_dir

    src = Path(__file__).resolve().parents[2] / "scripts" / script
    ptx = tmp_path / "k.ptx"
    r = subprocess.run(
        [NVCC, "-std=c++17", "-arch=sm_90", "-ptx", f"-I{kernel_dir('ca')}", str(src), "-o", str(ptx)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    text = ptx.read_text()
    for name in kernels:
        assert f".entry {name}(" in text, name
