"""Write the segmented real sample that ships in the wheel, from the TIFF slices.

    python scripts/make_sample_npz.py

Reads ``data/lhdl_3155_D_4_bc/slices`` (needs tifffile), segments them as
:mod:`bonesim.io.sample` documents (σ = 1, threshold 63, largest component)
and writes ``data/lhdl_3155_D_4_bc/bone_sigma1_t63.npz``; pyproject's
force-include puts it, the README and the LICENSE in ``bonesim/_data``.
"""

from __future__ import annotations

from bonesim.io import sample


def main() -> None:
    mask = sample.mask_from_slices()
    path = sample.save_shipped(mask, sample.sample_dir() / sample.SHIPPED)
    print(
        f"wrote {path}: {path.stat().st_size} bytes, BV/TV {mask.mean():.4f}, sha256 {sample.mask_digest(mask)}"
    )


if __name__ == "__main__":
    main()
