"""CA-level check of issue 13 on the real sample: does a cause remove trabeculae or thin them?

Runs scenarios through the CA on a central crop of the real human sample
(``bonesim.io.sample.real_sample``, 19.5 µm), with and without
mechanoregulation (and, with it, with and without modeling-based formation),
and prints JSON: the morphometry of day 0 (end of the spin-up) and of the last
frame, the enclosed marrow cavities (artefactual pores), bone particles and
purified Conn.D, the elements cut since day 0, and each scenario's change net
of the healthy run of the same seed and mechanics setting.

``--voxel-um`` resamples the crop (the same physical box, ``--size`` voxels of
19.5 µm) onto other voxels and re-binarises it at half the bone level: the same
bone seen at another resolution. ``physiology`` is the physiology model's BV
change of the scenario over the run, net of healthy, for its reference bone
(its `remodeling.bs_bv_per_mm`, 13.33 /mm by default), and scaled to the sample's day-0 BS/BV: the loss of a
remodeling imbalance is Ac.f · BS · E · (1 − f), proportional to the surface per
volume (first order), so ``ca_over_physiology`` compares like with like.
``--psf-um`` also measures day 0 and the end through a scanner's Gaussian PSF
(``bonesim analyze --psf-um``): ``day0_psf``, ``end_psf``, ``net_pct_psf``.

    python scripts/validate_ca_mechanics.py --size 128 --years 5 --seeds 0 > out.json
    python scripts/validate_ca_mechanics.py --mechanics on --modeling both > out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonesim import Volume
from bonesim.ca.engine import simulate
from bonesim.ca.mechano import MechanoParams
from bonesim.io.importers import resample
from bonesim.io.result import Result
from bonesim.io.sample import VOXEL_UM, real_sample
from bonesim.morphometry.difference import cut_elements, difference_masks
from bonesim.morphometry.indices import morphometry
from bonesim.morphometry.scanner import scanner_view
from bonesim.physiology.model import scenario_table
from bonesim.volume import BONE_LEVEL

#: sigma of the scanner PSF of the extra measurement [µm] (0: none)
PSF_UM = [0.0]
LOCAL_GAIN = [MechanoParams().local_gain]
#: extra MechanoParams fields of every mechanics run (from the command line)
MECH_EXTRA: dict = {}
INDICES = ("bv_tv", "bs", "tb_th", "tb_sp", "tb_n", "conn_d")
KEYS = ("bv_tv", "tb_th_um", "tb_sp_um", "tb_n_per_mm", "conn_d_per_mm3", "conn_d_purified_per_mm3")


def enclosed_cavities(bone: np.ndarray) -> tuple[int, int]:
    """(count, voxels) of marrow components (6-connected) that touch no face of the volume."""
    marrow = bone < 128
    lab, n = ndimage.label(marrow)
    border = np.unique(
        np.concatenate([lab[[0, -1]].ravel(), lab[:, [0, -1]].ravel(), lab[:, :, [0, -1]].ravel()])
    )
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    inner = np.setdiff1d(np.arange(1, n + 1), border)
    return int(inner.size), int(sizes[inner].sum())


def describe(bone: np.ndarray, voxel_um: float) -> dict[str, float]:
    m = morphometry(bone, voxel_size_um=voxel_um, indices=INDICES)
    out = {k: float(m[k]) for k in (*KEYS, "bs_bv_per_mm")}
    out["n_particles"] = int(m["n_particles"])
    out["cavities"], out["cavity_voxels"] = enclosed_cavities(bone)
    return out


def run(
    crop: np.ndarray,
    scenario: str,
    years: float,
    seed: int,
    mech: bool,
    spinup: float,
    work: Path,
    modeling: bool = False,
    voxel_um: float = VOXEL_UM,
) -> dict:
    st = scenario_table(scenario, years)
    out = work / f"{scenario}-{seed}-{int(mech)}{int(modeling)}-{voxel_um:g}.h5"
    t0 = time.perf_counter()
    r = simulate(
        Volume(crop, voxel_size_um=voxel_um),
        years=years,
        seed=seed,
        backend="numpy",
        spinup_years=spinup,
        save_every=365.25,
        scenario=st,
        out=out,
        mechanics=MechanoParams(local_gain=LOCAL_GAIN[0], modeling=modeling, **MECH_EXTRA) if mech else None,
    )
    wall = time.perf_counter() - t0
    res = Result.open(out)
    first, last = res.frame(0), res.frame(res.n_frames - 1)
    end = describe(last, voxel_um)
    end["cut_elements"] = cut_elements(difference_masks(first, last).perforated)
    psf = {}
    if PSF_UM[0] > 0:  # the same frames as a scanner would image them (bonesim analyze --psf-um)
        f0, f1 = (scanner_view(b, voxel_um, PSF_UM[0]) for b in (first, last))
        psf = {"day0_psf": describe(f0, voxel_um), "end_psf": describe(f1, voxel_um)}
        psf["end_psf"]["cut_elements"] = cut_elements(difference_masks(f0, f1).perforated)
    return {
        "scenario": scenario,
        "seed": seed,
        "mechanics": mech,
        "modeling": modeling,
        "wall_s": wall,
        "mechanics_s": r.timings.get("mechanics_s", 0.0),
        "voxel_um": voxel_um,
        "physiology_bv_pct": 100.0 * (float(st.table["bv_rel"][-1]) - 1.0),
        "physiology_bs_bv_per_mm": float(st.scenario.values["remodeling"]["bs_bv_per_mm"]),
        "day0": describe(first, voxel_um),
        "end": end,
        **psf,
    }


def net(rows: list[dict]) -> list[dict]:
    """Each scenario's % change (end vs day 0) minus the healthy run's with the same seed and mechanics."""
    base = {
        (r["seed"], r["mechanics"], r["modeling"], r["voxel_um"]): r
        for r in rows
        if r["scenario"] == "healthy-adult"
    }
    out = []
    for r in rows:
        h = base.get((r["seed"], r["mechanics"], r["modeling"], r["voxel_um"]))
        d, dp = {}, {}
        for k in KEYS:
            own = 100 * (r["end"][k] / r["day0"][k] - 1)
            d[k] = own - (100 * (h["end"][k] / h["day0"][k] - 1) if h is not None and r is not h else 0.0)
            if "end_psf" in r:
                own = 100 * (r["end_psf"][k] / r["day0_psf"][k] - 1)
                hp = 100 * (h["end_psf"][k] / h["day0_psf"][k] - 1) if h is not None and r is not h else 0.0
                dp[k] = own - hp
        phys = r["physiology_bv_pct"] - (h["physiology_bv_pct"] if h is not None and r is not h else 0.0)
        phys_sample = phys * r["day0"]["bs_bv_per_mm"] / r["physiology_bs_bv_per_mm"]
        out.append(
            {
                "scenario": r["scenario"],
                "seed": r["seed"],
                "mechanics": r["mechanics"],
                "modeling": r["modeling"],
                "voxel_um": r["voxel_um"],
                "net_pct": d,
                **({"net_pct_psf": dp, "cut_elements_psf": r["end_psf"]["cut_elements"]} if dp else {}),
                "cut_elements": r["end"]["cut_elements"],
                "physiology_bv_pct": phys,
                "physiology_bv_pct_sample_bs_bv": phys_sample,
                "ca_over_physiology": d["bv_tv"] / phys_sample if abs(phys_sample) > 1e-6 else float("nan"),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--years", type=float, default=5.0)
    ap.add_argument("--spinup-years", type=float, default=1.0)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--voxel-um", default=str(VOXEL_UM), help="comma-separated voxel sizes (resampled)")
    ap.add_argument("--scenarios", default="healthy-adult,postmenopausal")
    ap.add_argument("--psf-um", type=float, default=0.0, help="also measure through a scanner PSF (µm)")
    ap.add_argument("--mechanics", choices=("on", "off", "both"), default="both")
    ap.add_argument("--local-gain", type=float, default=MechanoParams().local_gain)
    ap.add_argument("--modeling", choices=("on", "off", "both"), default="off", help="with mechanics on")
    ap.add_argument("--modeling-threshold", type=float, default=MechanoParams().modeling_threshold)
    ap.add_argument("--modeling-rate", type=float, default=MechanoParams().modeling_rate_per_day)
    args = ap.parse_args()
    LOCAL_GAIN[0] = args.local_gain
    PSF_UM[0] = args.psf_um
    MECH_EXTRA.update(modeling_threshold=args.modeling_threshold, modeling_rate_per_day=args.modeling_rate)
    full = real_sample()
    lo = (full.shape[0] - args.size) // 2
    crop = np.ascontiguousarray(full[lo : lo + args.size, lo : lo + args.size, lo : lo + args.size])
    crops = {}
    for h in (float(v) for v in args.voxel_um.split(",")):
        c = crop if h == VOXEL_UM else resample(crop, (VOXEL_UM,) * 3, h)
        crops[h] = np.where(c > BONE_LEVEL, 255, 0).astype(np.uint8)
    mechs = {"on": [True], "off": [False], "both": [False, True]}[args.mechanics]
    models = {"on": [True], "off": [False], "both": [False, True]}[args.modeling]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in (int(s) for s in args.seeds.split(",")):
            for h, c in crops.items():
                for mech in mechs:
                    for model in models if mech else [False]:
                        for scen in args.scenarios.split(","):
                            rows.append(
                                run(c, scen, args.years, seed, mech, args.spinup_years, Path(work), model, h)
                            )
                            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {"size": args.size, "voxel_um": VOXEL_UM, "years": args.years, "runs": rows, "net": net(rows)},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
