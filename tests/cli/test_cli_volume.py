"""`bonesim info | phantom | import`: the done-when checks and every bad input of issue 2."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.io.hdf5 import read_volume, write_volume
from bonesim.volume import Volume

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "lhdl_3155_D_4_bc" / "slices"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def assert_clean_failure(result, *words: str):
    """One sentence on stderr, exit != 0, no traceback."""
    assert result.exit_code != 0, result.output
    out = result.output.strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    for w in words:
        assert w.lower() in out.lower(), out


# ----------------------------------------------------------- help text ----
@pytest.mark.parametrize("cmd", ["info", "phantom", "import"])
def test_help_has_examples(cmd):
    r = run(cmd, "--help")
    assert r.exit_code == 0 and "Examples:" in r.output and f"bonesim {cmd}" in r.output


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and "bonesim" in r.output


# -------------------------------------------------------- phantom/info ----
def test_phantom_128_then_info_shows_bvtv(tmp_path):
    """The issue's done-when: phantom --shape 128 --bvtv 0.2 then info shows BV/TV 0.20 +- 0.01."""
    out = tmp_path / "out.h5"
    r = run("phantom", out, "--shape", "128", "--bvtv", "0.2", "--voxel-size", "20")
    assert r.exit_code == 0, r.output
    r = run("info", out)
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "BV/TV" in ln)
    assert abs(float(line.split()[-1]) - 0.20) <= 0.01
    assert "128 x 128 x 128" in r.output and "20 um" in r.output
    assert (tmp_path / "out.xdmf").is_file()


@pytest.mark.parametrize("kind", ["trabecular", "plate", "rod", "sphere", "gyroid", "lattice"])
def test_phantom_kinds(tmp_path, kind):
    out = tmp_path / f"{kind}.h5"
    r = run("phantom", out, "--kind", kind, "--shape", "40", "--voxel-size", "40", "--bvtv", "0.25")
    assert r.exit_code == 0, r.output
    v = read_volume(out)
    assert v.shape == (40, 40, 40) and v.voxel_size_um == 40 and v.metadata["phantom"] == kind
    if kind == "trabecular":
        assert v.bv_tv == pytest.approx(0.25, abs=0.01)
    if kind == "plate":  # 200 um = 5 voxels
        assert v.bv_tv == pytest.approx(5 / 40)


def test_info_lists_series_tables_state(tmp_path):
    p = tmp_path / "r.h5"
    vol = Volume(np.full((8, 8, 8), 255, np.uint8), 20)
    write_volume(p, vol)
    with h5py.File(p, "a") as f:
        f["series/bone"] = np.stack([vol.data, vol.data // 2])
        f["series/day"] = np.array([0.0, 365.0])
        f["tables/metrics/day"] = np.array([0.0, 365.0])
        f["tables/metrics/bv_tv"] = np.array([1.0, 0.5])
        f["state/bone"] = vol.data
        f["state"].attrs["day"] = 365
        f["maps/resorbed_day"] = np.full((8, 8, 8), -1, np.int32)
    r = run("info", p)
    assert r.exit_code == 0, r.output
    for text in (
        "2 frames",
        "365",
        "metrics: 2 rows",
        "bv_tv",
        "state",
        "resorbed_day",
        "BV/TV       input 1.0000, day 0 (after spin-up) 1.0000, end 0.4980",  # the three baselines, named
    ):
        assert text in r.output, r.output
    r = run("info", p, "--json")
    assert '"frames": 2' in r.output and '"bv_tv_day0": 1.0' in r.output


# --------------------------------------------------------------- import ----
@pytest.mark.skipif(not SAMPLE.is_dir(), reason="real sample not present")
def test_import_real_sample_h5py_reads_it(tmp_path):
    out = tmp_path / "lhdl.h5"
    r = run("import", SAMPLE, out, "--voxel-size", "19.5", "--sigma", "1", "--threshold", "63")
    assert r.exit_code == 0, r.output
    assert "BV/TV 0.23" in r.output
    with h5py.File(out, "r") as f:  # plain h5py, no bonesim
        assert f.attrs["bonesim_schema"] == 1
        assert float(f.attrs["voxel_size_um"]) == 19.5
        bone = f["volume/bone"][...]
    assert bone.shape == (200, 200, 200) and bone.dtype == np.uint8
    assert bone.mean() / 255 == pytest.approx(0.234, abs=0.001)


def test_import_npy_options(tmp_path):
    g = np.zeros((20, 20, 20), np.float32)
    g[5:15, 5:15, 5:15] = 100
    np.save(tmp_path / "g.npy", g)
    out = tmp_path / "b.h5"
    r = run(
        "import", tmp_path / "g.npy", out, "--voxel-size", "10", "--threshold", "50",
        "--crop", "0:16,0:16,0:16", "--downsample", "2", "--keep-grey", "--compression", "zstd",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    v = read_volume(out)
    assert v.shape == (8, 8, 8) and v.voxel_size_um == 20
    # bone at 5..14: blocks 3..6 are full (100); blocks 2 and 7 are half (50, not > 50)
    assert v.bv_tv == pytest.approx(64 / 512)
    assert v.metadata["segmentation"]["threshold"] == 50
    with h5py.File(out, "r") as f:
        assert f["volume/grey"].shape == (8, 8, 8)


# ------------------------------------------------------------ bad input ----
@pytest.fixture
def files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    g = np.zeros((8, 8, 8), np.float32)
    g[2:6, 2:6, 2:6] = 100
    np.save(d / "grey.npy", g)
    np.save(d / "flat.npy", np.zeros((8, 8)))
    np.save(d / "four.npy", np.zeros((2, 8, 8, 8)))
    nan = g.copy()
    nan[0, 0, 0] = np.nan
    np.save(d / "nan.npy", nan)
    inf = g.copy()
    inf[0, 0, 0] = np.inf
    np.save(d / "inf.npy", inf)
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = np.arange(4)
    write_volume(d / "good.h5", Volume(np.full((8, 8, 8), 255, np.uint8), 10), compression="none")
    raw = (d / "good.h5").read_bytes()
    (d / "truncated.h5").write_bytes(raw[: len(raw) // 3])
    (d / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "exists.h5").write_bytes(b"keep me")
    return d, out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["info", "{in}/missing.h5"], ["not found"]),
        (["info", "{in}"], ["directory"]),
        (["info", "{in}/foreign.h5"], ["not a bonesim file"]),
        (["info", "{in}/truncated.h5"], ["truncated or corrupt"]),
        (["info", "{in}/garbage.h5"], ["truncated or corrupt"]),
        (["info", "{in}/grey.npy"], ["not an HDF5"]),
        (["import", "{in}/missing.npy", "{out}/a.h5", "--voxel-size", "10"], ["not found"]),
        (["import", "{in}/flat.npy", "{out}/a.h5", "--voxel-size", "10"], ["2-D"]),
        (["import", "{in}/four.npy", "{out}/a.h5", "--voxel-size", "10"], ["4-D"]),
        (["import", "{in}/nan.npy", "{out}/a.h5", "--voxel-size", "10"], ["NaN or infinite"]),
        (["import", "{in}/inf.npy", "{out}/a.h5", "--voxel-size", "10"], ["NaN or infinite"]),
        (["import", "{in}/grey.npy", "{out}/a.h5"], ["voxel size"]),
        (["import", "{in}/grey.npy", "{out}/a.h5", "--voxel-size", "0"], ["voxel_size_um", "> 0"]),
        (["import", "{in}/grey.npy", "{out}/a.h5", "--voxel-size", "-5"], ["voxel_size_um", "> 0"]),
        (["import", "{in}/grey.npy", "{out}/exists.h5", "--voxel-size", "10"], ["exists", "--overwrite"]),
        (["import", "{in}/grey.npy", "{out}", "--voxel-size", "10"], ["directory"]),
        (["import", "{in}/grey.npy", "{out}/nofolder/a.h5", "--voxel-size", "10"], ["does not exist"]),
        (["import", "{in}/grey.npy", "{out}/a.h5", "--voxel-size", "10", "--threshold", "150"], ["outside"]),
        (["import", "{in}/grey.npy", "{out}/a.h5", "--voxel-size", "10", "--threshold", "-1"], ["outside"]),
        (["import", "{in}/grey.npy", "{out}/a.h5", "--voxel-size", "10", "--crop", "9:2,:,:"], ["crop"]),
        (["import", "{in}/foreign.h5", "{out}/a.h5", "--voxel-size", "10"], ["format"]),
        (["import", "{in}", "{out}/a.h5", "--voxel-size", "10", "--format", "npy"], ["is a directory"]),
        (["import", "{in}/grey.npy", "{out}/a.h5", "--voxel-size", "10", "--threshold", "abc"], ["otsu"]),
        (["phantom", "{out}/exists.h5"], ["exists"]),
        (["phantom", "{out}/a.h5", "--shape", "2,3"], ["--shape"]),
        (["phantom", "{out}/a.h5", "--voxel-size", "-1"], ["voxel-size", "> 0"]),
        (["phantom", "{out}/a.h5", "--bvtv", "0.95", "--shape", "32"], ["bvtv"]),
        (["phantom", "{out}/nofolder/a.h5", "--shape", "32"], ["does not exist"]),
    ],
)
def test_bad_input_one_sentence_no_file_touched(files, args, words):
    d, out = files
    before_in, before_out = snapshot(d), snapshot(out)
    argv = [a.format(**{"in": d, "out": out}) for a in args]
    assert_clean_failure(run(*argv), *words)
    assert snapshot(d) == before_in
    assert snapshot(out) == before_out
    assert (out / "exists.h5").read_bytes() == b"keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_output_folder(files):
    d, out = files
    locked = out / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = run("import", d / "grey.npy", locked / "a.h5", "--voxel-size", "10")
        assert_clean_failure(r, "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_folder_check(tmp_path, monkeypatch):
    """Same refusal when running as root (where chmod cannot lock a folder): os.access says no."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == tmp_path else real(p, m))
    np.save(tmp_path / "g.npy", np.arange(27.0).reshape(3, 3, 3))
    before = snapshot(tmp_path)
    r = run("import", tmp_path / "g.npy", tmp_path / "a.h5", "--voxel-size", "10", "--threshold", "5")
    assert_clean_failure(r, "not writable")
    assert snapshot(tmp_path) == before
