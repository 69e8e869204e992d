#!/usr/bin/env python
"""Compare two bonesim result files bit for bit: every dataset (frames, maps, state, tables).

Attributes that name where or how fast a run ran (backend, device, host,
timings, command, created) are ignored; everything else must be identical.
Prints one JSON object (per dataset: equal, mismatched elements) and exits 1
when anything differs, 2 when a file cannot be read.

Usage: PYTHONPATH=. python scripts/compare_results.py A.h5 B.h5
"""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np

#: attributes allowed to differ between two runs of the same simulation on different backends
RUN_ATTRS = {"backend", "device", "host", "timings", "command", "created"}


def datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    out: dict[str, h5py.Dataset] = {}
    f.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


def compare(a_path: str, b_path: str) -> dict:
    rows: dict[str, dict] = {}
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        da, db = datasets(a), datasets(b)
        for name in sorted(set(da) | set(db)):
            if name not in da or name not in db:
                rows[name] = {"equal": False, "why": f"only in {'A' if name in da else 'B'}"}
                continue
            x, y = da[name], db[name]
            if x.shape != y.shape or x.dtype != y.dtype:
                rows[name] = {"equal": False, "why": f"{x.shape} {x.dtype} vs {y.shape} {y.dtype}"}
                continue
            xa, ya = x[()], y[()]
            if isinstance(xa, np.ndarray) and xa.dtype.kind in "fc":  # bitwise: NaN == NaN, -0.0 != 0.0
                xa, ya = xa.view(np.uint8), ya.view(np.uint8)
            diff = int(np.count_nonzero(np.asarray(xa != ya)))
            rows[name] = {"equal": diff == 0, "mismatched": diff, "size": int(np.size(xa))}
        attrs = {}
        for group in sorted({"/", *(k for k in a)}):
            ga = dict(a[group].attrs) if group in a else {}
            gb = dict(b[group].attrs) if group in b else {}
            for k in sorted((set(ga) | set(gb)) - RUN_ATTRS):
                same = k in ga and k in gb and np.array_equal(np.asarray(ga[k]), np.asarray(gb[k]))
                if not same:
                    attrs[f"{group}@{k}"] = [str(ga.get(k)), str(gb.get(k))]
    equal = all(r["equal"] for r in rows.values()) and not attrs
    return {"a": a_path, "b": b_path, "equal": equal, "datasets": rows, "differing_attributes": attrs}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        res = compare(*args)
    except OSError as e:
        print(f"cannot read: {e}", file=sys.stderr)
        return 2
    json.dump(res, sys.stdout, indent=1)
    print()
    bad = [n for n, r in res["datasets"].items() if not r["equal"]]
    print(
        f"{'EQUAL' if res['equal'] else 'DIFFERENT'}: {len(res['datasets'])} datasets, {len(bad)} differ"
        f"{': ' + ', '.join(bad[:8]) if bad else ''}; attributes differing: {len(res['differing_attributes'])}",
        file=sys.stderr,
    )
    return 0 if res["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
