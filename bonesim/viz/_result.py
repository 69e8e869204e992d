"""Read what the visualisation needs from a schema-1 file (result or plain volume)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonesim.errors import BonesimError
from bonesim.io.hdf5 import open_bonesim, read_table


@dataclass
class ResultInfo:
    """Summary of a bonesim file for rendering and plotting.

    Attributes
    ----------
    path : Path
    voxel_size_um : float
    shape : tuple of int
        ``(Z, Y, X)`` of one frame.
    days : ndarray
        Day of each frame (``/series/day``); ``[0.0]`` for a plain volume file.
    scenario : str
        ``/scenario`` name, else the file stem.
    has_series : bool
        True when the file holds ``/series/bone`` (a simulation result).
    tables : dict
        ``metrics`` and ``physiology`` tables when present (column -> array).
    """

    path: Path
    voxel_size_um: float
    shape: tuple[int, int, int]
    days: np.ndarray
    scenario: str
    has_series: bool
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.days)

    @property
    def reference_index(self) -> int:
        """The frame that changes are measured from: the first at day >= 0 (after spin-up)."""
        after = np.flatnonzero(self.days >= 0)
        return int(after[0]) if after.size else 0

    def frame_index(self, frame: int) -> int:
        """Normalise ``frame`` (negative counts from the end); raise if out of range."""
        n = self.n_frames
        if not isinstance(frame, (int, np.integer)) or not -n <= frame < n:
            raise BonesimError(f"frame {frame!r} out of range: {self.path} holds {n} frame(s)")
        return int(frame) % n


def load_info(path: str | os.PathLike) -> ResultInfo:
    """Read the metadata, days and tables of a bonesim file (no volumes)."""
    with open_bonesim(path) as f:
        vs = float(f.attrs["voxel_size_um"])
        if "series/bone" in f:
            s = f["series/bone"]
            if s.ndim != 4 or s.shape[0] == 0:
                raise BonesimError(f"{path}: /series/bone holds no frames")
            shape = tuple(int(n) for n in s.shape[1:])
            days = (
                f["series/day"][...].astype(float)
                if "series/day" in f
                else np.arange(s.shape[0], dtype=float)
            )
            has_series = True
        elif "volume/bone" in f:
            shape = tuple(int(n) for n in f["volume/bone"].shape)
            days = np.zeros(1)
            has_series = False
        else:
            raise BonesimError(f"{path} holds neither /series/bone nor /volume/bone")
        name = Path(path).stem
        if "scenario" in f:
            raw = f["scenario"].attrs.get("name", name)
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
        tables = {k: read_table(f["tables"][k]) for k in f["tables"]} if "tables" in f else {}
    return ResultInfo(Path(path), vs, shape, days, name, has_series, tables)  # type: ignore[arg-type]


def read_frames(path: str | os.PathLike, indices: list[int]) -> list[np.ndarray]:
    """Read frames ``indices`` (already normalised) of ``/series/bone`` (or ``/volume/bone``)."""
    with open_bonesim(path) as f:
        if "series/bone" in f:
            ds = f["series/bone"]
            return [np.asarray(ds[i]) for i in indices]
        vol = np.asarray(f["volume/bone"][...])
        return [vol for _ in indices]
