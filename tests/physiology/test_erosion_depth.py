"""Estrogen deficiency deepens osteoclastic erosion (Eriksen et al. 1999): the erosion depth E of
the daily table, the formation efficiency (wall unchanged) and the calcium the resorption releases."""

from __future__ import annotations

import dataclasses

import numpy as np

from bonesim.defaults import DAYS_PER_YEAR
from bonesim.physiology import run_physiology
from bonesim.physiology.factors import FACTOR_PARAMS


def _late(table, column, years=(8.0, 10.0)):
    day = table["day"] / DAYS_PER_YEAR
    sel = (day >= years[0]) & (day <= years[1])
    return float(np.mean(table[column][sel]))


def test_erosion_depth_rises_with_the_estrogen_deficit():
    t = run_physiology("postmenopausal", 10)
    healthy = run_physiology("healthy-adult", 10)
    e0 = float(healthy["erosion_depth_um"][0])  # day 0 of the menopause run is already in the transition
    # long after the final menstrual period estrogen sits at 0.2, the full deficit d_E = 1
    assert abs(_late(t, "estrogen") - 0.2) < 1e-6
    assert abs(_late(t, "erosion_depth_um") / e0 - (1.0 + FACTOR_PARAMS.estrogen_erosion)) < 1e-6
    assert np.allclose(healthy["erosion_depth_um"], e0)
    assert t["erosion_depth_um"][0] > e0


def test_the_formed_wall_does_not_follow_the_deeper_erosion():
    """Wall thickness W = f E is set by the osteoblasts alone: switching the erosion term off
    changes E and f but not their product (same cells)."""
    off = dataclasses.replace(FACTOR_PARAMS, estrogen_erosion=0.0)
    on_t = run_physiology("postmenopausal", 10)
    off_t = run_physiology("postmenopausal", 10, params=off)
    w_on = on_t["formation_efficiency"] * on_t["erosion_depth_um"]
    w_off = off_t["formation_efficiency"] * off_t["erosion_depth_um"]
    assert not np.allclose(on_t["erosion_depth_um"], off_t["erosion_depth_um"])
    # the cells differ slightly (the calcium module sees more resorption), the wall only through them
    ratio = w_on / w_off
    ob = on_t["oba_qs"] / off_t["oba_qs"]
    oc = on_t["oca_qs"] / off_t["oca_qs"]
    assert np.allclose(ratio, ob / oc, rtol=1e-9)


def test_bone_calcium_release_follows_the_resorbed_volume():
    """More resorption per osteoclast releases more calcium at the same osteoclast number."""
    off = dataclasses.replace(FACTOR_PARAMS, estrogen_erosion=0.0)
    on_t = run_physiology("postmenopausal", 10)
    off_t = run_physiology("postmenopausal", 10, params=off)
    assert _late(on_t, "bone_ca_release_mmol_d") > _late(off_t, "bone_ca_release_mmol_d")
