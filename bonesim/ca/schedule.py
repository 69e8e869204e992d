"""From physical parameters to the integer inputs of each CA step (host side).

The kernels see no floating-point numbers: every step gets a
:class:`~bonesim.ca.backends.base.StepInputs` of unsigned 32-bit integers that
this module computes, deterministically, from the day's
:class:`~bonesim.ca.params.RemodelingParams`, the voxel size and integer state
carried across steps (fixed-point rate accumulators and the activation
calibration counters). That state is part of every checkpoint, so a resumed
run draws exactly the same thresholds as an unbroken one.

Activation is calibrated in two parts. The probability that a quiescent
surface voxel seeds a BMU in one step is the requested surface fraction per
step (Ac.f·dt/365.25) divided by the mean footprint of a seed, estimated from
the counters so far. On its own that left the realised Ac.f several per cent
short of the request for years at a time in small volumes (a few hundred
activations over years: Bernoulli noise, and seed counts measured 3-9 % below
the expected one), and nothing compared realised with requested. So the
schedule also keeps the integer *deficit*, requested minus recruited
surface voxels summed over all steps run (the request of a step being
Ac.f·dt/365.25 times that step's quiescent surface count), and adds
``deficit / CATCH_UP_DAYS`` per day to the request, capped at ± the request:
the realised count then tracks the requested one within the noise of about
``CATCH_UP_DAYS`` of activations, at every Ac.f, ramps included.

>>> s = Schedule([RemodelingParams()], voxel_size_um=20.0)
>>> i = s.inputs(0, seed=0)
>>> i.depth, i.rev_steps, i.f_q16, i.lat0
(638, 20, 65536, 86)

References
----------
See ``docs/model.md`` and :mod:`bonesim.ca.params` for the sources of the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bonesim.ca.backends.base import COUNTERS, NEIGH, OFFSETS, StepInputs
from bonesim.ca.params import RemodelingParams
from bonesim.ca.rng import seed_words
from bonesim.defaults import DAYS_PER_YEAR
from bonesim.errors import InputError

#: Days between recalibrations of the activation probability (``Schedule.cal_every`` steps).
CAL_EVERY_DAYS = 16
#: The same in steps at the default 1-day step (progress reports, the chunked exchange default).
CAL_EVERY = 16
#: Weight (in seeds) of the flat-surface prior footprint in the calibration.
PRIOR_SEEDS = 20
#: Days over which a shortfall (or excess) of recruited surface against the request is made up.
CATCH_UP_DAYS = 90
_Q16 = 1 << 16


def modeling_probability(rate_um_per_day: float, voxel_size_um: float, dt_days: float) -> float:
    """Probability per step that a marrow surface voxel starts one voxel of modeling-based formation.

    ``rate_um_per_day`` is the physiology's modeling-based formation: the thickness of new bone
    per day over the whole bone surface. In the CA a marrow voxel with quiescent bone across a
    face (a *marrow surface voxel*) stands for h² of surface, and starting it lays down one voxel,
    h of thickness on that h². A per-day probability rate/h then adds ``rate`` µm/day on average;
    the chance per step of ``dt_days`` is 1 − (1 − rate/h)^dt, so the expected thickness per day
    does not depend on the step or the voxel size (capped at 1 per day: at most one voxel layer
    a day). Assumption: the marrow surface voxels count the surface (h² each) and the drug acts
    on the quiescent surface only; see docs/treatments.md for what that does to the realised rate.

    >>> round(modeling_probability(0.003, 19.5, 1.0), 8)  # teriparatide 20 ug/day
    0.00015385
    >>> round(modeling_probability(0.003, 19.5, 2.0), 8)  # a 2-day step: 1 - (1 - p)^2
    0.00030767
    >>> modeling_probability(0.0, 20.0, 1.0)
    0.0
    """
    h = float(voxel_size_um)
    if not h > 0.0:
        raise InputError(f"`voxel_size_um` must be positive, got {voxel_size_um!r}")
    p_day = min(max(float(rate_um_per_day) / h, 0.0), 1.0)
    if p_day == 0.0:
        return 0.0
    return 1.0 - (1.0 - p_day) ** float(dt_days)


def modeling_threshold(rate_um_per_day: float, voxel_size_um: float, dt_days: float) -> int:
    """:func:`modeling_probability` as the rule's 32-bit threshold (a draw below it starts formation).

    Quantised like :func:`bonesim.ca.mechano.modeling_table`: rint(p · 2³²), at most 2³² − 1.

    >>> modeling_threshold(0.003, 19.5, 1.0)
    660764
    >>> modeling_threshold(0.0, 19.5, 1.0)
    0
    """
    p = modeling_probability(rate_um_per_day, voxel_size_um, dt_days)
    return int(min(np.rint(p * 2.0**32), 2.0**32 - 1))


def combine_modeling(mech_table: np.ndarray, drug_thr: int) -> np.ndarray:
    """Modeling thresholds of the mechanical table and the drug's: either process starts formation.

    The two are independent chances per step, p = 1 − (1 − p_mech)(1 − p_drug), in exact
    integer arithmetic on the 32-bit thresholds (t_m + t_d − ⌊t_m·t_d / 2³²⌋, uint32): the same
    table on every host and backend. ``drug_thr`` 0 returns the mechanical table unchanged.

    >>> combine_modeling(np.array([0, 2**31, 2**32 - 1], np.uint32), 2**31).tolist()
    [2147483648, 3221225472, 4294967295]
    """
    tm = np.asarray(mech_table, np.uint64)
    td = np.uint64(int(drug_thr))
    if int(drug_thr) == 0:
        return tm.astype(np.uint32)
    out = tm + td - ((tm * td) >> np.uint64(32))
    return np.minimum(out, np.uint64(0xFFFFFFFF)).astype(np.uint32)


def lateral_costs(params: RemodelingParams, voxel_size_um: float) -> tuple[int, int, int, int]:
    """Lateral budget of a seed and the cost of a face, edge and corner step (integers).

    The costs are one voxel edge in units of 1/K voxel (K <= 16, so that the
    budget fits 8 bits); a surface voxel joins the footprint while the budget
    left after the path from the seed is > 0. The budget is the one whose flat
    footprint (:func:`flat_footprint`, the rule's own ring growth) covers the
    area closest to π L², so the cavity volume is π L² E at every voxel size
    (a budget of exactly L/h·K leaves out the rim: 0.88 of the disc at 10 and
    20 µm, 1.07 at 40 µm before this calibration).

    >>> lateral_costs(RemodelingParams(footprint_radius_um=100), 20.0)
    (86, 16, 23, 28)
    """
    rho = params.footprint_radius_um / voxel_size_um
    k = max(1, min(16, int(255 // max(rho + 1.0, 1e-9))))
    costs = (k, round(k * math.sqrt(2)), round(k * math.sqrt(3)))
    target = math.pi * rho * rho
    nominal = max(1, min(255, round(rho * k)))
    best = nominal
    best_err = abs(flat_footprint(nominal, costs, params.neighbourhood)[0] - target)
    for lat0 in range(max(1, nominal - k), min(255, nominal + k) + 1):
        err = abs(flat_footprint(lat0, costs, params.neighbourhood)[0] - target)
        if err < best_err - 1e-9:
            best, best_err = lat0, err
    return best, *costs


def flat_footprint(lat0: int, costs: tuple[int, int, int], neighbourhood: int) -> tuple[int, int]:
    """(voxels, rings) one seed recruits on an unobstructed flat surface, grown as the rule grows it.

    Ring by ring: a voxel next to the ring recruited last step joins with the
    best budget ``lat - cost`` > 0 over those neighbours (a front's budget
    lives one step). ``rings`` is the step of the last ring after the seed.

    >>> flat_footprint(80, (16, 23, 28), 26)
    (69, 4)
    """
    r = lat0 // max(1, min(costs)) + 2
    n = 2 * r + 1
    budget = np.zeros((n, n), np.int64)
    budget[r, r] = lat0
    joined = budget > 0
    front = budget.copy()
    moves = [(dy, dx) for (dz, dy, dx) in OFFSETS[list(NEIGH[neighbourhood])] if dz == 0]
    rings = 0
    while front.any():
        nxt = np.zeros_like(front)
        for dy, dx in moves:
            cost = costs[abs(dy) + abs(dx) - 1]
            src = np.roll(np.roll(front, dy, axis=0), dx, axis=1)
            nxt = np.maximum(nxt, np.where(src > 0, src - cost, 0))
        nxt[joined] = 0
        if not nxt.any():
            break
        joined |= nxt > 0
        front = nxt
        rings += 1
    return int(np.count_nonzero(joined)), rings


class Schedule:
    """Per-step integer inputs of a run: daily parameters, spin-up, accumulators, calibration.

    Parameters
    ----------
    daily : sequence of RemodelingParams
        Parameters of day 0, 1, ...; the last one holds for later days.
    voxel_size_um : float
    spinup_steps : int
        Steps run under ``daily[0]`` before day 0.
    """

    def __init__(
        self, daily: Sequence[RemodelingParams], voxel_size_um: float, spinup_steps: int = 0
    ) -> None:
        if not daily:
            raise InputError("`daily` needs at least one day of parameters")
        self.daily = list(daily)
        self.h = float(voxel_size_um)
        self.spinup_steps = int(spinup_steps)
        #: 1 while a mechanical-signal field steers activation (set by the engine's mechanoregulation).
        self.mech_on = 0
        #: 1 while loaded marrow voxels start modeling-based formation (set with mech_on by the engine).
        self.mod_on = 0
        #: Formation efficiency factor of mechanoregulation (16.16 fixed point; 65536 = 1).
        self.formation_q16 = 65536
        base = self.daily[0]
        for p in {id(p): p for p in self.daily}.values():
            p.check_voxel_size(self.h)
            if (p.neighbourhood, p.dt_days, p.footprint_radius_um) != (
                base.neighbourhood,
                base.dt_days,
                base.footprint_radius_um,
            ):
                raise InputError("neighbourhood, dt_days and footprint_radius_um must be constant over a run")
        self.neighbourhood = base.neighbourhood
        self.dt = base.dt_days
        #: steps between recalibrations: CAL_EVERY_DAYS in days, whatever the step
        self.cal_every = max(1, round(CAL_EVERY_DAYS / self.dt))
        self.lat0, *costs = lateral_costs(base, self.h)
        self.costs = tuple(costs)
        self.footprint0, self.rings = flat_footprint(self.lat0, self.costs, self.neighbourhood)
        # integer state carried across steps (checkpointed)
        self.erode_acc = 0
        self.form_acc = 0
        self.recruited_total = 0
        self.seeds_total = 0
        self.pending = np.zeros(len(COUNTERS), np.uint64)
        self.counted_steps = 0  # counter rows received so far (= index of the next row's step)
        self.pending_req_q16 = 0  # requested recruits of the pending rows, 1/65536 voxel
        self.pending_steps = 0
        self.deficit_q16 = 0  # requested - recruited, summed over calibrated rows, 1/65536 voxel
        self.surface_mean = 0  # mean quiescent surface voxels per step of the last calibration window
        #: Whether the deficit catch-up runs (the module docstring). Off only to measure what it does
        #: (``scripts/acf_controller.py``); the deficit is counted either way.
        self.catch_up = True
        self._cache: dict[int, tuple[int, ...]] = {}
        self._model_cache: dict[int, int] = {}
        #: Whether any day has modeling-based formation (the engine allocates its class field only then).
        self.any_modeling = any(p.modeling_um_per_day > 0.0 for p in self.daily)

    # -------------------------------------------------------------- time --
    def day_of(self, step: int) -> float:
        """Simulated day at the end of ``step`` (negative during spin-up)."""
        return (step + 1 - self.spinup_steps) * self.dt

    def params_at(self, step: int) -> RemodelingParams:
        if step < self.spinup_steps:
            return self.daily[0]
        day = int((step - self.spinup_steps) * self.dt)
        return self.daily[min(day, len(self.daily) - 1)]

    # ------------------------------------------------------------ inputs --
    def _static(self, p: RemodelingParams) -> tuple[int, ...]:
        key = id(p)
        if key not in self._cache:
            depth_vox = p.erosion_depth_um / self.h
            depth = max(1, round(depth_vox * 255))
            # steps left for erosion after the one-step latencies: the footprint's rings (one per step,
            # so its rim starts `rings` steps after the seed) and each hand-over down a column
            steps = max(1.0, p.resorption_days / p.dt_days - math.ceil(depth_vox) - self.rings)
            erode_q16 = round(depth / steps * _Q16)
            # formation: a column refills voxel by voxel with a one-step hand-over between voxels, so the
            # apposition rate is raised to lay f * E down in f * E / MAR days nonetheless
            fill_days = p.formation_efficiency * p.erosion_depth_um / p.mar_um_per_day
            latency = math.ceil(p.formation_efficiency * depth_vox) * p.dt_days
            speedup = fill_days / (fill_days - latency) if fill_days > 2 * latency else 2.0
            form_q16 = round(p.mar_um_per_day * p.dt_days / self.h * 255 * speedup * _Q16)
            rev = round(p.reversal_days / p.dt_days)
            f_q16 = round(p.formation_efficiency * _Q16)
            self._cache[key] = (depth, erode_q16, form_q16, rev, f_q16)
        return self._cache[key]

    def modeling_thr(self, step: int) -> int:
        """The physiology's modeling-based formation of ``step`` as a 32-bit threshold (0: none).

        A function of the step alone (of its day's parameters), so a resumed run installs the
        same table as an unbroken one.
        """
        p = self.params_at(step)
        key = id(p)
        if key not in self._model_cache:
            self._model_cache[key] = modeling_threshold(p.modeling_um_per_day, self.h, p.dt_days)
        return self._model_cache[key]

    def footprint_estimate(self) -> float:
        """Mean surface voxels recruited per seed, from the counters so far (with a flat prior)."""
        return (self.recruited_total + PRIOR_SEEDS * self.footprint0) / (self.seeds_total + PRIOR_SEEDS)

    def rate_per_step(self, p: RemodelingParams) -> float:
        """Surface fraction to recruit per step: the request plus the catch-up of the deficit.

        >>> s = Schedule([RemodelingParams(acf_per_year=0.36525)], voxel_size_um=20.0)
        >>> round(s.rate_per_step(s.daily[0]), 9)
        0.001
        >>> s.deficit_q16, s.surface_mean = 9 * 65536, 1000  # 9 voxels short on a 1000-voxel surface
        >>> round(s.rate_per_step(s.daily[0]), 9)  # + 9 / 1000 / 90 days
        0.0011
        >>> s.catch_up = False  # the request alone (to measure what the catch-up does)
        >>> round(s.rate_per_step(s.daily[0]), 9)
        0.001
        """
        req = p.acf_per_year * p.dt_days / DAYS_PER_YEAR
        if not self.catch_up or self.surface_mean <= 0 or self.deficit_q16 == 0:
            return req
        catch_up = self.deficit_q16 / _Q16 / self.surface_mean * p.dt_days / CATCH_UP_DAYS
        return req + min(req, max(-req, catch_up))

    def inputs(self, step: int, *, seed: int) -> StepInputs:
        """The integer inputs of ``step``; advances the rate accumulators (call once per step, in order)."""
        p = self.params_at(step)
        depth, erode_q16, form_q16, rev, f_q16 = self._static(p)
        self.erode_acc += erode_q16
        erode, self.erode_acc = self.erode_acc >> 16, self.erode_acc & 0xFFFF
        self.form_acc += form_q16
        form, self.form_acc = self.form_acc >> 16, self.form_acc & 0xFFFF
        prob = self.rate_per_step(p) / self.footprint_estimate()
        act_thr = min(0xFFFFFFFF, int(prob * 2.0**32))
        return StepInputs(
            act_thr=act_thr,
            erode=min(erode, 0xFFFFFFFF),
            depth=depth,
            form=min(form, 0xFFFFFFFF),
            rev_steps=rev,
            f_q16=min(0xFFFFFFFF, (f_q16 * self.formation_q16) >> 16),
            lat0=self.lat0,
            cost1=self.costs[0],
            cost2=self.costs[1],
            cost3=self.costs[2],
            seed_lo=seed_words(seed)[0],
            seed_hi=seed_words(seed)[1],
            step=step & 0xFFFFFFFF,
            mech_on=int(self.mech_on),
            mod_on=int(self.mod_on),
        )

    def inputs_for_step(self, step: int, *, seed: int, drain: Callable[[], None] | None = None) -> StepInputs:
        """The protocol of every driver: every ``cal_every`` steps (16 days), read the counters and recalibrate.

        ``drain`` (if given) must feed the counters of the steps run so far to
        :meth:`add_counters` before the calibration.
        """
        if step % self.cal_every == 0:
            if drain is not None:
                drain()
            self.calibrate()
        return self.inputs(step, seed=seed)

    def add_counters(self, rows: np.ndarray, first_step: int | None = None) -> None:
        """Add per-step counter rows (of steps already run) to the pending calibration sums.

        ``first_step`` is the step of the first row (default: the step after the last row added).
        """
        if first_step is not None:
            self.counted_steps = int(first_step)
        if len(rows):
            rows = np.asarray(rows, np.uint64)
            self.pending += rows.sum(axis=0)
            surf = COUNTERS.index("surface")
            for i, n_surf in enumerate(rows[:, surf].tolist()):
                p = self.params_at(self.counted_steps + i)
                self.pending_req_q16 += round(p.acf_per_year * p.dt_days / DAYS_PER_YEAR * n_surf * _Q16)
            self.counted_steps += len(rows)
            self.pending_steps += len(rows)

    def calibrate(self) -> None:
        """Fold the pending counters into the calibration (call when ``step % cal_every == 0``)."""
        self.recruited_total += int(self.pending[COUNTERS.index("recruited")])
        self.seeds_total += int(self.pending[COUNTERS.index("seeds")])
        recruited = int(self.pending[COUNTERS.index("recruited")])
        self.deficit_q16 += self.pending_req_q16 - recruited * _Q16
        if self.pending_steps:
            self.surface_mean = int(self.pending[COUNTERS.index("surface")]) // self.pending_steps
        self.pending[:] = 0
        self.pending_req_q16 = 0
        self.pending_steps = 0

    # -------------------------------------------------------- checkpoint --
    def get_state(self) -> dict[str, Any]:
        return {
            "erode_acc": self.erode_acc,
            "form_acc": self.form_acc,
            "recruited_total": self.recruited_total,
            "seeds_total": self.seeds_total,
            "pending": [int(v) for v in self.pending],
            "counted_steps": self.counted_steps,
            "pending_req_q16": self.pending_req_q16,
            "pending_steps": self.pending_steps,
            "deficit_q16": self.deficit_q16,
            "surface_mean": self.surface_mean,
            "mech_on": self.mech_on,
            "mod_on": self.mod_on,
            "formation_q16": self.formation_q16,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.erode_acc = int(state["erode_acc"])
        self.form_acc = int(state["form_acc"])
        self.recruited_total = int(state["recruited_total"])
        self.seeds_total = int(state["seeds_total"])
        pending = np.array(state["pending"], np.uint64)
        self.pending = np.zeros(len(COUNTERS), np.uint64)  # older checkpoints: one counter fewer
        self.pending[: len(pending)] = pending
        # checkpoints written before the deficit catch-up resume without it
        self.counted_steps = int(state.get("counted_steps", 0))
        self.pending_req_q16 = int(state.get("pending_req_q16", 0))
        self.pending_steps = int(state.get("pending_steps", 0))
        self.deficit_q16 = int(state.get("deficit_q16", 0))
        self.surface_mean = int(state.get("surface_mean", 0))
        self.mech_on = int(state.get("mech_on", 0))
        self.mod_on = int(state.get("mod_on", 0))
        self.formation_q16 = int(state.get("formation_q16", 65536))
