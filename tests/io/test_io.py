"""HDF5 schema 1: round trips, compression, atomic writes, refusals, XDMF sidecar."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

from bonesim.errors import BonesimError, SchemaError
from bonesim.io.hdf5 import (
    SCHEMA_VERSION,
    atomic_output,
    describe,
    open_bonesim,
    read_table,
    read_volume,
    write_table,
    write_volume,
)
from bonesim.io.xdmf import write_xdmf
from bonesim.volume import Volume


@pytest.fixture
def vol():
    rng = np.random.default_rng(1)
    return Volume(rng.integers(0, 256, (10, 12, 14), dtype=np.uint8), 19.5, {"source": "test", "n": 3})


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip(tmp_path, vol, compression):
    p = tmp_path / "v.h5"
    grey = np.linspace(0, 1, vol.data.size, dtype=np.float32).reshape(vol.shape)
    write_volume(p, vol, compression=compression, grey=grey)
    back = read_volume(p)
    assert back.data.dtype == np.uint8
    np.testing.assert_array_equal(back.data, vol.data)
    assert back.voxel_size_um == 19.5
    assert back.metadata == {"source": "test", "n": 3}
    with h5py.File(p, "r") as f:  # h5py alone reads it
        assert f.attrs["bonesim_schema"] == SCHEMA_VERSION
        assert f.attrs["axis_order"] == "zyx"
        np.testing.assert_array_equal(f["volume/grey"][...], grey)
        ds = f["volume/bone"]
        assert ds.chunks is not None
        if compression == "gzip":
            assert ds.compression == "gzip"
        if compression == "zstd":
            assert "32015" in ds._filters  # the registered zstd filter id
        if compression == "none":
            assert ds.compression is None and not ds._filters


def test_refuses_overwrite_and_keeps_file(tmp_path, vol):
    p = tmp_path / "v.h5"
    write_volume(p, vol)
    before = p.read_bytes()
    with pytest.raises(BonesimError, match="exists"):
        write_volume(p, vol.with_data(np.zeros(vol.shape, np.uint8)))
    assert p.read_bytes() == before
    write_volume(p, vol.with_data(np.zeros(vol.shape, np.uint8)), overwrite=True)
    assert read_volume(p).bv_tv == 0


def test_atomic_write_failure_leaves_nothing(tmp_path):
    p = tmp_path / "out.h5"
    with pytest.raises(RuntimeError), atomic_output(p) as tmp:
        with h5py.File(tmp, "w") as f:
            f["x"] = np.arange(3)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_keeps_old_file(tmp_path, vol):
    p = tmp_path / "v.h5"
    write_volume(p, vol, xdmf=False)
    before = p.read_bytes()
    with pytest.raises(RuntimeError), atomic_output(p, overwrite=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["v.h5"]


def test_refuses_grey_volume(tmp_path):
    with pytest.raises(BonesimError, match="segment it first"):
        write_volume(tmp_path / "g.h5", Volume(np.zeros((2, 2, 2), np.float32), 1))
    assert list(tmp_path.iterdir()) == []


def test_refusals_on_read(tmp_path, vol):
    with pytest.raises(BonesimError, match="not found"):
        read_volume(tmp_path / "missing.h5")
    with pytest.raises(BonesimError, match="directory"):
        read_volume(tmp_path)
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(BonesimError, match="not an HDF5"):
        read_volume(tmp_path / "text.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(SchemaError, match="not a bonesim file"):
        read_volume(tmp_path / "foreign.h5")
    write_volume(tmp_path / "new.h5", vol)
    with h5py.File(tmp_path / "new.h5", "a") as f:
        f.attrs["bonesim_schema"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaError, match="newer"):
        read_volume(tmp_path / "new.h5")


def test_truncated_file(tmp_path, vol):
    p = tmp_path / "v.h5"
    write_volume(p, vol, compression="none")
    raw = p.read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BonesimError, match="truncated or corrupt"):
        read_volume(tmp_path / "cut.h5")


def test_input_opened_read_only(tmp_path, vol):
    p = tmp_path / "v.h5"
    write_volume(p, vol)
    with open_bonesim(p) as f:
        assert f.mode == "r"


def test_tables_and_describe(tmp_path, vol):
    p = tmp_path / "r.h5"
    write_volume(p, vol)
    with h5py.File(p, "a") as f:
        t = f.create_group("tables")
        write_table(t, "metrics", {"day": np.arange(3.0), "bv_tv": np.array([0.2, 0.19, 0.18])})
        f.create_dataset("series/bone", data=np.stack([vol.data] * 3))
        f["series/day"] = np.array([0.0, 30.0, 60.0])
        s = f.create_group("state")
        s["bone"] = vol.data
        s.attrs["step"] = 60
    with h5py.File(p, "r") as f:
        cols = read_table(f["tables/metrics"])
    assert list(cols) == ["day", "bv_tv"]
    d = describe(p)
    assert d["shape"] == vol.shape
    assert d["bv_tv"] == pytest.approx(vol.bv_tv)
    assert d["frames"] == 3 and d["days"] == [0.0, 60.0]
    assert d["tables"]["metrics"] == {"columns": ["day", "bv_tv"], "rows": 3}
    assert d["state"] == ["bone"] and d["state_attrs"]["step"] == 60
    assert read_volume(p, frame=-1).metadata == {"frame": 2, "day": 60.0}
    with pytest.raises(BonesimError, match="out of range"):
        read_volume(p, frame=3)
    with h5py.File(p, "a") as f:
        with pytest.raises(ValueError, match="differ in length"):
            write_table(f["tables"], "bad", {"a": [1, 2], "b": [1]})


def test_metadata_is_json(tmp_path, vol):
    p = tmp_path / "v.h5"
    write_volume(p, vol)
    with h5py.File(p, "r") as f:
        assert json.loads(f["volume/bone"].attrs["metadata"]) == {"source": "test", "n": 3}


def test_xdmf_sidecar(tmp_path, vol):
    p = tmp_path / "r.h5"
    write_volume(p, vol)
    with h5py.File(p, "a") as f:
        f.create_dataset("series/bone", data=np.stack([vol.data] * 2))
        f["series/day"] = np.array([0.0, 30.0])
    x = write_xdmf(p)
    assert x == tmp_path / "r.xdmf"
    root = ET.parse(x).getroot()
    refs = [el.text.strip() for el in root.iter("DataItem") if el.get("Format") == "HDF"]
    assert "r.h5:/volume/bone" in refs and "r.h5:/series/bone" in refs
    with h5py.File(p, "r") as f:
        for ref in refs:
            assert ref.split(":", 1)[1] in f
    times = [float(t.get("Value")) for t in root.iter("Time")]
    assert times == [0.0, 30.0]
    topo = next(root.iter("Topology"))
    assert topo.get("Dimensions") == "11 13 15"  # cell data: points = voxels + 1
    spacing = next(root.iter("Geometry")).findall("DataItem")[1].text.split()
    assert [float(s) for s in spacing] == [0.0195] * 3


def test_zstd_reads_back_in_a_fresh_process(tmp_path, vol):
    import subprocess
    import sys

    p = tmp_path / "z.h5"
    write_volume(p, vol, compression="zstd")
    code = f"from bonesim.io.hdf5 import read_volume; print(int(read_volume({str(p)!r}).data.sum()))"
    import os
    from pathlib import Path

    import bonesim

    env = {**os.environ, "PYTHONPATH": str(Path(bonesim.__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert int(out.stdout) == int(vol.data.sum(dtype=np.int64))


def test_output_gets_umask_permissions(tmp_path, vol):
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_volume(tmp_path / "v.h5", vol)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "v.h5").stat().st_mode) == 0o644  # not mkstemp's private 0600
