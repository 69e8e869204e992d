"""Reading and writing volumes: bonesim HDF5 (schema 1), importers, segmentation."""

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
from bonesim.io.importers import import_volume
from bonesim.io.segment import segment
from bonesim.io.xdmf import write_xdmf

__all__ = [
    "SCHEMA_VERSION",
    "atomic_output",
    "describe",
    "import_volume",
    "open_bonesim",
    "read_table",
    "read_volume",
    "segment",
    "write_table",
    "write_volume",
    "write_xdmf",
]
