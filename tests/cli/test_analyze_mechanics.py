"""``bonesim analyze --mechanics``: the e_app_z_mpa column equals a direct z solve; off by default."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.io.hdf5 import write_root_attrs, write_table, write_volume
from bonesim.mechanics import solve
from bonesim.morphometry.analyze import analyze
from bonesim.volume import Volume
from tests.mechanics.test_mech_cli import lattice

H = 20.0


@pytest.fixture(autouse=True)
def only_bv_tv(monkeypatch):
    """The full morphometry costs seconds (compiling its kernels); these tests are about the solve."""
    from bonesim.morphometry import indices

    real = indices.morphometry
    monkeypatch.setattr(indices, "morphometry", lambda vol, **kw: real(vol, indices=["bv_tv"], **kw))


def _frames() -> list[np.ndarray]:
    a = lattice(12)
    b = a.copy()
    b[:, 6:8, 6:8] = 0  # one z rod less: softer along z
    c = np.zeros_like(a)
    c[4:8] = 255  # a horizontal plate: no load path along z
    return [a, b, c]


def _result(path, frames):
    with h5py.File(path, "w") as f:
        write_root_attrs(f, H)
        f.create_dataset("volume/bone", data=frames[0])
        f.create_dataset("series/bone", data=np.stack(frames))
        f.create_dataset("series/day", data=np.arange(len(frames), dtype=float) * 30)
        n = len(frames)
        write_table(f.require_group("tables"), "metrics", {"day": np.arange(n) * 30.0, "bv_tv": np.zeros(n)})
    return path


def test_column_equals_a_direct_solve_per_frame(tmp_path):
    frames = _frames()
    p = _result(tmp_path / "run.h5", frames)
    with pytest.warns(UserWarning, match="frame 2: the bone does not connect z = 0"):
        table = analyze(p, mechanics=True, csv=tmp_path / "m.csv")
    want = [solve(Volume(fr, H), "z", backend="numpy").apparent_modulus_mpa for fr in frames[:2]]
    np.testing.assert_allclose(table["e_app_z_mpa"][:2], want, rtol=1e-9)
    assert table["e_app_z_mpa"][2] == 0.0  # nothing carries a z load
    assert want[1] < want[0]
    with h5py.File(p, "r") as f:
        np.testing.assert_allclose(f["tables/metrics/e_app_z_mpa"][...], table["e_app_z_mpa"], rtol=0)
    header = (tmp_path / "m.csv").read_text().splitlines()[0].split(",")
    assert "e_app_z_mpa" in header


def test_not_by_default_and_cli_flag(tmp_path):
    p = tmp_path / "bone.h5"
    write_volume(p, Volume(lattice(12), H), xdmf=False)
    table = analyze(p, write=False)
    assert "e_app_z_mpa" not in table
    r = CliRunner().invoke(main, ["analyze", str(p)])
    assert r.exit_code == 0, r.output
    assert "E_app" not in r.output
    with h5py.File(p, "r") as f:
        assert "e_app_z_mpa" not in f["tables/morphometry"]
    r = CliRunner().invoke(main, ["analyze", str(p), "--mechanics"])
    assert r.exit_code == 0, r.output
    want = solve(Volume(lattice(12), H), "z", backend="numpy").apparent_modulus_mpa
    assert f"E_app,z {want:.1f} MPa" in r.output
    with h5py.File(p, "r") as f:
        assert f["tables/morphometry/e_app_z_mpa"][0] == pytest.approx(want, rel=1e-9)


def test_help_has_mechanics_example():
    r = CliRunner().invoke(main, ["analyze", "--help"])
    assert r.exit_code == 0 and "bonesim analyze run.h5 --mechanics" in r.output
