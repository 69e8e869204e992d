"""A self-contained HTML report of one or more results: ``bonesim report``.

One file, nothing loaded from the network: the scenario and provenance of
every run, a comparison table (several runs, :mod:`bonesim.compare`), the
metrics and physiology over time (:func:`~bonesim.viz.plot.plot_metrics`,
PNG data URIs), 2-D slice overlays of the reference frame against the last
frame and over time (grey: bone in both, red: resorbed, green: formed, as
in time-lapse HR-pQCT images) and an interactive 3-D view of the first and last surfaces
(a small inline WebGL viewer; the meshes come from
:func:`skimage.measure.marching_cubes` on a block-averaged copy and are
embedded as base64 ``uint16`` vertex and ``uint16``/``uint32`` index arrays).

>>> from bonesim.viz.report import slice_overlay
>>> import numpy as np
>>> a = np.zeros((1, 2, 2), np.uint8); a[0, 0] = 255
>>> b = a.copy(); b[0, 0, 0] = 0; b[0, 1, 1] = 255
>>> slice_overlay(a[0], b[0])[..., 0].tolist()
[[215, 170], [0, 40]]
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bonesim._version import __version__
from bonesim.errors import BonesimError, InputError
from bonesim.io.outputs import atomic_write, check_output
from bonesim.io.result import Result
from bonesim.viz.scene import COLOURS, block_mean

REPORT_SUFFIXES = (".html", ".htm")
#: Overlay colours (RGB 0-255): bone in both frames, resorbed, formed, marrow.
OVERLAY = {
    "bone": (170, 170, 170),
    "resorbed": COLOURS["resorbed"],
    "formed": COLOURS["formed"],
    "marrow": (0, 0, 0),
}
#: The bone surface level of the uint8 bone fraction.
LEVEL = 127.5


# ------------------------------------------------------------- helpers ----
def _png_uri(fig: Any, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode(
        "ascii"
    )


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def slice_overlay(ref: np.ndarray, last: np.ndarray) -> np.ndarray:
    """RGB uint8 image of two 2-D bone-fraction slices: grey kept, red resorbed, green formed, black marrow."""
    r = np.asarray(ref, float) > LEVEL
    t = np.asarray(last, float) > LEVEL
    img = np.zeros((*r.shape, 3), np.uint8)
    img[r & t] = OVERLAY["bone"]
    img[r & ~t] = OVERLAY["resorbed"]
    img[~r & t] = OVERLAY["formed"]
    return img


def pick_slices(ref: np.ndarray, last: np.ndarray, n: int) -> list[int]:
    """``n`` z indices: the one with the most changed voxels, the rest evenly spaced through the volume."""
    nz = ref.shape[0]
    n = max(1, min(n, nz))
    changed = ((ref > LEVEL) != (last > LEVEL)).reshape(nz, -1).sum(axis=1)
    picks = [int(np.argmax(changed))]
    for z in np.linspace(0, nz - 1, n + 2)[1:-1].round().astype(int):
        if len(picks) >= n:
            break
        if int(z) not in picks:
            picks.append(int(z))
    return sorted(picks)


def _slice_figure(info: Result, ref: np.ndarray, last: np.ndarray, zs: list[int], dpi: int) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    vmm = info.voxel_size_um / 1000.0
    ny, nx = ref.shape[1:]
    extent = (0, nx * vmm, ny * vmm, 0)
    d0, d1 = info.days[info.reference_index], info.days[-1]
    fig = Figure(figsize=(9.0, 3.0 * len(zs) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(zs), 3, squeeze=False)
    for row, z in zip(axes, zs, strict=True):
        row[0].imshow(ref[z], cmap="gray", vmin=0, vmax=255, extent=extent, interpolation="nearest")
        row[1].imshow(last[z], cmap="gray", vmin=0, vmax=255, extent=extent, interpolation="nearest")
        row[2].imshow(slice_overlay(ref[z], last[z]), extent=extent, interpolation="nearest")
        row[0].set_title(f"day {d0:g}, z = {z * vmm:.2f} mm", fontsize=9)
        row[1].set_title(f"day {d1:g}", fontsize=9)
        row[2].set_title("change", fontsize=9)
        for ax in row:
            ax.set_xlabel("x (mm)", fontsize=8)
            ax.tick_params(labelsize=7)
        row[0].set_ylabel("y (mm)", fontsize=8)
    handles = [Patch(color=np.array(OVERLAY[k]) / 255, label=k) for k in ("bone", "resorbed", "formed")]
    fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False)
    return _png_uri(fig, dpi)


def time_frames(info: Result, n: int) -> list[int]:
    """Up to ``n`` saved frames from the reference to the last, evenly spaced (both ends included)."""
    i0, i1 = info.reference_index, info.n_frames - 1
    return sorted(set(np.linspace(i0, i1, max(1, min(n, i1 - i0 + 1))).round().astype(int).tolist()))


def _time_figure(info: Result, ref: np.ndarray, z: int, frames: list[int], dpi: int) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    vmm = info.voxel_size_um / 1000.0
    ny, nx = ref.shape[1:]
    extent = (0, nx * vmm, ny * vmm, 0)
    cols = min(len(frames), 4)
    rows = math.ceil(len(frames) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, i in zip(axes, frames, strict=False):
        sl = info.frame(i)[z]
        ax.imshow(slice_overlay(ref[z], sl), extent=extent, interpolation="nearest")
        ax.set_title(f"day {info.days[i]:g}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(frames) :]:
        ax.set_visible(False)
    fig.suptitle(f"z = {z * vmm:.2f} mm against day {info.days[info.reference_index]:g}", fontsize=10)
    return _png_uri(fig, dpi)


def surface_mesh(
    vol: np.ndarray, ref: np.ndarray | None, voxel_mm: float, max_triangles: int, max_edge: int
) -> dict[str, Any]:
    """The 127.5 surface of ``vol`` as quantised arrays for the viewer, within ``max_triangles``.

    The volume is block-averaged by the smallest factor that keeps the longest
    edge <= ``max_edge`` and the triangle count <= ``max_triangles``. With
    ``ref`` each vertex gets a state (0 kept, 1 resorbed, 2 formed) from the
    reference bone fraction at that point, with the renders' tolerance.
    """
    from scipy.ndimage import map_coordinates
    from skimage.measure import marching_cubes

    from bonesim.viz.scene import TOLERANCE

    k = max(1, math.ceil(max(vol.shape) / max_edge))
    while True:
        v = np.pad(block_mean(vol, k), 1)
        if v.max() <= LEVEL or v.min() >= LEVEL:
            verts = np.zeros((0, 3), np.float32)
            faces = np.zeros((0, 3), np.int64)
        else:
            verts, faces, _, _ = marching_cubes(v, LEVEL, allow_degenerate=False)
        if len(faces) <= max_triangles or min(vol.shape) // (k + 1) < 4:
            break
        k += 1
    state = np.zeros(len(verts), np.uint8)
    if ref is not None and len(verts):
        r = np.pad(block_mean(ref, k), 1)
        rv = map_coordinates(r, verts.T, order=1, mode="nearest")
        state[rv > LEVEL + TOLERANCE] = 1  # the surface lies inside the reference bone: resorbed
        state[rv < LEVEL - TOLERANCE] = 2  # it lies where there was marrow: formed
    # zyx index of the padded block grid -> xyz mm, voxel (0, 0, 0) covering [0, voxel_mm)³
    xyz = (verts[:, ::-1] - 0.5) * k * voxel_mm
    lo = np.zeros(3) if not len(xyz) else xyz.min(axis=0)
    hi = np.ones(3) if not len(xyz) else xyz.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    q = np.round((xyz - lo) / span * 65535).astype(np.uint16)
    idx = faces.astype(np.uint16 if len(verts) < 65536 else np.uint32)
    return {
        "n_vertices": len(verts),
        "n_triangles": len(faces),
        "downsample": k,
        "lo": lo.tolist(),
        "span": span.tolist(),
        "pos": _b64(q.reshape(-1)),
        "idx": _b64(idx.reshape(-1)),
        "idx32": idx.dtype == np.uint32,
        "state": _b64(state),
    }


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _provenance_rows(info: Result) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("file", info.path.name),
        ("scenario", info.scenario),
        ("shape (z, y, x)", " × ".join(str(n) for n in info.shape)),
        ("voxel size", f"{info.voxel_size_um:g} µm"),
        ("saved frames", info.n_frames),
        (
            "days",
            f"{info.days[0]:g} … {info.days[-1]:g} (reference frame at day {info.days[info.reference_index]:g})",
        ),
    ]
    for k in ("seed", "backend", "day", "complete"):
        if k in info.state_attrs:
            rows.append((f"state {k}", info.state_attrs[k]))
    for k, v in info.provenance.items():
        rows.append((k, json.dumps(v) if isinstance(v, (dict, list)) else v))
    return rows


def _comparison_html(paths: Sequence[Path]) -> str:
    from bonesim.compare import compare, comparison_text

    t = comparison_text(compare(list(paths)))
    out = [f"<p>{_esc(t.title)}.</p>"] + [f"<p><em>{_esc(n)}.</em></p>" for n in t.notes]
    if not t.rows:
        return "".join(out)
    head = "".join(f"<th>{_esc(n)}</th>" for n in t.names)
    out.append(f'<table class="cmp"><tr><th>quantity</th>{head}</tr>')
    for label, cells in t.rows:
        out.append(f"<tr><th>{_esc(label)}</th>{''.join(f'<td>{_esc(x)}</td>' for x in cells)}</tr>")
    out.append(f"</table><p class='note'>{_esc(t.footnote)}</p>")
    return "".join(out)


# ------------------------------------------------------------- the API ----
def write_report(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    title: str | None = None,
    slices: int = 3,
    time_steps: int = 8,
    max_triangles: int = 40_000,
    max_edge: int = 96,
    three_d: bool = True,
    dpi: int = 90,
) -> dict[str, Any]:
    """Write one self-contained HTML report of ``paths`` (one or more result files) to ``out``.

    Parameters
    ----------
    paths : path or sequence of paths
        Result files; with two or more, a comparison table against the first.
    out : path
        ``.html`` file; refused if it exists unless ``overwrite``; written atomically.
    title : str, optional
    slices : int
        Slices (z) shown as first-vs-last overlays per run.
    time_steps : int
        Saved frames (reference to last, evenly spaced) of the most changed
        slice shown over time, each overlaid on the reference; none with <= 2 frames.
    max_triangles : int
        Budget per 3-D surface (the volume is block-averaged until it fits).
    max_edge : int
        Longest edge (voxels) of the volume contoured for the 3-D view.
    three_d : bool
        Embed the interactive 3-D view (False: plots and slices only).
    dpi : int
        Resolution of the embedded PNG figures.

    Returns
    -------
    dict
        ``{"path", "bytes", "runs", "meshes": [{"run", "frame", "n_triangles", "downsample"}]}``.
    """
    from bonesim._optional import require

    require("matplotlib", "report")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("`paths` must name at least one result file")
    if slices < 1 or max_triangles < 100 or max_edge < 8:
        raise InputError("slices must be >= 1, max_triangles >= 100 and max_edge >= 8")
    check_output(out, overwrite=overwrite, inputs=paths, suffixes=REPORT_SUFFIXES, what="report")
    infos = [Result.open(p) for p in paths]

    from bonesim.viz.plot import plot_metrics

    figures: list[tuple[str, str]] = []
    for which, caption in (("metrics", "Morphometry over time"), ("physiology", "Physiology over time")):
        try:
            fig = plot_metrics(paths, which=which)
        except BonesimError:
            continue
        figures.append((caption, _png_uri(fig, dpi)))

    runs_html = []
    meshes_meta: list[dict[str, Any]] = []
    viewer_data: list[dict[str, Any]] = []
    for n, info in enumerate(infos):
        i0 = info.reference_index
        ref, last = info.frames([i0, info.n_frames - 1])
        zs = pick_slices(ref, last, slices)
        part = [
            f'<section class="run" id="run{n}"><h2>{_esc(info.scenario)} <small>({_esc(info.path.name)})</small></h2>',
            "<h3>Scenario and provenance</h3>",
            _table(_provenance_rows(info)),
        ]
        toml = _scenario_toml(info.path)
        if toml:
            part.append(f"<details><summary>scenario TOML</summary><pre>{_esc(toml)}</pre></details>")
        part.append(
            f'<h3>Slices: day {info.days[i0]:g} vs day {info.days[-1]:g}</h3><img class="fig slices" '
            f'alt="slice overlays of {_esc(info.path.name)}" src="{_slice_figure(info, ref, last, zs, dpi)}">'
        )
        steps = time_frames(info, time_steps)
        if len(steps) > 2:
            z = pick_slices(ref, last, 1)[0]
            part.append(
                f'<h3>Over time: the slice with the most change</h3><img class="fig timeline" '
                f'alt="slice over time of {_esc(info.path.name)}" src="{_time_figure(info, ref, z, steps, dpi)}">'
            )
        if three_d:
            vmm = info.voxel_size_um / 1000.0
            m0 = surface_mesh(ref, None, vmm, max_triangles, max_edge)
            m1 = surface_mesh(last, ref, vmm, max_triangles, max_edge)
            for frame, m in ((i0, m0), (info.n_frames - 1, m1)):
                meshes_meta.append(
                    {
                        "run": str(info.path),
                        "frame": frame,
                        "n_triangles": m["n_triangles"],
                        "downsample": m["downsample"],
                    }
                )
            viewer_data.append(
                {
                    "name": info.scenario,
                    "day0": float(info.days[i0]),
                    "day1": float(info.days[-1]),
                    "first": m0,
                    "last": m1,
                }
            )
        part.append("</section>")
        runs_html.append("".join(part))

    title = title or "bonesim report: " + ", ".join(i.scenario for i in infos)
    body = [f"<h1>{_esc(title)}</h1>"]
    body.append(
        f'<p class="note">bonesim {_esc(__version__)}, written {_esc(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))}; '
        f"{len(infos)} run(s): {_esc(', '.join(str(p) for p in paths))}</p>"
    )
    if len(infos) > 1:
        body.append(f'<section id="comparison"><h2>Comparison</h2>{_comparison_html(paths)}</section>')
    for caption, uri in figures:
        body.append(
            f'<section class="plot"><h2>{_esc(caption)}</h2><img class="fig plot" alt="{_esc(caption)}" src="{uri}"></section>'
        )
    if three_d and viewer_data:
        options = "".join(
            f'<option value="{i}">{_esc(d["name"])} ({_esc(infos[i].path.name)})</option>'
            for i, d in enumerate(viewer_data)
        )
        body.append(
            '<section id="view3d"><h2>3-D view</h2>'
            f'<div class="controls"><label>run <select id="v-run">{options}</select></label> '
            '<label><input type="radio" name="v-frame" value="last" checked> last frame</label> '
            '<label><input type="radio" name="v-frame" value="first"> first frame</label> '
            '<label><input type="radio" name="v-frame" value="both"> both (first as grey ghost)</label></div>'
            '<canvas id="viewer" width="720" height="540"></canvas>'
            '<p class="note" id="v-info"></p>'
            '<p class="note">Drag to rotate, wheel to zoom, double-click to reset. Ivory: kept; red: resorbed; '
            "green: formed (surface of the last frame against the reference bone).</p></section>"
        )
    body.extend(runs_html)
    doc = _PAGE.format(
        title=_esc(title),
        css=_CSS,
        body="\n".join(body),
        data=json.dumps(viewer_data).replace("<", "\\u003c").replace(">", "\\u003e"),
        js=_JS if viewer_data else "",
    )
    with atomic_write(out, overwrite=overwrite, inputs=paths, suffixes=REPORT_SUFFIXES, what="report") as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return {
        "path": str(out),
        "bytes": len(doc.encode("utf-8")),
        "runs": [str(p) for p in paths],
        "meshes": meshes_meta,
    }


def _scenario_toml(path: Path) -> str:
    from bonesim.io.hdf5 import open_bonesim

    with open_bonesim(path) as f:
        if "scenario" not in f:
            return ""
        raw = f["scenario"].attrs.get("toml", "")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{css}</style></head>
<body>
{body}
<script id="bonesim-meshes" type="application/json">{data}</script>
<script>{js}</script>
</body></html>
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; font-size: 1.25em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
table.kv th { background: #f4f4f4; }
table.cmp td { text-align: right; }
img.fig { max-width: 100%; display: block; }
.note { color: #666; font-size: 0.85em; }
canvas#viewer { border: 1px solid #ccc; background: #fff; cursor: grab; max-width: 100%; }
pre { background: #f8f8f8; padding: 0.5em; overflow-x: auto; }
"""

# A small WebGL (1) viewer: decode the base64 meshes, compute normals, headlight Lambert shading.
_JS = r"""
(function () {
  "use strict";
  var runs = JSON.parse(document.getElementById("bonesim-meshes").textContent);
  var canvas = document.getElementById("viewer");
  var info = document.getElementById("v-info");
  var gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: true });
  if (!gl) { info.textContent = "This browser has no WebGL: the 3-D view is unavailable."; return; }
  var u32 = gl.getExtension("OES_element_index_uint");

  function bytes(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out.buffer;
  }
  var COL = [[0.92, 0.88, 0.78], [0.84, 0.14, 0.14], [0.16, 0.73, 0.27]];

  function build(m, grey) {
    if (!m.n_triangles) return null;
    if (m.idx32 && !u32) return null;
    var q = new Uint16Array(bytes(m.pos)), n = q.length / 3;
    var idx = m.idx32 ? new Uint32Array(bytes(m.idx)) : new Uint16Array(bytes(m.idx));
    var st = new Uint8Array(bytes(m.state));
    var pos = new Float32Array(3 * n), nor = new Float32Array(3 * n), col = new Float32Array(3 * n);
    for (var i = 0; i < n; i++) {
      for (var a = 0; a < 3; a++) pos[3 * i + a] = m.lo[a] + q[3 * i + a] / 65535 * m.span[a];
      var c = grey ? [0.62, 0.62, 0.62] : COL[st[i]];
      col[3 * i] = c[0]; col[3 * i + 1] = c[1]; col[3 * i + 2] = c[2];
    }
    for (var t = 0; t < idx.length; t += 3) {
      var i0 = 3 * idx[t], i1 = 3 * idx[t + 1], i2 = 3 * idx[t + 2];
      var ux = pos[i1] - pos[i0], uy = pos[i1 + 1] - pos[i0 + 1], uz = pos[i1 + 2] - pos[i0 + 2];
      var vx = pos[i2] - pos[i0], vy = pos[i2 + 1] - pos[i0 + 1], vz = pos[i2 + 2] - pos[i0 + 2];
      var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      [i0, i1, i2].forEach(function (k) { nor[k] += nx; nor[k + 1] += ny; nor[k + 2] += nz; });
    }
    function buf(target, data) {
      var b = gl.createBuffer(); gl.bindBuffer(target, b); gl.bufferData(target, data, gl.STATIC_DRAW); return b;
    }
    return {
      pos: buf(gl.ARRAY_BUFFER, pos), nor: buf(gl.ARRAY_BUFFER, nor), col: buf(gl.ARRAY_BUFFER, col),
      idx: buf(gl.ELEMENT_ARRAY_BUFFER, idx), count: idx.length,
      type: m.idx32 ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT,
      lo: m.lo, span: m.span, tris: m.n_triangles, k: m.downsample
    };
  }

  function shader(type, src) {
    var s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }
  var prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER,
    "attribute vec3 p; attribute vec3 n; attribute vec3 c; uniform mat4 mv; uniform mat4 pr;" +
    "varying vec3 vn; varying vec3 vc; void main() { vn = mat3(mv) * n; vc = c; gl_Position = pr * mv * vec4(p, 1.0); }"));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER,
    "precision mediump float; varying vec3 vn; varying vec3 vc; uniform float alpha;" +
    "void main() { vec3 nn = normalize(vn); float d = abs(nn.z);" +
    " gl_FragColor = vec4(vc * (0.3 + 0.7 * d), alpha); }"));
  gl.linkProgram(prog);
  gl.useProgram(prog);
  var loc = {
    p: gl.getAttribLocation(prog, "p"), n: gl.getAttribLocation(prog, "n"), c: gl.getAttribLocation(prog, "c"),
    mv: gl.getUniformLocation(prog, "mv"), pr: gl.getUniformLocation(prog, "pr"), alpha: gl.getUniformLocation(prog, "alpha")
  };

  var cache = {};
  function meshes(r) {
    if (!cache[r]) cache[r] = { first: build(runs[r].first, false), ghost: build(runs[r].first, true), last: build(runs[r].last, false) };
    return cache[r];
  }

  var yaw = -0.6, pitch = 0.5, zoom = 1.0;
  function mul(a, b) {
    var o = new Float32Array(16);
    for (var i = 0; i < 4; i++) for (var j = 0; j < 4; j++) {
      var s = 0; for (var k = 0; k < 4; k++) s += a[k * 4 + j] * b[i * 4 + k]; o[i * 4 + j] = s;
    }
    return o;
  }
  function rotX(t) { var c = Math.cos(t), s = Math.sin(t); return new Float32Array([1,0,0,0, 0,c,s,0, 0,-s,c,0, 0,0,0,1]); }
  function rotY(t) { var c = Math.cos(t), s = Math.sin(t); return new Float32Array([c,0,-s,0, 0,1,0,0, s,0,c,0, 0,0,0,1]); }
  function trans(x, y, z) { return new Float32Array([1,0,0,0, 0,1,0,0, 0,0,1,0, x,y,z,1]); }
  function persp(fovy, asp, near, far) {
    var f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
    return new Float32Array([f / asp,0,0,0, 0,f,0,0, 0,0,(far + near) * nf,-1, 0,0,2 * far * near * nf,0]);
  }

  function draw() {
    var r = +document.getElementById("v-run").value;
    var mode = document.querySelector("input[name=v-frame]:checked").value;
    var ms = meshes(r), ref = ms.last || ms.first;
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    if (!ref) { info.textContent = "No bone surface in this run."; return; }
    var c = [0, 1, 2].map(function (a) { return ref.lo[a] + ref.span[a] / 2; });
    var rad = 0.5 * Math.sqrt(ref.span[0] * ref.span[0] + ref.span[1] * ref.span[1] + ref.span[2] * ref.span[2]);
    var dist = rad / Math.sin(Math.PI / 12) / zoom;
    var mv = mul(trans(0, 0, -dist), mul(rotX(pitch), mul(rotY(yaw), mul(rotX(-Math.PI / 2), trans(-c[0], -c[1], -c[2])))));
    gl.uniformMatrix4fv(loc.mv, false, mv);
    gl.uniformMatrix4fv(loc.pr, false, persp(Math.PI / 6, canvas.width / canvas.height, dist / 100, dist + 4 * rad));
    function one(m, alpha) {
      if (!m) return;
      [[loc.p, m.pos], [loc.n, m.nor], [loc.c, m.col]].forEach(function (x) {
        gl.bindBuffer(gl.ARRAY_BUFFER, x[1]); gl.enableVertexAttribArray(x[0]); gl.vertexAttribPointer(x[0], 3, gl.FLOAT, false, 0, 0);
      });
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, m.idx);
      gl.uniform1f(loc.alpha, alpha);
      gl.drawElements(gl.TRIANGLES, m.count, m.type, 0);
    }
    gl.enable(gl.DEPTH_TEST);
    gl.disable(gl.BLEND);
    if (mode === "first") one(ms.first, 1.0);
    else one(ms.last, 1.0);
    if (mode === "both") {
      gl.enable(gl.BLEND); gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA); gl.depthMask(false);
      one(ms.ghost, 0.25);
      gl.depthMask(true);
    }
    var m = mode === "first" ? ms.first : ms.last, d = mode === "first" ? runs[r].day0 : runs[r].day1;
    info.textContent = runs[r].name + ", day " + d + (m ? ": " + m.tris + " triangles (block " + m.k + ")" : "");
  }

  var drag = null;
  canvas.addEventListener("mousedown", function (e) { drag = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    yaw += (e.clientX - drag[0]) * 0.01; pitch += (e.clientY - drag[1]) * 0.01;
    pitch = Math.max(-1.55, Math.min(1.55, pitch)); drag = [e.clientX, e.clientY]; draw();
  });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault(); zoom *= Math.exp(-e.deltaY * 0.001); zoom = Math.max(0.2, Math.min(20, zoom)); draw();
  }, { passive: false });
  canvas.addEventListener("dblclick", function () { yaw = -0.6; pitch = 0.5; zoom = 1.0; draw(); });
  document.getElementById("v-run").addEventListener("change", draw);
  document.querySelectorAll("input[name=v-frame]").forEach(function (x) { x.addEventListener("change", draw); });
  draw();
  canvas.setAttribute("data-ready", "1");
})();
"""
