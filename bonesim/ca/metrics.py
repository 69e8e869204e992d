"""The metrics of a CA run: counters summed between saved frames, one ``/tables/metrics`` row per frame."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bonesim.ca.backends import COUNTERS
from bonesim.ca.backends.base import PH_F, PH_R, PH_V
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.volume import BONE_FULL

#: Columns of /tables/metrics written by the engine (morphometry adds its own later).
METRIC_COLUMNS = (
    "day",
    "bv_tv",
    "resorbed_vox",
    "formed_vox",
    "bone_removed",
    "bone_added",
    "bmu_resorbing",
    "bmu_reversal",
    "bmu_forming",
    "cavity_vox",
    "surface_vox",
    "recruited",
    "seeds",
    "perforated",
    "acf_realised",
    "modeled",
)


class Metrics:
    """Counters accumulated between two saved frames, and the metrics rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.spin_removed = 0  # bone removed (1/255 voxel units) in the second half of the spin-up
        self.spin_steps = 0
        self.reset()

    def reset(self) -> None:
        self.sums = np.zeros(len(COUNTERS), np.uint64)
        self.steps = 0

    def add(self, rows: np.ndarray) -> None:
        if len(rows):
            self.sums += np.asarray(rows, np.uint64).sum(axis=0)
            self.steps += len(rows)

    def add_spinup(self, rows: np.ndarray) -> None:
        """Counter rows of spin-up steps: the bone they removed, for :meth:`spinup_removed_per_day`."""
        if len(rows):
            self.spin_removed += int(np.asarray(rows, np.uint64)[:, COUNTERS.index("removed")].sum())
            self.spin_steps += len(rows)

    def spinup_removed_per_day(self, n_voxels: int, dt: float) -> float:
        """Bone removed per day in the second half of the spin-up, fraction of the volume (NaN: none)."""
        if not self.spin_steps or n_voxels <= 0:
            return float("nan")
        return self.spin_removed / (BONE_FULL * n_voxels) / (self.spin_steps * dt)

    def get_state(self) -> dict[str, Any]:
        return {
            "sums": [int(v) for v in self.sums],
            "steps": self.steps,
            "spin_removed": self.spin_removed,
            "spin_steps": self.spin_steps,
        }

    def set_state(self, st: Mapping[str, Any]) -> None:
        sums = np.array(st["sums"], np.uint64)
        # checkpoints written before the `modeled` counter have one counter fewer
        self.sums = np.zeros(len(COUNTERS), np.uint64)
        self.sums[: len(sums)] = sums
        self.steps = int(st["steps"])
        self.spin_removed = int(st.get("spin_removed", 0))  # checkpoints before it: none
        self.spin_steps = int(st.get("spin_steps", 0))

    def frame_row(
        self, day: float, state: Mapping[str, np.ndarray], prev_bone: np.ndarray | None, dt: float
    ) -> dict:
        bone, phase, timer = state["bone"], state["phase"], state["timer"]
        n = bone.size
        ph = phase & 3
        c = dict(zip(COUNTERS, (int(v) for v in self.sums), strict=False))
        passive = (ph == PH_R) & (bone == 0) & (timer == 0)
        mean_surface = c["surface"] / self.steps if self.steps else float("nan")
        days = self.steps * dt
        acf = (
            c["recruited"] / mean_surface * DAYS_PER_YEAR / days
            if self.steps and mean_surface > 0
            else float("nan")
        )
        if prev_bone is None:
            resorbed = formed = 0
        else:
            resorbed = int(np.count_nonzero(bone < prev_bone))
            formed = int(np.count_nonzero(bone > prev_bone))
        row = {
            "day": float(day),
            "bv_tv": float(bone.sum(dtype=np.int64)) / (BONE_FULL * n),
            "resorbed_vox": resorbed,
            "formed_vox": formed,
            "bone_removed": c["removed"] / (BONE_FULL * n),
            "bone_added": c["added"] / (BONE_FULL * n),
            "bmu_resorbing": int(np.count_nonzero(ph == PH_R)) - int(np.count_nonzero(passive)),
            "bmu_reversal": int(np.count_nonzero(ph == PH_V)),
            "bmu_forming": int(np.count_nonzero(ph == PH_F)),
            "cavity_vox": int(np.count_nonzero(passive)),
            "surface_vox": mean_surface,
            "recruited": c["recruited"],
            "seeds": c["seeds"],
            "perforated": c["perforated"],
            "acf_realised": acf,
            "modeled": c["modeled"],
        }
        self.rows.append(row)
        self.reset()
        return row

    def table(self) -> dict[str, np.ndarray]:
        # rows restored from a checkpoint written before the `modeled` counter lack it: 0 modeling starts
        return {k: np.array([r.get(k, 0.0) for r in self.rows], dtype=np.float64) for k in METRIC_COLUMNS}
