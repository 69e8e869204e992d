"""No command destroys a file, mixes runs or crashes on bad input (issue 11: one test per item).

Each test names the item of the issue it covers (``#1`` .. ``#9`` and the bullets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim import phantom
from bonesim.cli import main
from bonesim.io.hdf5 import write_volume
from bonesim.io.result import partial_path
from bonesim.volume import Volume

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--backend",
    "numpy",
    "--no-progress",
    "--years",
    "0.15",
    "--spinup-years",
    "0.05",
    "--save-every",
    "10",
]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_failure(r, *words):
    """Exit != 0, no traceback, one ``Error:`` sentence (progress lines before it are fine) naming ``words``."""
    assert r.exit_code != 0, r.output
    out = r.output.strip()
    assert "Traceback" not in out, out
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, out
    for w in words:
        assert w.lower() in out.lower(), out


def _bone(seed=0, n=20):
    return Volume(
        phantom.gyroid((n, n, n), 12, phantom.gyroid_sheet_level_for(0.35 + 0.02 * seed), sheet=True), 20.0
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety")
    write_volume(d / "bone.h5", _bone(0))
    write_volume(d / "other.h5", _bone(1))
    r = run("simulate", d / "bone.h5", d / "run.h5", *ARGS)
    assert r.exit_code == 0, r.output
    return d


def _bytes(p: Path) -> bytes:
    return p.read_bytes()


# ---------------------------------------------------------------- #1 ----
def test_1_analyze_csv_onto_its_input_or_another_file_is_refused(files, tmp_path):
    res = files / "run.h5"
    before = _bytes(res)
    one_line_failure(run("analyze", res, "--csv", res, "--no-write"), "input")
    one_line_failure(run("analyze", res, "--csv", res, "--no-write", "--overwrite"), "input")
    other = tmp_path / "keep.csv"
    other.write_text("precious\n")
    one_line_failure(run("analyze", res, "--csv", other, "--no-write"), "exists")
    assert other.read_text() == "precious\n" and _bytes(res) == before


def test_1_physiology_csv_and_plot_do_not_overwrite(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("keep\n")
    one_line_failure(run("physiology", "healthy-adult", "--years", "0.1", "--csv", csv), "exists")
    assert csv.read_text() == "keep\n"
    r = run("physiology", "healthy-adult", "--years", "0.1", "--csv", csv, "--overwrite")
    assert r.exit_code == 0 and csv.read_text().startswith("day,")


def test_1_render_checks_the_format_before_opening_the_output(files, tmp_path):
    res = files / "run.h5"
    before = _bytes(res)
    one_line_failure(run("render", res, "-o", res, "--overwrite"), "input")
    one_line_failure(run("render", res, "-o", tmp_path / "name_without_extension"), "must end in")
    assert _bytes(res) == before


# ---------------------------------------------------------------- #2 ----
def test_2_non_regular_outputs_are_refused_even_with_overwrite(files, tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    one_line_failure(run("simulate", files / "bone.h5", fifo, *ARGS, "--overwrite"), "not a regular file")
    assert fifo.is_fifo()
    if Path("/dev/null").exists():
        one_line_failure(run("phantom", "/dev/null", "--shape", "8", "--overwrite"), "not a regular file")


# ---------------------------------------------------------------- #3 ----
def _interrupted(src: Path, out: Path, at_step: int = 40):
    """Run `simulate` in a child and SIGINT it mid-run: a checkpoint is left in OUT.partial."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        from bonesim.ca.engine import simulate
        from bonesim.ca.params import RemodelingParams
        from bonesim.io.hdf5 import read_volume
        def prog(i):
            if i["step"] >= {at_step}:
                os.kill(os.getpid(), signal.SIGINT)
        try:
            simulate(read_volume({str(src)!r}), RemodelingParams(), years=0.15, spinup_years=0.05, save_every=10,
                     backend="numpy", out={str(out)!r}, progress=prog)
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 130 and partial_path(out).is_dir()


def test_3_resume_with_another_input_of_the_same_shape_is_refused(files, tmp_path):
    out = tmp_path / "d.h5"
    _interrupted(files / "bone.h5", out)
    r = run("simulate", files / "other.h5", out, *ARGS, "--resume")
    one_line_failure(r, "input volume", "differs")
    assert not out.exists() and partial_path(out).is_dir()
    r = run("simulate", files / "bone.h5", out, *ARGS, "--resume")
    assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- #4 ----
def _study(tmp_path, **kw):
    d = tmp_path
    lines = [
        f'name = "{kw.get("name", "s")}"',
        f'output = "{kw.get("output", "out")}"',
        f"years = {kw.get('years', 0.1)}",
        "spinup_years = 0.02",
        f"save_every = {kw.get('save_every', 10)}",
        'backend = "numpy"',
        "seeds = [0]",
        'scenarios = ["healthy-adult"]',
    ]
    if "glob" in kw:
        lines += ["[[inputs]]", f'glob = "{kw["glob"]}"']
    else:
        lines += [
            "[[inputs]]",
            'name = "g"',
            'phantom = "gyroid"',
            "shape = 16",
            "voxel_size_um = 20",
            "period = 10",
        ]
    (d / "study.toml").write_text("\n".join(lines) + "\n")
    return d / "study.toml"


def test_4_changed_years_are_not_reported_finished(tmp_path):
    m = _study(tmp_path, years=0.1)
    assert run("batch", m).exit_code == 0
    _study(tmp_path, years=0.12)
    one_line_failure(run("batch", m), "other settings", "years", "--overwrite")
    r = run("batch", m, "--overwrite")
    assert r.exit_code == 0, r.output
    (res,) = (tmp_path / "out" / "runs").glob("*.h5")
    with h5py.File(res) as f:
        assert f["series/day"][-1] == pytest.approx(round(0.12 * 365.25), abs=1)


def test_4_output_dot_keeps_the_users_study_toml(tmp_path):
    m = _study(tmp_path, output=".")
    text = m.read_text()
    assert run("batch", m).exit_code == 0
    assert m.read_text() == text and (tmp_path / "bonesim-study.toml").is_file()


def test_4_glob_never_picks_the_studys_own_results(tmp_path):
    write_volume(tmp_path / "bone1.h5", _bone(0, 16))
    m = _study(tmp_path, glob="**/bone*.h5", output="res")
    for _ in range(2):
        r = run("batch", m)
        assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "res" / "runs").glob("*.h5"))) == 1


def test_4_study_name_cannot_inject_shell_lines(tmp_path):
    m = _study(tmp_path)
    m.write_text(m.read_text().replace('name = "s"', 'name = "x\\ntouch /tmp/pwned"'))
    one_line_failure(run("batch", m, "--dry-run"), "name")


def test_4_space_in_the_output_path_is_quoted_in_sbatch(tmp_path):
    m = _study(tmp_path, output="my results")
    script = tmp_path / "job.sbatch"
    assert run("batch", m, "--slurm-array", script).exit_code == 0
    out_line = next(ln for ln in script.read_text().splitlines() if ln.startswith("#SBATCH --output="))
    assert out_line.startswith('#SBATCH --output="') and out_line.endswith('"')
    assert "--gres" not in script.read_text()  # a NumPy-only study asks for no GPU
    one_line_failure(run("batch", m, "--slurm-array", script), "exists")


def test_4_long_and_slashed_names_run(tmp_path):
    d = tmp_path / ("a" * 200)
    d.mkdir()
    write_volume(d / ("b" * 200 + ".h5"), _bone(0, 16))
    m = _study(tmp_path, glob=f"{d.name}/*.h5")
    r = run("batch", m)
    assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- #5 ----
def test_5_top_level_key_beside_remodeling_table_is_refused(files, tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("formation_efficiency = 0.5\n[remodeling]\nacf_per_year = 0.5\n")
    one_line_failure(run("simulate", files / "bone.h5", tmp_path / "o.h5", *ARGS, "--params", p), "beside")


def test_5_params_shadowed_by_a_scenario_are_refused(files, tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("formation_efficiency = 0.5\nacf_per_year = 0.6\n")
    r = run(
        "simulate", files / "bone.h5", tmp_path / "o.h5", *ARGS, "--params", p, "--scenario", "postmenopausal"
    )
    one_line_failure(r, "formation_efficiency", "--scenario")
    p.write_text("neighbourhood = 6\n")  # not in the daily table: allowed
    r = run(
        "simulate", files / "bone.h5", tmp_path / "o.h5", *ARGS, "--params", p, "--scenario", "healthy-adult"
    )
    assert r.exit_code == 0, r.output


def test_5_a_string_for_a_number_is_one_sentence(files, tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('acf_per_year = "fast"\n')
    one_line_failure(run("simulate", files / "bone.h5", tmp_path / "o.h5", *ARGS, "--params", p), "number")


# ---------------------------------------------------------------- #6 ----
@pytest.mark.parametrize(
    ("toml", "words"),
    [("dt_days = 400\n", ["longer than the run"]), ("dt_days = 50\n", ["too long"])],
)
def test_6_time_steps_that_cannot_work_are_refused(files, tmp_path, toml, words):
    p = tmp_path / "p.toml"
    p.write_text(toml)
    args = [a if a != "0.15" else "0.2" for a in ARGS]
    one_line_failure(run("simulate", files / "bone.h5", tmp_path / "o.h5", *args, "--params", p), *words)


def test_6_seed_beyond_32_bits_is_refused(files, tmp_path):
    one_line_failure(run("simulate", files / "bone.h5", tmp_path / "o.h5", *ARGS, "--seed", 2**63), "seed")


def test_6_negative_checkpoint_step_is_refused(files, tmp_path):
    out = tmp_path / "d.h5"
    _interrupted(files / "bone.h5", out)
    with h5py.File(partial_path(out) / "checkpoint.h5", "r+") as f:
        f["state"].attrs["step"] = -5
    one_line_failure(run("simulate", files / "bone.h5", out, *ARGS, "--resume"), "step -5")


def test_6_a_result_is_not_silently_restarted_from_its_initial_volume(files, tmp_path):
    one_line_failure(run("simulate", files / "run.h5", tmp_path / "n.h5", *ARGS), "--frame")
    r = run("simulate", files / "run.h5", tmp_path / "n.h5", *ARGS, "--frame", "-1")
    assert r.exit_code == 0, r.output
    with h5py.File(files / "run.h5") as a, h5py.File(tmp_path / "n.h5") as b:
        np.testing.assert_array_equal(b["volume/bone"][...], a["series/bone"][-1])


def test_6_years_too_many_is_refused_before_allocating(files, tmp_path):
    args = [a if a != "0.15" else "1e6" for a in ARGS]
    one_line_failure(run("simulate", files / "bone.h5", tmp_path / "o.h5", *args), "years")


# ---------------------------------------------------------------- #7 ----
def test_7_a_broken_middle_frame_is_rewritten_on_resume(files, tmp_path):
    out = tmp_path / "d.h5"
    _interrupted(files / "bone.h5", out, at_step=60)
    frame = partial_path(out) / "frame_00001.h5"
    assert frame.exists()
    frame.write_bytes(frame.read_bytes()[:200])  # truncated
    r = run("simulate", files / "bone.h5", out, *ARGS, "--resume")
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f, h5py.File(files / "run.h5") as g:
        np.testing.assert_array_equal(f["series/bone"][...], g["series/bone"][...])


# ---------------------------------------------------------------- #8 ----
def test_8_a_second_writer_is_refused_while_the_first_runs(files, tmp_path):
    out = tmp_path / "live.h5"
    code = textwrap.dedent(f"""
        import time
        from bonesim.ca.engine import simulate
        from bonesim.ca.params import RemodelingParams
        from bonesim.io.hdf5 import read_volume
        simulate(read_volume({str(files / "bone.h5")!r}), RemodelingParams(), years=0.3, spinup_years=0.0,
                 save_every=5, backend="numpy", out={str(out)!r}, progress=lambda i: time.sleep(0.05))
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        deadline = time.time() + 60
        while not (partial_path(out) / "checkpoint.h5").exists() and time.time() < deadline:
            time.sleep(0.1)
        for extra in (["--resume"], ["--overwrite"], []):
            r = run("simulate", files / "bone.h5", out, *ARGS, *extra)
            one_line_failure(r, "another bonesim process")
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0 and out.is_file()


# ---------------------------------------------------------------- #9 ----
def test_9_flipped_bytes_in_an_uncompressed_checkpoint_are_caught(files, tmp_path):
    out = tmp_path / "d.h5"
    code_out = out
    _interrupted_none(files / "bone.h5", code_out)
    ck = partial_path(out) / "checkpoint.h5"
    with h5py.File(ck) as f:
        off = f["state/timer"].id.get_chunk_info(0).byte_offset
    raw = bytearray(ck.read_bytes())
    for i in range(64):
        raw[off + 100 + i] ^= 0xFF
    ck.write_bytes(bytes(raw))
    r = run("simulate", files / "bone.h5", out, *ARGS, "--resume", "--compression", "none")
    one_line_failure(r, "checkpoint")


def _interrupted_none(src: Path, out: Path):
    code = textwrap.dedent(f"""
        import os, signal, sys
        from bonesim.ca.engine import simulate
        from bonesim.ca.params import RemodelingParams
        from bonesim.io.hdf5 import read_volume
        def prog(i):
            if i["step"] >= 40:
                os.kill(os.getpid(), signal.SIGINT)
        try:
            simulate(read_volume({str(src)!r}), RemodelingParams(), years=0.15, spinup_years=0.05, save_every=10,
                     backend="numpy", out={str(out)!r}, progress=prog, compression="none")
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 130


# ------------------------------------------------------- resume, done ----
def test_resume_of_a_complete_result_is_safe(files):
    before = _bytes(files / "run.h5")
    r = run("simulate", files / "bone.h5", files / "run.h5", *ARGS, "--resume")
    assert r.exit_code == 0 and "already complete" in r.output
    assert _bytes(files / "run.h5") == before


# ------------------------------------------------------- broken HDF5 ----
def _broken(tmp_path, how):
    p = tmp_path / f"{how}.h5"
    good = _bone(0, 8)
    write_volume(p, good, xdmf=False)
    with h5py.File(p, "r+") as f:
        if how == "group":
            del f["volume/bone"]
            f["volume"].create_group("bone")
        elif how == "scalar":
            del f["volume/bone"]
            f["volume"]["bone"] = np.uint8(3)
        elif how == "empty":
            del f["volume/bone"]
            f["volume"].create_dataset("bone", shape=(0, 8, 8), dtype=np.uint8)
        elif how == "meta_list":
            f["volume/bone"].attrs["metadata"] = json.dumps([1, 2])
        elif how == "huge_voxel":
            f.attrs["voxel_size_um"] = 1e300
        elif how == "negative_voxel":
            f.attrs["voxel_size_um"] = -5.0
        elif how == "int16":
            del f["volume/bone"]
            f["volume"]["bone"] = -np.ones((8, 8, 8), np.int16)
        elif how == "dangling":
            del f["volume/bone"]
            f["volume/bone"] = h5py.SoftLink("/nowhere")
        elif how == "external":
            del f["volume/bone"]
            f["volume/bone"] = h5py.ExternalLink("missing.h5", "/x")
    return p


@pytest.mark.parametrize(
    "how",
    [
        "group",
        "scalar",
        "empty",
        "meta_list",
        "huge_voxel",
        "negative_voxel",
        "int16",
        "dangling",
        "external",
    ],
)
@pytest.mark.parametrize("cmd", ["info", "simulate", "analyze"])
def test_broken_hdf5_objects_are_one_sentence(tmp_path, how, cmd):
    p = _broken(tmp_path, how)
    args = {"info": [p], "simulate": [p, tmp_path / "o.h5", *ARGS], "analyze": [p, "--no-write"]}[cmd]
    one_line_failure(run(cmd, *args))


def test_checkpoint_without_tables_is_one_sentence(files, tmp_path):
    out = tmp_path / "d.h5"
    _interrupted(files / "bone.h5", out)
    with h5py.File(partial_path(out) / "checkpoint.h5", "r+") as f:
        del f["tables"]
    one_line_failure(run("simulate", files / "bone.h5", out, *ARGS, "--resume"), "checkpoint")


# ---------------------------------------------------------- resources ----
def test_memory_preflight_says_what_is_needed(tmp_path):
    one_line_failure(run("phantom", tmp_path / "p.h5", "--shape", "30000"), "needs about", "available")
    one_line_failure(run("render", tmp_path / "x.h5", "-o", tmp_path / "x.png", "--size", "100000x100000"))


def test_disk_full_is_one_sentence(files, tmp_path, monkeypatch):
    import errno

    import bonesim.io.result as result

    real = result.RunFolder.write_frame

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(result.RunFolder, "write_frame", full)
    out = tmp_path / "o.h5"
    one_line_failure(run("simulate", files / "bone.h5", out, *ARGS), "disk full")
    monkeypatch.setattr(result.RunFolder, "write_frame", real)


def test_internal_errors_say_bug(monkeypatch, files):
    import bonesim.io.hdf5 as hdf5

    def boom(*a, **k):
        raise ValueError("operands could not be broadcast")

    monkeypatch.setattr(hdf5, "describe", boom)
    r = run("info", files / "bone.h5")
    assert r.exit_code == 2 and "bug" in r.output and "Traceback" not in r.output


def test_6_extending_years_after_the_final_off_grid_frame_is_refused(files, tmp_path, monkeypatch):
    import bonesim.io.result as result

    def killed(self, *a, **k):  # the run dies between its last frame and the assembly
        raise RuntimeError("node lost")

    monkeypatch.setattr(result.RunFolder, "assemble", killed)
    out = tmp_path / "d.h5"
    r = run("simulate", files / "bone.h5", out, *ARGS)
    assert r.exit_code == 2 and partial_path(out).is_dir()
    monkeypatch.undo()
    longer = [a if a != "0.15" else "0.2" for a in ARGS]
    one_line_failure(run("simulate", files / "bone.h5", out, *longer, "--resume"), "final frame")
    r = run("simulate", files / "bone.h5", out, *ARGS, "--resume")
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f, h5py.File(files / "run.h5") as g:
        np.testing.assert_array_equal(f["series/day"][...], g["series/day"][...])


def test_a_file_open_for_writing_elsewhere_is_named_so(files, tmp_path):
    p = tmp_path / "locked.h5"
    write_volume(p, _bone(0, 8), xdmf=False)
    code = f"import h5py, time\nf = h5py.File({str(p)!r}, 'r+')\nprint('open', flush=True)\ntime.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        r = run("info", p)
        if r.exit_code == 0:
            pytest.skip("this HDF5 build does not lock files (HDF5_USE_FILE_LOCKING=FALSE?)")
        one_line_failure(r, "another process")
    finally:
        proc.kill()
        proc.wait()


def test_xdmf_sidecar_never_replaces_a_foreign_file(tmp_path):
    (tmp_path / "bone.xdmf").write_text("my notes\n")
    assert run("phantom", tmp_path / "bone.h5", "--shape", "8").exit_code == 0
    assert (tmp_path / "bone.xdmf").read_text() == "my notes\n"
    assert run("phantom", tmp_path / "b2.h5", "--shape", "8").exit_code == 0
    first = (tmp_path / "b2.xdmf").read_text()
    assert run("phantom", tmp_path / "b2.h5", "--shape", "8", "--overwrite").exit_code == 0
    assert (tmp_path / "b2.xdmf").read_text() == first  # its own sidecar is refreshed


def test_state_validation_reads_direction_codes_only_where_they_are_codes():
    """Bits 3-7 of the phase byte are a direction in resorption, a step counter in reversal."""
    from bonesim.errors import BonesimError
    from bonesim.io.result import validate_state

    shape = (2, 2, 2)
    st = {
        "bone": np.zeros(shape, np.uint8),
        "phase": np.zeros(shape, np.uint8),
        "timer": np.zeros(shape, np.uint16),
        "resorbed_day": np.full(shape, -1, np.int32),
        "formed_day": np.full(shape, -1, np.int32),
    }
    st["phase"][0, 0, 0] = (31 << 3) | 2  # reversal, counter 31: legal
    validate_state(st, shape, "here")
    st["phase"][1, 1, 1] = (27 << 3) | 1  # resorbing with direction 27: corrupt
    with pytest.raises(BonesimError, match="direction"):
        validate_state(st, shape, "here")


def test_resume_onto_a_plain_file_named_like_the_run_folder(files, tmp_path):
    out = tmp_path / "p.h5"
    partial_path(out).write_text("not a folder")
    one_line_failure(run("simulate", files / "bone.h5", out, *ARGS, "--resume"), "not a run folder")
