"""The README's numbers come from the code: the demo's BV/TV of the input, at day 0 and at the end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_demo_bvtv_is_what_the_demo_prints(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(tmp_path / "demo")],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(
        r"BV/TV input ([0-9.]+)\s+day 0 \(after spin-up\): ([0-9.]+)\s+end \(day \d+\): ([0-9.]+)",
        r.stdout + r.stderr,
    )
    assert m, r.stdout[-2000:]
    inp, day0, end = (float(g) for g in m.groups())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = (
        f"BV/TV input {inp:.3f} → day 0 (after spin-up) {day0:.3f} → end {end:.3f}: "
        f"the spin-up alone removes {100 * (1 - day0 / inp):.0f} %"
    )
    assert said in readme, f"README should say {said}"
