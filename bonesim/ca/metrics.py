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


#: What :func:`frame_counts` counts, in order.
FRAME_COUNTS = ("bone_sum", "resorbing", "passive", "reversal", "forming", "resorbed", "formed")


def frame_counts(
    bone: np.ndarray, phase: np.ndarray, timer: np.ndarray, prev_bone: np.ndarray | None
) -> np.ndarray:
    """The sums a frame's metrics row needs (:data:`FRAME_COUNTS`, int64) of a block of the state.

    Additive: the counts of a volume are the sums over any blocks that tile it.
    """
    ph = phase & 3
    r = ph == PH_R
    passive = r & (bone == 0) & (timer == 0)
    out = [
        int(bone.sum(dtype=np.int64)),
        int(np.count_nonzero(r)),
        int(np.count_nonzero(passive)),
        int(np.count_nonzero(ph == PH_V)),
        int(np.count_nonzero(ph == PH_F)),
    ]
    if prev_bone is None:
        out += [0, 0]
    else:
        out += [int(np.count_nonzero(bone < prev_bone)), int(np.count_nonzero(bone > prev_bone))]
    return np.array(out, np.int64)


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
        """The row of a saved frame from the whole state (see :meth:`frame_row_from_counts`)."""
        bone = state["bone"]
        counts = frame_counts(bone, state["phase"], state["timer"], prev_bone)
        return self.frame_row_from_counts(day, bone.size, counts, dt, prev_bone is not None)

    def frame_row_from_counts(
        self, day: float, n: int, counts: np.ndarray, dt: float, has_prev: bool
    ) -> dict:
        """The row of a saved frame from :func:`frame_counts` summed over the blocks of the state."""
        bone_sum, n_r, passive, n_v, n_f, resorbed, formed = (int(v) for v in counts)
        c = dict(zip(COUNTERS, (int(v) for v in self.sums), strict=False))
        mean_surface = c["surface"] / self.steps if self.steps else float("nan")
        days = self.steps * dt
        acf = (
            c["recruited"] / mean_surface * DAYS_PER_YEAR / days
            if self.steps and mean_surface > 0
            else float("nan")
        )
        if not has_prev:
            resorbed = formed = 0
        row = {
            "day": float(day),
            "bv_tv": float(bone_sum) / (BONE_FULL * n),
            "resorbed_vox": resorbed,
            "formed_vox": formed,
            "bone_removed": c["removed"] / (BONE_FULL * n),
            "bone_added": c["added"] / (BONE_FULL * n),
            "bmu_resorbing": n_r - passive,
            "bmu_reversal": n_v,
            "bmu_forming": n_f,
            "cavity_vox": passive,
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
