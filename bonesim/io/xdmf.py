"""XDMF sidecars so ParaView (and VisIt) open bonesim HDF5 files directly.

The sidecar ``FILE.xdmf`` sits beside ``FILE.h5`` and describes the initial
volume and, for results, every saved frame as a temporal collection of cell
data on a uniform grid with the physical voxel size (mm).

8-bit data is declared ``NumberType="UChar" Precision="1"`` (``Char`` for
int8): VTK's XDMF reader reads ``UInt``/``Precision="1"`` as 32-bit. meshio
cannot read the sidecar (it reads unstructured meshes, not a ``3DCoRectMesh``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py

log = logging.getLogger(__name__)

_NUMBER = {"u": "UInt", "i": "Int", "f": "Float"}
_NUMBER8 = {"u": "UChar", "i": "Char"}


def _item(h5name: str, ds: h5py.Dataset, indent: str) -> str:
    dims = " ".join(str(n) for n in ds.shape)
    kind = (
        _NUMBER8[ds.dtype.kind]
        if ds.dtype.itemsize == 1 and ds.dtype.kind in _NUMBER8
        else _NUMBER[ds.dtype.kind]
    )
    return (
        f'{indent}<DataItem Dimensions="{dims}" NumberType="{kind}" '
        f'Precision="{ds.dtype.itemsize}" Format="HDF">{h5name}:{ds.name}</DataItem>\n'
    )


def _grid(name: str, shape: tuple[int, ...], spacing_mm: float, body: str, time: float | None) -> str:
    z, y, x = shape
    t = f'      <Time Value="{time}"/>\n' if time is not None else ""
    return (
        f'    <Grid Name="{name}" GridType="Uniform">\n{t}'
        f'      <Topology TopologyType="3DCoRectMesh" Dimensions="{z + 1} {y + 1} {x + 1}"/>\n'
        '      <Geometry GeometryType="ORIGIN_DXDYDZ">\n'
        '        <DataItem Dimensions="3" NumberType="Float" Format="XML">0 0 0</DataItem>\n'
        f'        <DataItem Dimensions="3" NumberType="Float" Format="XML">'
        f"{spacing_mm} {spacing_mm} {spacing_mm}</DataItem>\n"
        "      </Geometry>\n"
        f"{body}"
        "    </Grid>\n"
    )


def write_xdmf(h5path: str | os.PathLike) -> Path:
    """Write ``<h5path minus suffix>.xdmf`` describing the file's volumes and frames."""
    h5path = Path(h5path)
    out = h5path.with_suffix(".xdmf")
    ref = h5path.name
    with h5py.File(h5path, "r") as f:
        spacing = float(f.attrs["voxel_size_um"]) / 1000.0
        grids = []
        if "volume/bone" in f:
            ds = f["volume/bone"]
            body = '      <Attribute Name="bone" AttributeType="Scalar" Center="Cell">\n'
            body += _item(ref, ds, "        ") + "      </Attribute>\n"
            for extra in ("maps/resorbed_day", "maps/formed_day"):
                if extra in f:
                    body += (
                        f'      <Attribute Name="{extra.split("/")[1]}" AttributeType="Scalar" Center="Cell">\n'
                        + _item(ref, f[extra], "        ")
                        + "      </Attribute>\n"
                    )
            for name in ("sed", "von_mises"):  # maps of `bonesim mechanics --save-sed`
                g = f.get(f"maps/{name}")
                if not isinstance(g, h5py.Group):
                    continue
                for ax in ("z", "y", "x"):
                    if isinstance(g.get(ax), h5py.Dataset) and g[ax].shape == ds.shape:
                        body += (
                            f'      <Attribute Name="{name}_{ax}" AttributeType="Scalar" Center="Cell">\n'
                            + _item(ref, g[ax], "        ")
                            + "      </Attribute>\n"
                        )
            grids.append(_grid("volume", ds.shape, spacing, body, None))
        if "series/bone" in f:
            s = f["series/bone"]
            days = f["series/day"][...] if "series/day" in f else range(s.shape[0])
            frames = []
            _, z, y, x = s.shape
            for i, day in enumerate(days):
                body = (
                    '      <Attribute Name="bone" AttributeType="Scalar" Center="Cell">\n'
                    f'        <DataItem ItemType="HyperSlab" Dimensions="{z} {y} {x}" Type="HyperSlab">\n'
                    '          <DataItem Dimensions="3 4" Format="XML">'
                    f"{i} 0 0 0  1 1 1 1  1 {z} {y} {x}</DataItem>\n"
                    + _item(ref, s, "          ")
                    + "        </DataItem>\n      </Attribute>\n"
                )
                frames.append(_grid(f"day {float(day):g}", (z, y, x), spacing, body, float(day)))
            grids.append(
                '    <Grid Name="series" GridType="Collection" CollectionType="Temporal">\n'
                + "".join(
                    g.replace("\n    ", "\n      ").replace("    <Grid", "      <Grid", 1) for g in frames
                )
                + "    </Grid>\n"
            )
    text = (
        '<?xml version="1.0" ?>\n<Xdmf Version="3.0">\n  <Domain>\n'
        + "".join(grids)
        + "  </Domain>\n</Xdmf>\n"
    )
    if out.exists() and (not out.is_file() or f">{ref}:" not in out.read_text(errors="replace")):
        # not a sidecar bonesim wrote for this file: never replace someone else's file
        log.warning("%s exists and does not describe %s; XDMF sidecar not written", out, ref)
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    return out
