"""Issue 13 item 3: which CA events change the topology of healthy bone?

Runs a scenario (default healthy-adult) on a central crop of the real sample with the
NumPy backend, wrapped so that every step's perforations (a hand-over column
turning into F with budget 0) are located, and every ``--every`` days reports
BV/TV, purified Conn.D, bone particles and enclosed cavities of

* ``now``: the bone binarised at 0.5, as analyze sees it;
* ``closed``: the same with every voxel of an open BMU (phase != 0) counted as
  bone, i.e. the cavities now open assumed refilled (what remains is permanent);
* ``closed+perf``: ``closed`` with every voxel emptied by a perforated column
  (F, budget 0, bone 0 at some step) that is marrow now counted as bone.

``--refill-perforations`` is an experiment switch (this script only): a
perforating hand-over becomes the column's floor instead (reversal, then
formation with budget f x removed), so nothing is left open.

    python scripts/topology_diagnosis.py --size 64 --years 3 --seed 0 > diag.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonesim import Volume
from bonesim.ca.backends import numpy_backend as nb
from bonesim.ca.backends.base import EV_PERF
from bonesim.ca.engine import simulate
from bonesim.ca.mechano import MechanoParams
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.io.sample import VOXEL_UM, real_sample
from bonesim.morphometry.topology import connectivity_purified, particle_counts
from bonesim.physiology.model import scenario_table

_U32 = np.uint32
_RULE = nb.rule


def _refilling_rule(words, s, hashes, neighbourhood, xp=np, thr=None, model=None):
    """The rule, except that a perforation becomes the column's floor (V, timer = removed)."""
    out, ev = _RULE(words, s, hashes, neighbourhood, xp=xp, thr=thr, model=model)
    perf = (ev & EV_PERF) != 0
    if perf.any():
        W = words if hasattr(words, "row") else nb._Dense(words)
        w = W.row(13)
        out = np.where(perf, (2 << 8) | ((w >> 16) << 16), out).astype(np.uint32)
        ev = np.where(perf, ev & ~EV_PERF, ev)
    return out, ev


def topo(bone: np.ndarray, tv_mm3: float) -> dict:
    pc = particle_counts(bone)
    return {
        "bv_tv": float(bone.mean()),
        "connd": connectivity_purified(bone) / tv_mm3,
        "particles": pc.n_particles,
        "cavities": pc.n_cavities,
        "cavity_voxels": pc.cavity_voxels,
    }


class Probe(nb.NumpyBackend):
    def __init__(self, n_spin: int, every: int, tv_mm3: float) -> None:
        super().__init__()
        self.n_spin, self.every, self.tv = n_spin, every, tv_mm3
        self.rows: list[dict] = []
        #: perforations by the number of nonzero components of their direction (0: none)
        self.perf_dirs = np.zeros(4, np.int64)
        self.perf_kind = {"no direction": 0, "marrow ahead": 0, "head-on": 0}
        self.unrefilled: np.ndarray | None = None

    def step(self, state, inputs, *, step, map_day):
        if self.unrefilled is None:
            self.unrefilled = np.zeros(state.shape, bool)
        pflat = state.pad.reshape(-1)
        bmu = state.bmu.copy()
        old = pflat[bmu].copy()
        _PZ, PY, PX = state.pad.shape
        dcode = ((old >> _U32(11)) & _U32(31)).astype(np.int64)
        dcode = np.where(dcode < 27, dcode, 13)
        off = (dcode // 9 - 1) * (PY * PX) + ((dcode // 3) % 3 - 1) * PX + (dcode % 3 - 1)
        ahead = pflat[bmu + off].copy()
        super().step(state, inputs, step=step, map_day=map_day)
        new = pflat[bmu]
        pb = (old >> _U32(8)) & _U32(0xFF)
        hand = ((pb & _U32(3)) == 1) & ((old & _U32(0xFF)) == 0) & ((old >> _U32(16)) != 0)
        perf = hand & (new == _U32(3 << 8))
        if step >= self.n_spin and perf.any():
            d = (pb[perf] >> _U32(3)).astype(np.int64)
            d = np.where(d < 27, d, 13)
            n1 = np.abs(d // 9 - 1) + np.abs((d // 3) % 3 - 1) + np.abs(d % 3 - 1)
            np.add.at(self.perf_dirs, n1, 1)
            y = ahead[perf]
            self.perf_kind["no direction"] += int(np.count_nonzero(d == 13))
            self.perf_kind["marrow ahead"] += int(np.count_nonzero((d != 13) & ((y & _U32(0xFFFF)) == 0)))
            self.perf_kind["head-on"] += int(np.count_nonzero((d != 13) & ((y & _U32(0xFFFF)) != 0)))
        # every voxel emptied and left to return to marrow (F, bone 0, budget 0)
        gone = new == _U32(3 << 8)
        if step >= self.n_spin and gone.any():
            self.unrefilled.reshape(-1)[state.to_interior(bmu[gone])] = True
        n = step + 1
        if n >= self.n_spin and (n - self.n_spin) % self.every == 0:
            w = state.word
            bone = (w & _U32(0xFF)) >= 128
            open_bmu = ((w >> _U32(8)) & _U32(0xFF)) != 0
            closed = bone | open_bmu
            row = {"day": n - self.n_spin, "now": topo(bone, self.tv), "closed": topo(closed, self.tv)}
            row["closed+perf"] = topo(closed | (self.unrefilled & ~bone), self.tv)
            row["perf_by_norm1"] = self.perf_dirs.tolist()
            row["perf_kind"] = dict(self.perf_kind)
            row["partial_q"] = int(np.count_nonzero(~open_bmu & ((w & _U32(0xFF)) % 255 != 0)))
            self.rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--years", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=182)
    ap.add_argument("--scenario", default="healthy-adult")
    ap.add_argument("--mechanics", action="store_true")
    ap.add_argument("--f", type=float, default=None, help="override the formation efficiency")
    ap.add_argument("--refill-perforations", action="store_true")
    args = ap.parse_args()
    if args.refill_perforations:
        nb.rule = _refilling_rule
    full = real_sample()
    lo = (full.shape[0] - args.size) // 2
    crop = np.ascontiguousarray(full[lo : lo + args.size, lo : lo + args.size, lo : lo + args.size])
    tv = (args.size * VOXEL_UM / 1000.0) ** 3
    st = scenario_table(args.scenario, args.years)
    if args.f is not None:
        st.table["formation_efficiency"] = np.full_like(st.table["formation_efficiency"], args.f)
    probe = Probe(round(DAYS_PER_YEAR), args.every, tv)  # the 1-year spin-up at dt = 1 day
    t0 = time.perf_counter()
    simulate(
        Volume(crop, voxel_size_um=VOXEL_UM),
        years=args.years,
        seed=args.seed,
        backend=probe,
        spinup_years=1.0,
        save_every=DAYS_PER_YEAR,
        scenario=st,
        mechanics=MechanoParams() if args.mechanics else None,
    )
    print(
        json.dumps(
            {
                "size": args.size,
                "seed": args.seed,
                "scenario": args.scenario,
                "mechanics": args.mechanics,
                "refill_perforations": args.refill_perforations,
                "f": args.f,
                "input": topo(crop >= 128, tv),
                "wall_s": time.perf_counter() - t0,
                "rows": probe.rows,
            }
        )
    )


if __name__ == "__main__":
    main()
