"""The report page in a real headless browser (Playwright driving the system Chromium).

Skipped, with the reason, when the Python package ``playwright`` or a Chromium
executable is missing: ``.ci/run`` installs both (Debian ``chromium``, pip
``playwright`` from the ``dev`` extra). Playwright's own browser download is
never used: the executable is ``$BONESIM_CHROMIUM`` or the first of
``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``.

Checks: the page loads from ``file://`` with no console error or warning and
no uncaught exception, requests nothing but itself and ``data:`` URIs, the 3-D
viewer gets a WebGL context (software SwiftShader here) and both a plot and the
3-D canvas are non-blank in screenshots, with the viewer's state colours visible.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from _results import write_result

from bonesim.viz.report import write_report

pytestmark = pytest.mark.browser

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str | None:
    env = os.environ.get("BONESIM_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install 'bonesim[dev]')"
    )
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium executable (apt-get install chromium, or set BONESIM_CHROMIUM)")
    args = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to sandbox as root (CI containers)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=args, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    a = write_result(d / "a.h5", scenario="healthy", morphometry=True)
    b = write_result(d / "b.h5", scenario="postmenopausal", morphometry=True, bvtv_scale=0.9)
    out = d / "report.html"
    write_report([a, b], out)
    return out


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_report_in_chromium(browser, page_file):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    messages, errors, foreign = [], [], []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            foreign.append(url)
            r.abort()

    page.route("**/*", route)
    page.goto(page_file.as_uri(), wait_until="load")
    info = page.locator("#v-info")
    page.wait_for_function("document.getElementById('v-info').textContent.length > 0", timeout=30_000)
    assert "no WebGL" not in info.text_content(), info.text_content()
    page.wait_for_selector("canvas#viewer[data-ready='1']", timeout=30_000)
    assert "triangles" in info.text_content()

    bad = [m for m in messages if m.startswith(("error", "warning"))]
    assert not errors and not bad, errors + bad
    assert foreign == []

    plot = _pixels(page.locator("img.plot").first.screenshot())
    assert plot.shape[0] > 100 and plot.var() > 100
    canvas = _pixels(page.locator("canvas#viewer").screenshot())
    assert canvas.var() > 100
    r, g, b = canvas[..., 0], canvas[..., 1], canvas[..., 2]
    assert ((r > 120) & (r > 2 * g) & (r > 2 * b)).sum() > 10, "no resorbed (red) surface in the 3-D view"
    assert ((g > 100) & (g > r + 40) & (g > b + 40)).sum() > 10, "no formed (green) surface in the 3-D view"

    # rotate with the mouse: the picture changes
    box = page.locator("canvas#viewer").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 40, steps=5)
    page.mouse.up()
    turned = _pixels(page.locator("canvas#viewer").screenshot())
    assert turned.var() > 100 and np.abs(turned - canvas).mean() > 1.0
    # the first frame has no state colours; the second run draws too
    page.check("input[name=v-frame][value=first]")
    first = _pixels(page.locator("canvas#viewer").screenshot())
    assert first.var() > 100
    assert ((first[..., 0] > 120) & (first[..., 0] > 2 * first[..., 1])).sum() == 0
    page.select_option("#v-run", "1")
    assert "postmenopausal" in info.text_content()
    assert not errors and not [m for m in messages if m.startswith(("error", "warning"))]
    page.close()
