"""Measure the I/O share of a simulation with frequent saves, and checkpoint write speed per compression.

Runs ``bonesim.ca.engine.simulate`` (NumPy backend) on a gyroid phantom with a
save point every ``--save-every`` days, with and without an output file, and
prints one JSON line per run: wall time of the whole call, the loop's
``io_s`` (time the loop spent in save points, back-pressure included) and the
I/O share ``1 - wall(no output) / wall``. Works on any bonesim checkout
(``PYTHONPATH=<checkout>``): options an older engine lacks are left out, so
the same script measures before and after.

    PYTHONPATH=. python scripts/bench_io.py runs --shape 128 --repeat 3
    PYTHONPATH=. python scripts/bench_io.py checkpoint --state state.npz   # MB/s per compression
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _volume(n: int):
    from bonesim import Volume, phantom

    return Volume(phantom.gyroid((n, n, n), 24, phantom.gyroid_sheet_level_for(0.3), sheet=True), 20.0)


def runs(args: argparse.Namespace) -> None:
    from bonesim.ca.engine import simulate
    from bonesim.ca.params import RemodelingParams

    vol = _volume(args.shape)
    accepts = inspect.signature(simulate).parameters
    variants = {"no-output": None}
    for v in args.variants.split(","):
        variants[v] = v
    base = dict(years=args.years, spinup_years=args.spinup_years, save_every=args.save_every, backend="numpy")
    for rep in range(args.repeat):
        for name, ck in variants.items():
            kw = dict(base)
            with tempfile.TemporaryDirectory(dir=args.tmp) as d:
                if ck is not None:
                    kw["out"] = Path(d) / "run.h5"
                    if "checkpoint_compression" in accepts:
                        kw["checkpoint_compression"] = ck
                    elif ck != "gzip":
                        continue  # the old engine writes gzip checkpoints only
                t0 = time.perf_counter()
                res = simulate(vol, RemodelingParams(), **kw)
                wall = time.perf_counter() - t0
                size = sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())
            print(
                json.dumps(
                    {
                        "shape": args.shape,
                        "variant": name,
                        "rep": rep,
                        "wall_s": round(wall, 3),
                        "io_s": round(res.timings["io_s"], 3),
                        "io_write_s": round(res.timings.get("io_write_s", float("nan")), 3),
                        "frames": len(res.metrics["day"]),
                        "steps": res.timings["steps"],
                        "result_mb": round(size / 1e6, 2),
                        "load": os.getloadavg()[0],
                    }
                ),
                flush=True,
            )


def checkpoint(args: argparse.Namespace) -> None:
    from bonesim.io.result import RunFolder

    st = dict(np.load(args.state))
    nbytes = sum(a.nbytes for a in st.values())
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        folder = RunFolder(Path(d) / "r.h5")
        folder.path.mkdir()
        for comp in ("none", "gzip", "lz4", "zstd"):
            ts = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                folder.write_checkpoint(
                    st,
                    step=1,
                    day=1.0,
                    schedule={},
                    metrics_acc={},
                    metrics={"day": np.zeros(1)},
                    n_frames=0,
                    backend="numpy",
                    device="cpu",
                    seed=0,
                    compression=comp,
                )
                ts.append(time.perf_counter() - t0)
            size = (folder.path / "checkpoint.h5").stat().st_size
            print(
                json.dumps(
                    {
                        "compression": comp,
                        "shape": list(st["bone"].shape),
                        "state_mb": round(nbytes / 1e6, 1),
                        "write_s": round(min(ts), 3),
                        "mb_per_s": round(nbytes / min(ts) / 1e6),
                        "file_mb": round(size / 1e6, 2),
                        "load": os.getloadavg()[0],
                    }
                ),
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("runs")
    r.add_argument("--shape", type=int, default=128)
    r.add_argument("--years", type=float, default=0.1)
    r.add_argument("--spinup-years", type=float, default=0.05)
    r.add_argument("--save-every", type=float, default=1.0)
    r.add_argument("--variants", default="gzip,lz4,zstd,none", help="checkpoint compressions to run")
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--tmp", default=None)
    c = sub.add_parser("checkpoint")
    c.add_argument("--state", required=True, help="an .npz of bone, phase, timer, resorbed_day, formed_day")
    c.add_argument("--repeat", type=int, default=3)
    c.add_argument("--tmp", default=None)
    args = ap.parse_args()
    runs(args) if args.what == "runs" else checkpoint(args)


if __name__ == "__main__":
    main()
