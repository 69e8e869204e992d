"""The README's numbers come from the code: the demo's BV/TV before and after."""

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
    m = re.search(r"BV/TV before \(day 0\): ([0-9.]+)\s+after \(day \d+\): ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout[-2000:]
    before, after = float(m.group(1)), float(m.group(2))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"BV/TV {before:.3f} → {after:.3f}" in readme, (
        f"README should say BV/TV {before:.3f} → {after:.3f}"
    )
