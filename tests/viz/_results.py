"""Build small schema-1 *result* files by hand, for tests of readers of results.

:func:`write_result` writes a plate phantom whose saved frames show, on
purpose, every kind of remodeling event with a known place and time:

* a cavity that grows on the top face (resorption; never refilled);
* a hole punched through the plate (perforation) from frame 2 on;
* a disc of new bone on the top face (formation) from frame 1 on;
* a cavity resorbed at frame 1 and refilled to the original surface at the
  last frame (bone that is "newly formed" although the surface is back).

The file has every group of the result layout in TEAM.md: ``/volume/bone``,
``/series/{bone,day}``, ``/maps/{resorbed_day,formed_day}``,
``/tables/{metrics,physiology}``, ``/scenario`` and ``/provenance`` attrs, and
an XDMF sidecar. Use ``loss=False`` for a run where nothing changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from bonesim.io.hdf5 import atomic_output, create_array, write_json_attr, write_root_attrs, write_table
from bonesim.io.xdmf import write_xdmf

#: Plate occupies z in [PLATE_Z0, PLATE_Z1) of the default shape.
PLATE_Z0, PLATE_Z1 = 12, 20
#: (y, x) centres of the events in the default (32, 48, 48) shape.
CAVITY_YX = (12, 12)
HOLE_YX = (34, 34)
FORMED_YX = (12, 34)
REFILL_YX = (34, 12)


def _ball(shape, centre, radius):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cz, cy, cx = centre
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


def _cylinder_z(shape, yx, radius, z0, z1):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return ((y - yx[0]) ** 2 + (x - yx[1]) ** 2 <= radius**2) & (z >= z0) & (z < z1)


def result_frames(shape=(32, 48, 48), frames: int = 4, *, loss: bool = True) -> list[np.ndarray]:
    """The uint8 frames of the fixture (frame 0 = the intact plate)."""
    base = np.zeros(shape, np.uint8)
    base[PLATE_Z0:PLATE_Z1] = 255
    out = [base]
    for t in range(1, frames):
        b = base.copy()
        if loss:
            top = PLATE_Z1  # cavities open from the top face, downwards
            b[_ball(shape, (top, *CAVITY_YX), 1 + t)] = 0
            if t < frames - 1:
                b[_ball(shape, (top, *REFILL_YX), 3)] = 0
            hole_depth = PLATE_Z1 - PLATE_Z0 if t >= 2 else (PLATE_Z1 - PLATE_Z0) // 2
            b[_cylinder_z(shape, HOLE_YX, 3, PLATE_Z1 - hole_depth, PLATE_Z1)] = 0
            b[_cylinder_z(shape, FORMED_YX, 5, PLATE_Z1, PLATE_Z1 + 2)] = 255
        out.append(b)
    return out


def write_result(
    path: str | os.PathLike,
    *,
    shape=(32, 48, 48),
    frames: int = 4,
    days_per_frame: float = 120.0,
    voxel_size_um: float = 20.0,
    scenario: str = "fixture",
    loss: bool = True,
    physiology: bool = True,
    morphometry: bool = False,
    bvtv_scale: float = 1.0,
    first_day: float = 0.0,
    volumes: list[np.ndarray] | None = None,
) -> Path:
    """Write the fixture result to ``path`` (overwriting) and return the path.

    ``bvtv_scale`` multiplies the metrics' BV/TV column so that overlaid
    plots of two fixtures are distinguishable. A negative ``first_day`` makes
    the first frames spin-up frames (stored before day 0). ``volumes`` replaces
    the fixture's frames by the caller's (uint8, one shape).
    """
    vols = result_frames(shape, frames, loss=loss) if volumes is None else list(volumes)
    shape, frames = vols[0].shape, len(vols)
    days = first_day + np.arange(frames, dtype=np.float64) * days_per_frame
    series = np.stack(vols)
    resorbed = np.full(shape, -1, np.int32)
    formed = np.full(shape, -1, np.int32)
    for t in range(1, frames):
        lost = (vols[t] < vols[t - 1]) & (resorbed < 0)
        resorbed[lost] = int(days[t])
        formed[vols[t] > vols[t - 1]] = int(days[t])
    bv = series.reshape(frames, -1).mean(axis=1) / 255.0 * bvtv_scale
    metrics = {
        "day": days,
        "bv_tv": bv,
        "resorbed_vox": np.array([int((v < vols[0]).sum()) for v in vols]),
        "formed_vox": np.array([int((v > vols[0]).sum()) for v in vols]),
        "bone_removed": np.array([float(np.clip(vols[0].astype(int) - v, 0, None).sum()) for v in vols]),
        "bone_added": np.array([float(np.clip(v.astype(int) - vols[0], 0, None).sum()) for v in vols]),
        "bmu_resorbing": np.arange(frames) % 3,
        "bmu_reversal": np.arange(frames) % 2,
        "bmu_forming": np.ones(frames, np.int64),
        "acf_realised": np.full(frames, 0.3),
    }
    if morphometry:
        metrics.update(
            bs_bv_per_mm=np.linspace(12, 14, frames),
            tb_th_um=np.linspace(160, 150, frames),
            tb_sp_um=np.linspace(480, 500, frames),
            tb_n_per_mm=np.linspace(1.6, 1.5, frames),
            conn_d_per_mm3=np.linspace(3.0, 2.5, frames),
            smi=np.linspace(0.5, 0.8, frames),
        )
    ndays = int(days[-1] - days[0]) + 1
    d = days[0] + np.arange(ndays, dtype=np.float64)
    phys = {
        "day": d,
        "acf_per_year": 0.3 + 0.1 * d / ndays,
        "erosion_depth_um": np.full(ndays, 50.0),
        "resorption_days": np.full(ndays, 30.0),
        "reversal_days": np.full(ndays, 20.0),
        "mar_um_per_day": np.full(ndays, 0.6),
        "formation_efficiency": 1.0 - 0.05 * d / ndays,
        "calcium_mM": 2.4 + 0.01 * np.sin(d / 30),
        "pth_pM": 3.0 + 0.5 * d / ndays,
        "calcitriol_pM": np.full(ndays, 90.0),
        "estrogen": 1.0 - 0.5 * d / ndays,
    }
    with atomic_output(path, overwrite=True) as tmp, h5py.File(tmp, "w") as f:
        write_root_attrs(f, voxel_size_um)
        create_array(f.create_group("volume"), "bone", vols[0])
        g = f.create_group("series")
        create_array(g, "bone", series)
        g.create_dataset("day", data=days)
        m = f.create_group("maps")
        create_array(m, "resorbed_day", resorbed)
        create_array(m, "formed_day", formed)
        st = f.create_group("state")
        create_array(st, "bone", vols[-1])
        st.attrs.update(step=int(days[-1]), day=float(days[-1]), seed=0, backend="fixture")
        t = f.create_group("tables")
        write_table(t, "metrics", metrics)
        if physiology:
            write_table(t, "physiology", phys)
        sc = f.create_group("scenario")
        sc.attrs["name"] = scenario
        sc.attrs["toml"] = f'name = "{scenario}"\n'
        pv = f.create_group("provenance")
        pv.attrs.update(command="tests/_results.py", created="2026-01-01T00:00:00", host="test", device="cpu")
        write_json_attr(pv, "timings", {"total_s": 0.0})
    write_xdmf(path)
    return Path(path)
