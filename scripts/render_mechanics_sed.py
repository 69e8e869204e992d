"""Picture for docs/mechanics.md: the real sample's bone surface coloured by SED (`render --field sed`).

Writes the central crop of the real sample (data/lhdl_3155_D_4_bc: σ = 1,
threshold 63, largest component) as a volume file, then runs the commands a
user would: ``bonesim mechanics --axis z --save-sed`` (E0 = 10 GPa, ν = 0.3,
1 % compression) and ``bonesim render --field sed``.

    PYTHONPATH=. python scripts/render_mechanics_sed.py [--crop 128] [-o docs/images/mechanics-sed-render.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_mechanics import VOXEL_UM, real_sample  # noqa: E402

from bonesim.io.hdf5 import write_volume  # noqa: E402
from bonesim.volume import Volume  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--size", default="900x700")
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "mechanics-sed-render.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bone, sed = Path(d) / "sample.h5", Path(d) / "sample_sed.h5"
        write_volume(bone, Volume(real_sample(args.crop), VOXEL_UM), xdmf=False)
        cli = [sys.executable, "-m", "bonesim"]
        subprocess.run([*cli, "mechanics", str(bone), "--axis", "z", "--backend", "numpy",
                        "--save-sed", str(sed)], check=True)  # fmt: skip
        subprocess.run([*cli, "render", str(sed), "--field", "sed", "--axis", "z", "--size", args.size,
                        "-o", args.output, "--overwrite"], check=True)  # fmt: skip


if __name__ == "__main__":
    main()
