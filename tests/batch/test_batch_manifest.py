"""Manifest loading, expansion into runs and up-front validation."""

from __future__ import annotations

import pytest
from _batch_helpers import write_study

from bonesim.batch import load_manifest
from bonesim.errors import BonesimError
from bonesim.io.hdf5 import write_volume
from bonesim.phantom import plate
from bonesim.volume import Volume


def test_expansion_ids_and_order(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=3))
    assert len(study.runs) == 2 * 2 * 3
    ids = [r.run_id for r in study.runs]
    assert ids[:4] == ["slab__healthy__s0", "slab__healthy__s1", "slab__healthy__s2", "slab__ovx__s0"]
    assert ids[-1] == "gyroid16__ovx__s2"  # default name: phantom kind + edge
    assert [r.index for r in study.runs] == list(range(12))
    assert study.output == (tmp_path / "out").resolve()
    assert study.runs[0].out == study.output / "runs" / "slab__healthy__s0.h5"
    assert study.runs[0].spinup_years == 0.1 and study.runs[0].backend == "numpy"
    assert study.run("gyroid16__ovx__s2").index == 11
    # stable: loading again gives the same ids in the same order
    assert [r.run_id for r in load_manifest(tmp_path / "study.toml").runs] == ids


def test_phantom_input_builds_volume(tmp_path):
    study = load_manifest(write_study(tmp_path))
    vol = study.runs[0].input.load()
    assert vol.shape == (16, 16, 16) and vol.voxel_size_um == 20.0
    assert vol.bv_tv == pytest.approx(0.5)


def test_file_and_glob_inputs(tmp_path):
    (tmp_path / "vols").mkdir()
    for name in ("a", "b"):
        write_volume(tmp_path / "vols" / f"{name}.h5", Volume(plate((8, 8, 8), 4), 20), xdmf=False)
    (tmp_path / "s.toml").write_text("")
    (tmp_path / "m.toml").write_text(
        'years = 1\nscenarios = ["s.toml"]\nseeds = [5, 7]\n'
        '[[inputs]]\nfile = "vols/a.h5"\nname = "first"\n[[inputs]]\nglob = "vols/b*.h5"\n'
    )
    study = load_manifest(tmp_path / "m.toml")
    assert [r.run_id for r in study.runs] == ["first__s__s5", "first__s__s7", "b__s__s5", "b__s__s7"]
    assert study.inputs[1].file == (tmp_path / "vols" / "b.h5").resolve()


def _errors(tmp_path, text):
    (tmp_path / "m.toml").write_text(text)
    with pytest.raises(BonesimError) as exc:
        load_manifest(tmp_path / "m.toml")
    return str(exc.value)


PHANTOM = '[[inputs]]\nphantom = "plate"\nshape = 8\nvoxel_size_um = 20\nthickness = 4\n'


def test_missing_manifest(tmp_path):
    with pytest.raises(BonesimError, match="manifest not found"):
        load_manifest(tmp_path / "nope.toml")


def test_not_toml(tmp_path):
    assert "not valid TOML" in _errors(tmp_path, "years = [1,\n")


def test_missing_input_and_scenario_file(tmp_path):
    msg = _errors(tmp_path, 'years = 1\nscenarios = ["gone.toml"]\n[[inputs]]\nfile = "missing.h5"\n')
    assert "scenario file not found: gone.toml" in msg
    assert "input file not found" in msg and "missing.h5" in msg


def test_non_bonesim_input(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    (tmp_path / "s.toml").write_text("")
    msg = _errors(tmp_path, 'years = 1\nscenarios = ["s.toml"]\n[[inputs]]\nfile = "x.h5"\n')
    assert "is not an HDF5 file" in msg and "bonesim import" in msg


def test_unknown_keys_and_bad_values(tmp_path):
    (tmp_path / "s.toml").write_text("")
    msg = _errors(
        tmp_path,
        'yeers = 1\nsave_every = 0\nbackend = "gpu"\nseeds = [1, 1]\n'
        'scenarios = ["s.toml"]\n[slurm]\npartion = "gpu"\n' + PHANTOM,
    )
    assert "unknown key 'yeers' in manifest (did you mean 'years'?)" in msg
    assert "`years` is required" in msg
    assert "`save_every` must be >= 1, got 0" in msg
    assert "`backend` must be one of 'auto', 'cupy', 'numpy', got 'gpu'" in msg
    assert "`seeds` lists [1] more than once" in msg
    assert "unknown key 'partion' in [slurm] (did you mean 'partition'?)" in msg


def test_bad_phantom(tmp_path):
    (tmp_path / "s.toml").write_text("")
    msg = _errors(
        tmp_path,
        'years = 1\nscenarios = ["s.toml"]\n'
        '[[inputs]]\nphantom = "blob"\nshape = 8\nvoxel_size_um = 20\n'
        '[[inputs]]\nphantom = "plate"\nshape = 8\nvoxel_size_um = -1\nthickness = 4\n'
        '[[inputs]]\nphantom = "plate"\nshape = 8\nvoxel_size_um = 20\nthikness = 4\n',
    )
    assert "inputs[0]: unknown phantom 'blob'; choose one of" in msg and "gyroid" in msg
    assert "inputs[1]: `voxel_size_um` must be a number > 0, got -1" in msg
    assert "unknown key 'thikness' in inputs[2] (phantom 'plate') (did you mean 'thickness'?)" in msg


def test_duplicate_ids(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "s.toml").write_text("")
    (tmp_path / "sub" / "s.toml").write_text("")
    msg = _errors(tmp_path, 'years = 1\nscenarios = ["s.toml", "sub/s.toml"]\n' + PHANTOM + PHANTOM)
    assert "scenarios ['s'] are listed more than once" in msg
    assert "input names ['plate8'] are used more than once" in msg


def test_unknown_scenario_name(tmp_path, monkeypatch):
    import bonesim.batch.manifest as m

    monkeypatch.setattr(m, "available_scenarios", lambda: ["healthy_adult", "postmenopausal"])
    msg = _errors(tmp_path, 'years = 1\nscenarios = ["postmenopause"]\n' + PHANTOM)
    assert "unknown scenario 'postmenopause' (did you mean 'postmenopausal'?)" in msg


def test_run_index_out_of_range(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=1))
    with pytest.raises(BonesimError, match=r"run index 9 out of range: study 't' has 4 runs \(0..3\)"):
        study.run(9)


def test_chunks_option(tmp_path):
    study = load_manifest(write_study(tmp_path, seeds=1, extra="chunks = 64\nsteps_per_exchange = 8\n"))
    assert study.runs[0].chunks == (64, 64, 64) and study.runs[0].steps_per_exchange == 8
    assert load_manifest(write_study(tmp_path, seeds=1)).runs[0].chunks is None
    msg = _errors(tmp_path, 'years = 1\nchunks = [0, 4]\nscenarios = ["s.toml"]\n' + PHANTOM)
    assert "`chunks` must be a positive integer or [z, y, x], got [0, 4]" in msg
