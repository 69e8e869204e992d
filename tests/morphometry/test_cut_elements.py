"""Elements cut through since day 0: ``cut_elements`` of ``bonesim analyze``."""

from __future__ import annotations

import numpy as np

from bonesim.morphometry.analyze import _Cuts
from bonesim.morphometry.difference import cut_elements, difference_masks


def plate(shape=(9, 40, 40), z=(3, 5)) -> np.ndarray:
    b = np.zeros(shape, np.uint8)
    b[z[0] : z[1]] = 255
    return b


def test_each_hole_through_a_plate_is_one_element_a_pit_none():
    b0 = plate()
    bt = b0.copy()
    bt[3:5, 5:10, 5:10] = 0  # a 5x5 hole: 50 voxels
    bt[3:5, 20:24, 25:31] = 0  # another hole
    bt[3, 30:36, 5:11] = 0  # a pit: one layer of two, not through
    d = difference_masks(b0, bt)
    assert cut_elements(d.perforated) == 2
    assert d.perforated[3:5, 30:36, 5:11].sum() == 0
    small = b0.copy()
    small[3:5, 5:7, 5:7] = 0  # 8 voxels: below the 12-voxel cluster threshold, noise
    assert cut_elements(difference_masks(b0, small).perforated) == 0
    assert cut_elements(difference_masks(b0, small, min_cluster=0).perforated) == 1


def test_a_cut_rod_is_one_element():
    b0 = np.zeros((30, 12, 12), np.uint8)
    b0[:, 4:8, 4:8] = 255  # a rod along z
    bt = b0.copy()
    bt[14:16] = 0  # cut through
    assert cut_elements(difference_masks(b0, bt).perforated) == 1, "gone through its width along x and y"
    b0 = np.zeros((12, 12, 30), np.uint8)
    b0[4:8, 4:8, 3:27] = 255  # a rod along x that ends inside the volume
    bt = b0.copy()
    bt[4:8, 4:8, 14:17] = 0
    assert cut_elements(difference_masks(b0, bt).perforated) == 1


class _Info:
    def __init__(self, frames, series=True):
        self.frames, self.has_series, self.voxel_size_um = frames, series, 20.0

    def frame(self, i):
        return self.frames[i]


def test_analyze_counts_cuts_against_frame_0_and_nan_for_a_plain_volume():
    b0 = plate()
    b1 = b0.copy()
    b1[3:5, 5:10, 5:10] = 0
    b2 = b1.copy()
    b2[3:5, 20:24, 25:31] = 0
    cuts = _Cuts(_Info([b0, b1, b2]))
    assert [cuts.row(i, b) for i, b in enumerate([b0, b1, b2])] == [0.0, 1.0, 2.0]
    assert np.isnan(_Cuts(_Info([b0], series=False)).row(0, b0))
