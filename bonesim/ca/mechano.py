"""Mechanoregulation of the CA: where BMUs start follows the strain energy the osteocytes sense.

Every ``interval_days`` the micro-FE (:func:`bonesim.mechanics.solve`) is
solved on the current bone under the scenario's habitual load, and the result
enters the CA as integers only, so NumPy and CUDA stay bit-identical:

1. **Load.** Uniaxial compression along ``axis`` under *force* control: the
   habitual force is the reaction force of the first solve (the run's input
   bone at ``habitual_strain``), and each later solve applies ``magnitude ×``
   that force (1 habitual, < 1 disuse, > 1 exercise). As bone is lost under a
   constant force, its strain energy rises: the feedback of the mechanostat.
2. **Sensing.** The strain-energy density (SED) of the bone voxels is summed
   by osteocytes over a sensing distance with a Gaussian kernel of width
   ``sensing_um`` (marrow contributes nothing), as in Huiskes et al. 2000 and
   Ruimerman et al. 2005, where an osteocyte's influence decays over ~100 µm.
   Thin and unloaded trabeculae sense less than thick, loaded ones.
3. **Local targeting** (where): a surface voxel's signal relative to the mean
   of all quiescent surface voxels, r = S / S̄, becomes a class
   ``m = round(64 r)`` (0..255). Class weights follow a lazy-zone rule
   (Frost's mechanostat; the SED lazy zone of Schulte et al. 2013 and the
   local-SED-to-remodeling-site link in humans of Christen et al. 2014):
   below ``1 − lazy_zone`` activation is raised by up to ``1 + local_gain``,
   inside the lazy zone it is 1, above ``1 + lazy_zone`` it is damped as
   ``1 / (1 + (r − 1 − lazy_zone))``. The weights are divided by their mean
   over the current surface, so this step moves BMUs, it does not add any:
   the systemic Ac.f (physiology) stays what it is.
4. **Global level** (how much, optional): the mean surface signal relative to
   the habitual reference, X = S̄ / S̄_ref. Below ``1 − lazy_zone`` (disuse) the
   activation of every surface can be raised by up to ``1 + disuse_activation_gain``
   and the formation efficiency of every BMU lowered by up to
   ``disuse_formation_gain``; within or above it both are 1. Off by default:
   the systemic disuse response lives in the physiology (see the parameters).
5. **Modeling-based formation** (``modeling``): remodeling only removes and
   refills; this step also *adds* bone where the load is high. A marrow voxel
   that touches quiescent bone across a face and whose absolute signal,
   S / S̄_ref = (class / 64) · X, exceeds ``modeling_threshold`` starts forming
   one voxel of bone with a per-day probability rising linearly from 0 at the
   threshold to ``modeling_rate_per_day`` at twice it (Frost's modeling
   threshold of the mechanostat, well above the habitual strain; formation
   where the signal exceeds the upper bound of the lazy zone in Huiskes et
   al. 2000 and Schulte et al. 2013; modeling-based formation on quiescent
   adult surfaces, Kobayashi et al. 2003). The per-day probability becomes a
   per-step one, 1 − (1 − p)^dt, so the rate does not depend on the step. As
   bone is added under a constant force its signal falls below the threshold
   and modeling stops: the feedback that removal alone lacked.

The lookup table (256 weights in 8.8 fixed point, then 256 modeling thresholds) and the formation factor
(16.16) are integers computed on the host from the FE result; both, the class
field and the reference (force, S̄_ref) are saved in every checkpoint, so a
resumed run continues bit for bit.

References
----------
.. [1] Huiskes R, Ruimerman R, van Lenthe GH, Janssen JD. Effects of mechanical
   forces on maintenance and adaptation of form in trabecular bone. Nature
   405:704-706 (2000).
.. [2] Ruimerman R, Hilbers P, van Rietbergen B, Huiskes R. A theoretical
   framework for strain-related trabecular bone maintenance and adaptation.
   J Biomech 38:931-941 (2005).
.. [3] Schulte FA et al. Strain-adaptive in silico modeling of bone adaptation
   - a computer simulation validated by in vivo micro-computed tomography data.
   Bone 52:485-492 (2013).
.. [4] Christen P et al. Bone remodelling in humans is load-driven but not
   lazy. Nat Commun 5:4855 (2014).
.. [5] Frost HM. Bone "mass" and the "mechanostat": a proposal. Anat Rec
   219:1-9 (1987); Bone's mechanostat: a 2003 update. Anat Rec 275A:1081-1101 (2003).
.. [6] Kobayashi S et al. Trabecular minimodeling in human iliac bone. Bone
   32:163-169 (2003).
(All from memory; the numbers below are choices stated as such, not fits.)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from bonesim._validation import check_in_range, check_positive
from bonesim.ca.kernel_abi import MECH_WEIGHT_ONE, N_MECH_CLASSES, N_MECH_TABLE
from bonesim.errors import InputError

log = logging.getLogger(__name__)

#: Signal class of a surface voxel whose signal equals the surface mean.
CLASS_OF_MEAN = 64
_Q16 = 65536


@dataclass(frozen=True)
class MechanoParams:
    """Settings of the CA's mechanoregulation (see the module docstring).

    Parameters
    ----------
    interval_days : float
        Days between FE solves on the current bone (30: the CA moves a few µm
        of bone a month, and the solve is the expensive part).
    axis : {'z', 'y', 'x'}
        Axis of the habitual uniaxial load.
    habitual_strain : float
        Apparent strain of the input bone under the habitual force (0.1 %,
        within the 0.04-0.3 % peak strains measured in human bone in vivo).
    sensing_um : float
        Width σ of the osteocytes' sensing kernel [µm] (100 µm, [2]_).
    lazy_zone : float
        Half-width of the lazy zone as a fraction of the reference signal (0.25).
    local_gain : float
        Extra activation of a fully unloaded surface relative to the lazy zone (3: 4×).
    disuse_activation_gain, disuse_formation_gain : float
        Raise of activation and loss of formation efficiency at zero load
        (e.g. 1.0: Ac.f doubles; 0.3: BMUs refill 70 %), scaled linearly from
        the lower edge of the lazy zone. 0 by default: a scenario's
        ``[loading]`` already drives the systemic disuse response in the
        physiology (osteocyte RANKL and osteoblast apoptosis, fitted to
        bed-rest histology), which reaches the CA through Ac.f and f; set these
        only with a daily table that has no such response, or the disuse is
        counted twice.
    modeling : bool
        Modeling-based formation on loaded surfaces (point 5 of the module docstring).
        Off by default: on the real sample it kept healthy mass within 0.5 %/yr but did
        not reduce the drift of Conn.D (docs/model.md, Mechanoregulation, measured).
    modeling_threshold : float
        Absolute signal, relative to the habitual surface mean S̄_ref, above which
        a surface marrow voxel may start forming (2: twice the habitual mean SED,
        about 1.4 × the habitual strain since SED ∝ strain²; a choice, well above
        the lazy zone's 1 + ``lazy_zone``, after Frost's modeling threshold).
    modeling_rate_per_day : float
        Probability per day that such a voxel starts, reached at twice the
        threshold (0.01: a fully loaded surface gains one 20 µm voxel layer in
        about 100 days, ~0.2 µm/day, below the 0.5-1 µm/day of an osteoblast team;
        a choice).
    tol : float
        Relative residual of the FE solves (a signal, not a modulus: 1e-4).
    fe_coarsen : int
        Solve the FE on bone averaged over blocks of this many voxels per edge
        (1: the CA's own grid; 0, the default: ``max(1, floor(50 µm / voxel))``,
        FE elements of about 40-50 µm). The SED of a coarse element is given to
        its bone voxels. On the real sample (128³ at 19.5 µm) 2 instead of 1 gave
        signal classes with correlation 0.999 (mean |Δclass| 1.6 of 0..255) in
        4.9 s instead of 27.8 s.
    """

    interval_days: float = 30.0
    axis: str = "z"
    habitual_strain: float = 0.001
    sensing_um: float = 100.0
    lazy_zone: float = 0.25
    local_gain: float = 3.0
    disuse_activation_gain: float = 0.0
    disuse_formation_gain: float = 0.0
    modeling: bool = False
    modeling_threshold: float = 2.0
    modeling_rate_per_day: float = 0.01
    tol: float = 1e-4
    fe_coarsen: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.axis not in ("z", "y", "x"):
            raise InputError(f"mechanics `axis` must be 'z', 'y' or 'x', got {self.axis!r}")
        set_(self, "interval_days", check_positive(self.interval_days, name="interval_days"))
        set_(
            self, "habitual_strain", check_in_range(self.habitual_strain, 1e-6, 0.05, name="habitual_strain")
        )
        set_(self, "sensing_um", check_positive(self.sensing_um, name="sensing_um"))
        set_(self, "lazy_zone", check_in_range(self.lazy_zone, 0.0, 0.9, name="lazy_zone"))
        set_(self, "local_gain", check_in_range(self.local_gain, 0.0, 50.0, name="local_gain"))
        set_(
            self,
            "disuse_activation_gain",
            check_in_range(self.disuse_activation_gain, 0.0, 20.0, name="disuse_activation_gain"),
        )
        set_(
            self,
            "disuse_formation_gain",
            check_in_range(self.disuse_formation_gain, 0.0, 1.0, name="disuse_formation_gain"),
        )
        if not isinstance(self.modeling, bool):
            raise InputError(f"`modeling` must be true or false, got {self.modeling!r}")
        set_(
            self,
            "modeling_threshold",
            check_in_range(self.modeling_threshold, 1.0, 3.9, name="modeling_threshold"),
        )
        set_(
            self,
            "modeling_rate_per_day",
            check_in_range(self.modeling_rate_per_day, 0.0, 1.0, name="modeling_rate_per_day"),
        )
        set_(self, "tol", check_in_range(self.tol, 1e-12, 0.1, name="tol"))
        if (
            isinstance(self.fe_coarsen, bool)
            or not isinstance(self.fe_coarsen, int)
            or not 0 <= self.fe_coarsen <= 8
        ):
            raise InputError(
                f"`fe_coarsen` must be an integer in [0, 8] (0: automatic), got {self.fe_coarsen!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def interval_steps(self, dt_days: float) -> int:
        """FE solves every this many steps (at least 1)."""
        return max(1, round(self.interval_days / dt_days))


def local_weight(r: np.ndarray, p: MechanoParams) -> np.ndarray:
    """Activation weight of relative signal ``r`` (1 in the lazy zone; more below it, less above it)."""
    r = np.asarray(r, np.float64)
    lo, hi = 1.0 - p.lazy_zone, 1.0 + p.lazy_zone
    below = 1.0 + p.local_gain * np.clip(lo - r, 0.0, lo) / max(lo, 1e-12)
    above = 1.0 / (1.0 + np.maximum(r - hi, 0.0))
    return np.where(r < lo, below, np.where(r > hi, above, 1.0))


def disuse_factors(x: float, p: MechanoParams) -> tuple[float, float]:
    """(activation factor, formation factor) of a mean signal ``x`` relative to the habitual one."""
    lo = 1.0 - p.lazy_zone
    u = min(max(lo - float(x), 0.0), lo) / max(lo, 1e-12)  # 0 in/above the lazy zone, 1 at zero load
    return 1.0 + p.disuse_activation_gain * u, 1.0 - p.disuse_formation_gain * u


def modeling_table(x: float, p: MechanoParams, dt_days: float) -> np.ndarray:
    """Modeling threshold of each signal class (uint32: a draw below it starts formation this step).

    Class ``m`` is the absolute signal (m / 64) · x relative to the habitual reference; its
    per-day probability rises linearly from 0 at ``modeling_threshold`` to
    ``modeling_rate_per_day`` at twice it, and 1 − (1 − p)^dt is the chance per step of
    ``dt_days``. All zero when modeling is off.

    >>> p = MechanoParams(modeling=True, modeling_threshold=2.0, modeling_rate_per_day=0.01)
    >>> t = modeling_table(1.0, p, 1.0)
    >>> int(t[128]), int(t[192]), round(int(t[255]) / 2**32, 6)  # at, 1.5 × and ~2 × the threshold
    (0, 21474836, 0.009922)
    """
    out = np.zeros(N_MECH_CLASSES, np.uint32)
    if not p.modeling or p.modeling_rate_per_day <= 0.0 or x <= 0.0:
        return out
    s_abs = np.arange(N_MECH_CLASSES) / CLASS_OF_MEAN * float(x)
    u = np.clip(s_abs / p.modeling_threshold - 1.0, 0.0, 1.0)
    p_step = 1.0 - (1.0 - p.modeling_rate_per_day * u) ** float(dt_days)
    return np.minimum(np.rint(p_step * 2.0**32), 2.0**32 - 1).astype(np.uint32)


def coarsen(bone: np.ndarray, k: int) -> np.ndarray:
    """Mean bone fraction over k³ blocks (uint8; the volume is zero-padded to a multiple of k)."""
    if k == 1:
        return bone
    pad = [(0, -n % k) for n in bone.shape]
    b = np.pad(bone, pad).astype(np.float64)
    z, y, x = (n // k for n in b.shape)
    return np.rint(b.reshape(z, k, y, k, x, k).mean(axis=(1, 3, 5))).astype(np.uint8)


def refine(field: np.ndarray, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Each coarse value on its k³ fine voxels, cropped to ``shape``."""
    if k == 1:
        return field
    out = field.repeat(k, 0).repeat(k, 1).repeat(k, 2)
    return out[: shape[0], : shape[1], : shape[2]]


def surface_mask(bone: np.ndarray) -> np.ndarray:
    """Bone voxels with a marrow voxel among their 26 neighbours (the remodeling surface)."""
    solid = bone > 0
    return solid & ndimage.binary_dilation(~solid, structure=np.ones((3, 3, 3), bool))


def sensed_signal(sed: np.ndarray, voxel_size_um: float, sensing_um: float) -> np.ndarray:
    """SED summed by osteocytes with a Gaussian kernel of width ``sensing_um`` (marrow contributes 0)."""
    sigma = sensing_um / float(voxel_size_um)
    return ndimage.gaussian_filter(np.asarray(sed, np.float64), sigma, mode="constant", cval=0.0)


@dataclass
class MechanoUpdate:
    """What one FE solve hands the CA: class field, class weights, formation factor, and diagnostics."""

    mech: np.ndarray
    lut: np.ndarray
    formation_q16: int
    mean_signal_rel: float
    activation_factor: float
    formation_factor: float
    iterations: int
    seconds: float


class Mechanoregulation:
    """The state of a run's mechanoregulation: the habitual reference and the latest class field."""

    def __init__(self, params: MechanoParams, voxel_size_um: float, dt_days: float) -> None:
        self.p = params
        self.h = float(voxel_size_um)
        self.every = params.interval_steps(dt_days)
        self.dt = float(dt_days)
        self.force_ref: float | None = None  # habitual reaction force [N]
        self.signal_ref: float | None = None  # mean surface signal at the habitual force [MPa]
        self.mech: np.ndarray | None = None
        self.lut: np.ndarray | None = None
        self.formation_q16 = _Q16
        self.last: MechanoUpdate | None = None

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def update(self, bone: np.ndarray, magnitude: float = 1.0) -> MechanoUpdate:
        """Solve the FE on ``bone`` (uint8) under ``magnitude`` × the habitual force; new field and weights."""
        from bonesim.mechanics import Uniaxial, solve

        if not 0.0 <= magnitude <= 10.0:
            raise InputError(f"load magnitude must lie in [0, 10], got {magnitude}")
        p = self.p
        # Cold solves only: a warm start (solve(x0=...)) would make the field depend on whether the
        # run was resumed (the converged answer differs within tol), and resume must be bit-identical.
        k = p.fe_coarsen or max(1, int(50.0 // self.h))
        load = Uniaxial(p.axis, strain=p.habitual_strain)
        res = solve(coarsen(bone, k), load, voxel_size_um=self.h * k, tol=p.tol, backend="numpy")
        force = abs(float(res.reaction_force_n or 0.0))
        sed = np.zeros(bone.shape, np.float64)
        if res.sed is not None:
            sed = refine(np.asarray(res.sed, np.float64), k, bone.shape) * (bone > 0)
        if self.force_ref is None:
            if force <= 0.0:
                raise InputError(
                    "the input bone carries no load along the mechanics axis: no bone path joins its faces"
                )
            self.force_ref = force
        habitual = (self.force_ref / force) ** 2 if force > 0 else 0.0  # SED ∝ force²
        surf = surface_mask(bone)
        signal_hab = sensed_signal(sed * habitual, self.h, p.sensing_um)
        mean_hab = float(signal_hab[surf].mean()) if surf.any() else 0.0
        if self.signal_ref is None:  # the habitual signal of the input bone, whatever the first day's load
            self.signal_ref = mean_hab
        signal, mean = signal_hab * magnitude**2, mean_hab * magnitude**2
        x = mean / self.signal_ref if self.signal_ref and self.signal_ref > 0 else 0.0
        act, form = disuse_factors(x, p)
        rel = signal / mean if mean > 0 else np.zeros_like(signal)
        mech = np.clip(np.rint(CLASS_OF_MEAN * rel), 0, N_MECH_CLASSES - 1).astype(np.uint8)
        classes = np.arange(N_MECH_CLASSES) / CLASS_OF_MEAN
        w = local_weight(classes, p)
        counts = np.bincount(mech[surf], minlength=N_MECH_CLASSES) if surf.any() else np.ones(N_MECH_CLASSES)
        norm = float((w * counts).sum() / max(counts.sum(), 1))
        lut = np.rint(MECH_WEIGHT_ONE * act * w / norm).astype(np.uint32)
        lut = np.concatenate([lut, modeling_table(x, p, self.dt)])  # the rule's lut[256 + class]
        self.mech, self.lut = mech, lut
        self.formation_q16 = round(form * _Q16)
        self.last = MechanoUpdate(mech, lut, self.formation_q16, x, act, form, res.iterations, res.seconds)
        log.info(
            "mechanics: E solve %d it in %.1f s; mean surface signal %.3g × habitual; activation ×%.2f, formation ×%.2f",
            res.iterations,
            res.seconds,
            x,
            act,
            form,
        )
        return self.last

    # -- checkpoints --------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Scalars (JSON) and arrays of the state; ``{}`` before the first solve."""
        if self.mech is None:
            return {}
        return {
            "attrs": {
                "force_ref": self.force_ref,
                "signal_ref": self.signal_ref,
                "formation_q16": self.formation_q16,
            },
            "arrays": {"mech": self.mech, "lut": self.lut},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        a = state["attrs"]
        self.force_ref = None if a["force_ref"] is None else float(a["force_ref"])
        self.signal_ref = None if a["signal_ref"] is None else float(a["signal_ref"])
        self.formation_q16 = int(a["formation_q16"])
        mech, lut = state["arrays"]["mech"], state["arrays"]["lut"]
        if lut.shape == (N_MECH_CLASSES,):  # written before modeling: no modeling thresholds
            lut = np.concatenate([lut, np.zeros(N_MECH_CLASSES, lut.dtype)])
        if (
            lut.shape != (N_MECH_TABLE,)
            or mech.dtype != np.uint8
            or not math.isfinite(self.signal_ref or 0.0)
        ):
            raise InputError.fix(
                "the checkpoint's mechanics state is malformed",
                "start over with overwrite=True",
                "start over with --overwrite",
            )
        self.mech = np.ascontiguousarray(mech, np.uint8)
        self.lut = np.ascontiguousarray(lut, np.uint32)
