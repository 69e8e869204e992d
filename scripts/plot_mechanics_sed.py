"""Picture for docs/mechanics.md: SED slice of the real sample under uniaxial z compression.

Solves the real sample (data/lhdl_3155_D_4_bc: σ = 1, threshold 63, largest
component; E0 = 10 GPa, ν = 0.3, 1 % compression along z) and saves a slice
normal to x through the centre with the strain-energy density on a log scale.

    PYTHONPATH=. python scripts/plot_mechanics_sed.py [--crop N] [-o docs/images/mechanics-sed.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_mechanics import VOXEL_UM, real_sample  # noqa: E402

from bonesim.mechanics import solve, von_mises_strain_map  # noqa: E402
from bonesim.mechanics.operator import StiffnessOperator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "mechanics-sed.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    bone = real_sample(args.crop)
    r = solve(bone, "z", voxel_size_um=VOXEL_UM, backend="numpy", progress=True)
    vm = von_mises_strain_map(StiffnessOperator(r.mesh, 0.3), r.displacement)
    x = bone.shape[2] // 2
    sed = r.sed[:, :, x] * 1e3  # MPa → kJ/m³
    bonemask = bone[:, :, x] > 0
    ext = [0, bone.shape[1] * VOXEL_UM / 1000, 0, bone.shape[0] * VOXEL_UM / 1000]
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=120)
    pos = sed[bonemask]
    lo, hi = np.percentile(pos, [2, 99.8])
    img = np.ma.masked_where(~bonemask, np.clip(sed, lo, hi))
    ax.imshow(np.full(sed.shape, 0.15), cmap="gray", vmin=0, vmax=1, origin="lower", extent=ext)
    im = ax.imshow(
        img, cmap="inferno", norm=LogNorm(lo, hi), origin="lower", extent=ext, interpolation="nearest"
    )
    ax.set_xlabel("y [mm]")
    ax.set_ylabel("z [mm] (load axis)")
    ax.set_title(
        f"SED, 1 % compression along z; slice x = {x}\nE_app = {r.apparent_modulus_mpa:.0f} MPa, "
        f"BV/TV = {(bone > 0).mean():.3f}"
    )
    fig.colorbar(im, ax=ax, label="strain-energy density [kJ/m³]")
    fig.tight_layout()
    fig.savefig(args.output)
    stats = {
        "output": args.output,
        "shape": list(bone.shape),
        "apparent_modulus_mpa": r.apparent_modulus_mpa,
        "iterations": r.iterations,
        "seconds": r.seconds,
        "sed_kj_m3_percentiles_bone": dict(
            zip(
                ["p5", "p50", "p95", "p99"],
                np.percentile(r.sed[bone > 0] * 1e3, [5, 50, 95, 99]).tolist(),
                strict=True,
            )
        ),
        "von_mises_strain_percentiles_bone": dict(
            zip(
                ["p5", "p50", "p95", "p99"],
                np.percentile(vm[bone > 0], [5, 50, 95, 99]).tolist(),
                strict=True,
            )
        ),
        "strain_energy_j": r.strain_energy_j,
        "half_f_u_j": r.external_work_j,
    }
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
