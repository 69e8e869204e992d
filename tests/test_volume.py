"""bonesim.volume.Volume: validation and basic properties."""

from __future__ import annotations

import numpy as np
import pytest

from bonesim.volume import BONE_FULL, Volume


def test_bone_fraction_and_bvtv():
    data = np.zeros((4, 4, 4), np.uint8)
    data[:2] = BONE_FULL
    data[2, 0, 0] = 51  # a fifth of a voxel
    v = Volume(data, 20)
    assert v.is_bone_fraction
    assert v.bv_tv == pytest.approx((32 * 255 + 51) / (64 * 255))
    assert v.size_um == (80.0, 80.0, 80.0)


def test_bool_maps_to_0_255():
    v = Volume(np.ones((2, 2, 2), bool), 10)
    assert v.data.dtype == np.uint8 and set(np.unique(v.data)) == {255}


@pytest.mark.parametrize("shape", [(4, 4), (2, 2, 2, 2)])
def test_refuses_2d_and_4d(shape):
    with pytest.raises(ValueError, match="3-dimensional"):
        Volume(np.zeros(shape), 10)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "x"])
def test_refuses_bad_voxel_size(bad):
    with pytest.raises(ValueError, match="voxel_size_um"):
        Volume(np.zeros((2, 2, 2)), bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_refuses_nonfinite(bad):
    data = np.zeros((2, 2, 2))
    data[0, 0, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        Volume(data, 10)


def test_grey_has_no_bvtv_and_with_data_merges_metadata():
    v = Volume(np.zeros((2, 2, 2), np.float32), 10, {"a": 1})
    with pytest.raises(TypeError, match="segment it first"):
        _ = v.bv_tv
    w = v.with_data(np.zeros((2, 2, 2), np.uint8), b=2)
    assert w.metadata == {"a": 1, "b": 2} and w.voxel_size_um == 10
