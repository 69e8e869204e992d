"""bonesim.viz.report / ``bonesim report``: the HTML page, checked as text (no browser).

The browser test is tests/viz/test_report_browser.py.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from _html import network_loads
from _results import CAVITY_YX, FORMED_YX, PLATE_Z1, result_frames, write_result
from click.testing import CliRunner

from bonesim.errors import BonesimError
from bonesim.viz.report import OVERLAY, pick_slices, slice_overlay, surface_mesh, write_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    a = write_result(d / "a.h5", scenario="healthy", morphometry=True)
    b = write_result(d / "b.h5", scenario="postmenopausal", morphometry=True, bvtv_scale=0.9)
    return a, b


@pytest.fixture(scope="module")
def one_page(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "one.html"
    info = write_report(runs[0], out)
    return out.read_text(encoding="utf-8"), info


@pytest.fixture(scope="module")
def two_page(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "two.html"
    info = write_report(list(runs), out, title="PM vs healthy")
    return out.read_text(encoding="utf-8"), info


def _images(doc: str, cls: str) -> list[bytes]:
    uris = re.findall(rf'<img class="fig {cls}"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', doc)
    return [base64.b64decode(u) for u in uris]


def _png_array(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _meshes(doc: str) -> list[dict]:
    m = re.search(r'<script id="bonesim-meshes" type="application/json">(.*?)</script>', doc, re.S)
    assert m, "no mesh data in the page"
    return json.loads(m.group(1))


# ------------------------------------------------------------ the page ----
def test_self_contained(one_page, two_page):
    for doc, _ in (one_page, two_page):
        assert doc.startswith("<!DOCTYPE html>")
        assert network_loads(doc) == []


def test_network_check_can_fail():
    bad = '<img src="https://example.org/a.png"><script src="x.js"></script><style>@import "y.css";</style>'
    assert len(network_loads(bad)) >= 3


def test_figures_present_and_not_blank(one_page):
    doc, _ = one_page
    plots = _images(doc, "plot")
    assert len(plots) == 2  # morphometry and physiology
    slices = _images(doc, "slices")
    assert len(slices) == 1
    for png in plots + slices:
        assert png.startswith(PNG)
        assert _png_array(png).std() > 10
    timeline = _images(doc, "timeline")
    assert len(timeline) == 1 and _png_array(timeline[0]).std() > 10
    # the overlay figure shows all three overlay colours
    img = _png_array(slices[0]).reshape(-1, 3)
    for key in ("bone", "resorbed", "formed"):
        assert (np.abs(img.astype(int) - OVERLAY[key]).sum(axis=1) < 6).sum() > 20, key


def test_provenance_table(one_page):
    doc, info = one_page
    assert "<h2>healthy <small>(a.h5)</small></h2>" in doc
    for text in ("tests/_results.py", "2026-01-01T00:00:00", "32 × 48 × 48", "20 µm", "scenario TOML"):
        assert text in doc, text
    assert 'id="comparison"' not in doc  # one run: no comparison
    assert info["bytes"] == len(doc.encode("utf-8"))


def test_comparison_table(two_page):
    doc, _ = two_page
    assert "<title>PM vs healthy</title>" in doc
    sec = re.search(r'<section id="comparison">(.*?)</section>', doc, re.S)
    assert sec, "no comparison section"
    assert "<th>BV/TV</th>" in sec.group(1) and "<th>Tb.Th (µm)</th>" in sec.group(1)
    assert "net" in sec.group(1)
    assert doc.count('<section class="run"') == 2


def test_3d_meshes(two_page):
    doc, info = two_page
    assert '<canvas id="viewer"' in doc
    data = _meshes(doc)
    assert [d["name"] for d in data] == ["healthy", "postmenopausal"]
    last = data[0]["last"]
    n = last["n_vertices"]
    assert 0 < last["n_triangles"] <= 40_000
    pos = np.frombuffer(base64.b64decode(last["pos"]), "<u2")
    idx = np.frombuffer(base64.b64decode(last["idx"]), "<u4" if last["idx32"] else "<u2")
    state = np.frombuffer(base64.b64decode(last["state"]), np.uint8)
    assert pos.size == 3 * n and idx.size == 3 * last["n_triangles"] and state.size == n
    assert idx.max() < n
    assert set(np.unique(state)) == {0, 1, 2}  # kept, resorbed (cavity, hole) and formed (disc)
    assert not np.any(np.frombuffer(base64.b64decode(data[0]["first"]["state"]), np.uint8))
    assert len(info["meshes"]) == 4


def test_surface_mesh_extent_and_budget():
    vol = result_frames()[0]  # plate z in [12, 20) of (32, 48, 48), voxel 20 µm
    m = surface_mesh(vol, None, 0.02, 100_000, 96)
    q = np.frombuffer(base64.b64decode(m["pos"]), "<u2").reshape(-1, 3)
    xyz = np.asarray(m["lo"]) + q / 65535 * np.asarray(m["span"])
    # voxel j covers [j, j + 1) * 20 µm: the plate's faces are at z = 12 and 20 voxels, x and y
    # span the box (closed by the padding)
    assert xyz[:, 2].min() == pytest.approx(12 * 0.02, abs=1e-4)
    assert xyz[:, 2].max() == pytest.approx(20 * 0.02, abs=1e-4)
    assert xyz[:, 0].min() == pytest.approx(0.0, abs=0.011) and xyz[:, 0].max() == pytest.approx(
        0.96, abs=0.011
    )
    small = surface_mesh(vol, None, 0.02, 1000, 96)
    assert small["n_triangles"] <= 1000 and small["downsample"] > 1


def test_plain_volume(tmp_path):
    from bonesim import Volume, phantom, write_volume

    p = tmp_path / "v.h5"
    write_volume(p, Volume(phantom.plate((16, 16, 16), 4), 20.0), xdmf=False)
    out = tmp_path / "v.html"
    info = write_report(p, out)
    doc = out.read_text(encoding="utf-8")
    assert _images(doc, "plot") == [] and len(_images(doc, "slices")) == 1
    assert [m["n_triangles"] > 0 for m in info["meshes"]] == [True, True]
    assert network_loads(doc) == []


def test_names_are_escaped(tmp_path):
    p = write_result(tmp_path / "x.h5", scenario='<img src=x onerror="alert(1)"></script>')
    out = tmp_path / "x.html"
    write_report(p, out)
    doc = out.read_text(encoding="utf-8")
    assert "<img src=x" not in doc and '</script>"' not in doc
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in doc
    assert _meshes(doc)[0]["name"].startswith("<img src=x")  # the JSON island decodes to the name


def test_no_3d(runs, tmp_path):
    out = tmp_path / "flat.html"
    info = write_report(runs[0], out, three_d=False)
    doc = out.read_text(encoding="utf-8")
    assert "<canvas" not in doc and info["meshes"] == []
    assert len(_images(doc, "plot")) == 2


# ------------------------------------------------------------- overlay ----
def test_slice_overlay_colours():
    frames = result_frames()
    ov = slice_overlay(frames[0][PLATE_Z1 - 1], frames[-1][PLATE_Z1 - 1])
    assert tuple(ov[CAVITY_YX]) == OVERLAY["resorbed"]
    assert tuple(ov[0, 0]) == OVERLAY["bone"]
    ov = slice_overlay(frames[0][PLATE_Z1], frames[-1][PLATE_Z1])
    assert tuple(ov[FORMED_YX]) == OVERLAY["formed"]
    assert tuple(ov[0, 0]) == OVERLAY["marrow"]


def test_time_frames(runs):
    from bonesim.io.result import Result
    from bonesim.viz.report import time_frames

    info = Result.open(runs[0])  # 4 frames
    assert time_frames(info, 8) == [0, 1, 2, 3]
    assert time_frames(info, 2) == [0, 3]
    spun = Result.open(write_result(runs[0].parent / "spun.h5", frames=6, first_day=-240.0))
    assert spun.reference_index == 2 and time_frames(spun, 3) == [2, 4, 5]


def test_pick_slices_has_most_change():
    frames = result_frames()
    zs = pick_slices(frames[0], frames[-1], 3)
    changed = (frames[0] > 127) != (frames[-1] > 127)
    assert int(np.argmax(changed.sum(axis=(1, 2)))) in zs
    assert len(zs) == 3 and zs == sorted(set(zs))
    assert pick_slices(frames[0], frames[-1], 100) == sorted(set(pick_slices(frames[0], frames[-1], 100)))


# ------------------------------------------------------ output policy ----
def test_refuses_overwrite_and_bad_names(runs, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old")
    with pytest.raises(BonesimError, match="exists; pass overwrite=True") as exc:
        write_report(runs[0], out)
    assert "--" not in str(exc.value) and "pass --overwrite" in exc.value.cli_message  # API vs CLI spelling
    assert out.read_text(encoding="utf-8") == "old"
    write_report(runs[0], out, overwrite=True, three_d=False)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(BonesimError, match="must end in"):
        write_report(runs[0], tmp_path / "r.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left


def test_cli(runs, tmp_path):
    from bonesim.cli import main

    out = tmp_path / "cli.html"
    r = CliRunner().invoke(main, ["report", str(runs[0]), str(runs[1]), "-o", str(out), "--slices", "2"])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "triangles" in r.output
    assert 'id="comparison"' in out.read_text(encoding="utf-8")
    r = CliRunner().invoke(main, ["report", str(runs[0]), "-o", str(out)])
    assert r.exit_code == 1 and "--overwrite" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "m.html")])
    assert r.exit_code == 1
    assert "report" in CliRunner().invoke(main, ["--help"]).output
