"""Static SASS census of the CA step kernels: instructions, registers, spills per kernel variant.

Compiles ``bonesim/ca/kernels/remodel.cu`` for sm_90 (``nvcc -cubin``) with each
variant's macros, disassembles it (``cuobjdump -sass``, which needs ``nvdisasm``
on PATH or in ``NVDISASM_PATH``; both ship as the PyPI wheels
``nvidia-cuda-cuobjdump`` and ``nvidia-cuda-nvdisasm``) and prints one JSON
object: per kernel the static instruction count, the count by opcode class
(global loads/stores, shared loads/stores, atomics, branches, integer, other)
and ptxas' registers, stack and spill figures. ``--rev REV`` also compiles the
kernel sources of a git revision, for a before/after table. ``staging`` counts
the micro kernels of ``scripts/sass_staging.cu``: the tile staging loop alone,
with a bounds check per cell and on the interior fast path. ``parts`` counts the micro kernels of
``scripts/sass_parts.cu``: the counter reduction before and after packing, and the path of a voxel in
a skipped uniform tile (each executed once per thread, i.e. per voxel-step of the tile kernel).

These are *static* counts (instructions in the binary, every path once), not
instructions executed per voxel-step: those need a GPU profiler (Nsight
Compute's ``inst_executed``) and belong to the GPU verification run.

Usage::

    python scripts/sass_count.py [--rev HEAD~1] [--arch sm_90]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNELS = "bonesim/ca/kernels"

#: (name, macros) of the variants counted.
VARIANTS = (
    ("n26 (default)", []),
    ("n6", ["-DBONESIM_NEIGH=6"]),
    ("n26 without the uniform-tile skip", ["-DBONESIM_SKIP_UNIFORM=0"]),
)

CLASSES = (
    ("global_load", re.compile(r"^LDG")),
    ("global_store", re.compile(r"^STG")),
    ("shared_load", re.compile(r"^LDS")),
    ("shared_store", re.compile(r"^STS")),
    ("atomic", re.compile(r"^(ATOM|RED)")),
    ("branch", re.compile(r"^(BRA|BSSY|BSYNC|EXIT|RET|CALL|WARPSYNC|BAR)")),
    (
        "integer",
        re.compile(r"^(IMAD|IADD|ISETP|LEA|SHF|LOP|IABS|IMNMX|SEL|PRMT|FLO|POPC|BMSK|SGXT|UIADD|ULEA|UIMAD)"),
    ),
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} not found on PATH (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    return path


def sources(rev: str | None, dest: Path) -> Path:
    """The kernel folder of the checkout, or of git revision ``rev`` copied under ``dest``."""
    if rev is None:
        return ROOT / KERNELS
    out = dest / "kernels"
    out.mkdir(parents=True)
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, KERNELS + "/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in names:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{name}"], capture_output=True, text=True, check=True
        ).stdout
        (out / Path(name).name).write_text(text)
    return out


def census(folder: Path, macros: list[str], arch: str, work: Path, source: Path | None = None) -> dict:
    """Per kernel of ``source`` (default: the folder's remodel.cu) compiled with ``macros``."""
    cubin = work / "k.cubin"
    cmd = [tool("nvcc"), "-std=c++17", f"-arch={arch}", "-cubin", "-Xptxas", "-v", f"-I{folder}", *macros]
    r = subprocess.run(
        [*cmd, "-o", str(cubin), str(source or folder / "remodel.cu")], capture_output=True, text=True
    )
    if r.returncode:
        sys.exit(r.stderr)
    res: dict[str, dict] = {}
    current = None
    for line in r.stderr.splitlines():
        m = re.search(r"Function properties for (\w+)", line)
        if m:
            current = res.setdefault(m.group(1), {})
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current is not None:
            current.update(stack_bytes=int(m[1]), spill_store_bytes=int(m[2]), spill_load_bytes=int(m[3]))
        m = re.search(r"Used (\d+) registers", line)
        if m and current is not None:
            current["registers"] = int(m[1])
    sass = subprocess.run(
        [tool("cuobjdump"), "-sass", str(cubin)], capture_output=True, text=True, check=True
    )
    name = None
    ops: dict[str, Counter] = {}
    for line in sass.stdout.splitlines():
        m = re.search(r"Function : (\w+)", line)
        if m:
            name = m.group(1)
            ops[name] = Counter()
            continue
        m = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if m and name is not None:
            ops[name][m.group(1).split(".")[0]] += 1
    out = {}
    for kname, c in ops.items():
        total = sum(c.values())
        by_class = {cls: sum(n for op, n in c.items() if rx.match(op)) for cls, rx in CLASSES}
        by_class["other"] = total - sum(by_class.values())
        out[kname] = {"instructions": total, **by_class, **res.get(kname, {})}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", help="also count the kernels of this git revision (before/after)")
    ap.add_argument("--arch", default="sm_90")
    args = ap.parse_args()
    report: dict = {"arch": args.arch, "static": True}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, rev in (("current", None), (f"rev {args.rev}", args.rev)):
            if label != "current" and rev is None:
                continue
            folder = sources(rev, work / (rev or "current").replace("/", "_"))
            report[label] = {name: census(folder, macros, args.arch, work) for name, macros in VARIANTS}
            if rev is None:  # staging alone (scripts/sass_staging.cu): checked cell by cell vs interior
                report["staging"] = census(
                    folder, [], args.arch, work, Path(__file__).with_name("sass_staging.cu")
                )
                parts = census(folder, [], args.arch, work, Path(__file__).with_name("sass_parts.cu"))
                report["parts"] = {k: v for k, v in parts.items() if not k.startswith("bonesim_")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
