"""The XDMF sidecar declares 8-bit data so VTK loads it as 8-bit (issue 17)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from bonesim.io.xdmf import write_xdmf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from _results import write_result


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    p = write_result(tmp_path_factory.mktemp("xdmf") / "run.h5", shape=(6, 8, 8), frames=2)
    return p, write_xdmf(p)


def test_uint8_is_declared_uchar_precision_1(sidecar):
    h5, xdmf = sidecar
    text = xdmf.read_text()
    assert (
        '<DataItem Dimensions="6 8 8" NumberType="UChar" Precision="1" Format="HDF">run.h5:/volume/bone<'
        in text
    )
    assert 'NumberType="UInt" Precision="1"' not in text
    kinds = {}
    for m in re.finditer(r'NumberType="(\w+)" Precision="(\d)" Format="HDF">run\.h5:(\S+?)</DataItem>', text):
        kinds.setdefault(m.group(3).split("[")[0], set()).add((m.group(1), m.group(2)))
    with h5py.File(h5) as f:
        assert f["volume/bone"].dtype == np.uint8
        assert f["maps/resorbed_day"].dtype == np.int32
    assert kinds["/volume/bone"] == {("UChar", "1")}
    assert kinds["/maps/resorbed_day"] == {("Int", "4")}


def test_vtk_reads_the_bone_as_unsigned_char(sidecar):
    vtk = pytest.importorskip("vtk")
    if not hasattr(vtk, "vtkXdmfReader"):
        pytest.skip("this VTK has no vtkXdmfReader")
    _, xdmf = sidecar
    r = vtk.vtkXdmfReader()
    r.SetFileName(str(xdmf))
    r.Update()
    types = {}

    def walk(o):
        if hasattr(o, "GetNumberOfBlocks"):
            for i in range(o.GetNumberOfBlocks()):
                walk(o.GetBlock(i))
            return
        cd = o.GetCellData()
        for i in range(cd.GetNumberOfArrays()):
            a = cd.GetArray(i)
            types.setdefault(a.GetName(), set()).add(a.GetDataTypeAsString())

    walk(r.GetOutputDataObject(0))
    assert types["bone"] == {"unsigned char"}
    assert types["resorbed_day"] == {"int"}
