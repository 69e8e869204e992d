"""Progress, logs and baselines (issue 17): bars on a terminal, plain lines in logs, named BV/TV."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner

from bonesim import phantom
from bonesim.cli import main
from bonesim.cli._progress import Progress
from bonesim.io.hdf5 import write_volume
from bonesim.volume import Volume

SIM = ["--backend", "numpy", "--years", "0.1", "--spinup-years", "0.05", "--save-every", "10"]


@pytest.fixture(scope="module")
def bone(tmp_path_factory):
    path = tmp_path_factory.mktemp("prog") / "bone.h5"
    write_volume(path, Volume(phantom.gyroid((16, 16, 16), 8, 0.35), 25.0))
    return path


@pytest.fixture(scope="module")
def run_h5(bone):
    out = bone.with_name("run.h5")
    r = CliRunner().invoke(main, ["simulate", str(bone), str(out), *SIM], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r


def test_log_lines_have_no_carriage_returns_and_say_every_few_per_cent():
    buf = io.StringIO()
    with Progress(100, desc="spin-up", unit="d", file=buf, every_pct=25, every_s=1e9) as p:
        for n in range(1, 101):
            p.update(n, phase="spin-up" if n <= 40 else "simulate", postfix="x")
    out = buf.getvalue()
    assert "\r" not in out
    lines = out.splitlines()
    assert 4 <= len(lines) <= 7, lines  # every 25 %, the phase change, the last line
    assert lines[0].startswith("spin-up: 1/100 d (1 %)")
    assert any(line.startswith("simulate: 41/100 d") for line in lines)
    assert "ETA" in lines[0] and lines[-1].startswith("simulate: 100/100 d (100 %)")


def test_a_terminal_bar_ends_its_line_when_closed():
    buf = io.StringIO()
    p = Progress(10, desc="analyze", unit="frame", file=buf, tty=True)
    p.update(3)
    p.close()
    assert "\r" in buf.getvalue() and buf.getvalue().endswith("\n")
    quiet = io.StringIO()
    with Progress(10, desc="analyze", file=quiet, quiet=True) as q:
        q.update(5)
    assert quiet.getvalue() == ""


def test_simulate_log_covers_the_spin_up_without_carriage_returns(run_h5):
    _, r = run_h5
    assert "\r" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if re.match(r"(spin-up|simulate): \d+/\d+ d", ln)]
    assert lines and lines[0].startswith("spin-up: 1/"), r.stderr  # moves from the first spin-up day
    total = round(0.05 * 365.25) + round(0.1 * 365.25)
    assert lines[-1].startswith(f"simulate: {total}/{total} d (100 %)"), r.stderr
    assert any("ETA" in ln and "?" not in ln.split("ETA")[1][:3] for ln in lines)


def test_simulate_end_line_and_info_name_the_same_three_baselines(run_h5):
    out, r = run_h5
    pattern = r"BV/TV +input ([0-9.]+), day 0 \(after spin-up\) ([0-9.]+), end ([0-9.]+)"
    end_line = re.search(pattern, r.stdout)
    assert end_line, r.stdout
    info = CliRunner().invoke(main, ["info", str(out)])
    assert info.exit_code == 0, info.output
    shown = re.search(pattern, info.stdout)
    assert shown, info.stdout
    assert shown.groups() == end_line.groups()


def test_analyze_reports_each_frame_on_stderr_and_no_progress_silences_it(run_h5):
    out, _ = run_h5
    r = CliRunner().invoke(
        main, ["analyze", str(out), "--no-write", "--frames", "last"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    assert "\r" not in r.stderr
    assert "analyze: 0/1 frame (0 %)" in r.stderr and "analyze: 1/1 frame (100 %)" in r.stderr, r.stderr
    assert "frame(s) analysed" in r.stdout
    r = CliRunner().invoke(main, ["analyze", str(out), "--no-write", "--frames", "last", "--no-progress"])
    assert r.exit_code == 0 and "analyze:" not in r.stderr, r.stderr


def test_an_error_starts_on_its_own_line_after_a_bar_in_cli_spelling():
    import click

    from bonesim.cli._common import user_errors
    from bonesim.errors import BonesimError

    @click.command()
    @user_errors
    def cmd():
        with Progress(10, desc="work", unit="d", tty=True) as p:
            p.update(3)
            raise BonesimError("pass overwrite=True to replace it", cli="pass --overwrite to replace it")

    r = CliRunner().invoke(cmd, [])
    assert r.exit_code == 1
    assert "\nError: pass --overwrite to replace it\n" in r.stderr, repr(r.stderr)
    assert "overwrite=True" not in r.stderr


def test_import_errors_use_cli_spelling_on_the_cli_and_api_spelling_in_python(tmp_path):
    import numpy as np

    from bonesim.errors import BonesimError
    from bonesim.io.importers import import_volume

    src = tmp_path / "grey.npy"
    np.save(src, np.zeros((4, 4, 4), np.uint8))
    r = CliRunner().invoke(main, ["import", str(src), str(tmp_path / "a.h5")])
    assert r.exit_code == 1 and "--voxel-size UM" in r.stderr and "voxel_size_um" not in r.stderr, r.stderr
    with pytest.raises(BonesimError, match=r"voxel_size_um=$") as exc:
        import_volume(src)
    assert "--voxel-size" not in str(exc.value)
