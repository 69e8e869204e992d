"""Off-screen OpenGL for PyVista/VTK: probe it in a child process, then pick a window.

VTK can crash the whole interpreter (not raise) when no OpenGL context can be
made, so :func:`require_rendering` first runs a tiny off-screen render in a
child process. The first window type that works is exported as
``VTK_DEFAULT_OPENGL_WINDOW`` so every later render in this process uses it:

1. whatever the user set in ``VTK_DEFAULT_OPENGL_WINDOW``;
2. with ``DISPLAY`` set, VTK's default (X11/GLX);
3. ``vtkEGLRenderWindow`` (EGL: headless GPU nodes, or Mesa's llvmpipe);
4. ``vtkOSOpenGLRenderWindow`` (OSMesa software rendering, ``libosmesa6``).

The probe result is cached for the life of the process.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

from bonesim.errors import BonesimError

log = logging.getLogger(__name__)

ENV_WINDOW = "VTK_DEFAULT_OPENGL_WINDOW"
EGL = "vtkEGLRenderWindow"
OSMESA = "vtkOSOpenGLRenderWindow"
_DEFAULT = ""  # let VTK choose (X11 when DISPLAY is set)

_PROBE = r"""
import sys
import pyvista as pv
p = pv.Plotter(off_screen=True, window_size=(48, 32))
p.add_mesh(pv.Sphere(), color="white")
img = p.screenshot(return_img=True)
cls = type(p.ren_win).__name__
p.close()
ok = img.shape[:2] == (32, 48) and int(img.max()) > int(img.min())
print("BONESIM_GL_PROBE", cls, "ok" if ok else "blank")
"""


@dataclass(frozen=True)
class GLInfo:
    """Outcome of the OpenGL probe.

    Attributes
    ----------
    ok : bool
        A tiny off-screen render produced a non-blank image.
    window : str
        The value of ``VTK_DEFAULT_OPENGL_WINDOW`` that worked ("" = VTK's default).
    window_class : str
        The render-window class VTK created (e.g. ``vtkEGLRenderWindow``).
    reason : str
        One sentence on why rendering is unavailable (empty when ``ok``).
    """

    ok: bool
    window: str = ""
    window_class: str = ""
    reason: str = ""


def _candidates() -> list[str]:
    user = os.environ.get(ENV_WINDOW)
    if user:
        return [user]
    out = [_DEFAULT] if os.environ.get("DISPLAY") else []
    return [*out, EGL, OSMESA]


def _try(window: str, timeout: float) -> tuple[bool, str]:
    env = dict(os.environ)
    env.pop(ENV_WINDOW, None)
    if window:
        env[ENV_WINDOW] = window
    env.setdefault("PYVISTA_OFF_SCREEN", "true")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return False, f"the probe with {window or 'the default window'} timed out after {timeout:g} s"
    for line in proc.stdout.splitlines():
        if line.startswith("BONESIM_GL_PROBE"):
            _, cls, state = line.split()
            if state == "ok":
                return True, cls
            return False, f"{cls} rendered a blank image"
    tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    if "No module named" in proc.stderr:
        return False, "PyVista/VTK is not installed (pip install 'bonesim[viz]')"
    return False, f"{window or 'default window'} failed (exit {proc.returncode}): {tail[:160]}"


@functools.cache
def probe(timeout: float = 60.0) -> GLInfo:
    """Find a working off-screen OpenGL window in a child process (cached).

    Returns
    -------
    GLInfo
        ``ok`` and the window class on success, else the reason.
    """
    reasons = []
    for window in _candidates():
        ok, info = _try(window, timeout)
        if ok:
            log.info("off-screen OpenGL: %s", info)
            return GLInfo(True, window=window, window_class=info)
        reasons.append(info)
        log.debug("OpenGL probe: %s", info)
    if any("not installed" in r for r in reasons):
        return GLInfo(False, reason="PyVista/VTK is not installed (pip install 'bonesim[viz]')")
    return GLInfo(
        False,
        reason=(
            "no off-screen OpenGL is available (tried "
            + ", ".join(w or "X11" for w in _candidates())
            + "); install Mesa (Debian: apt-get install libegl1 libgl1 libosmesa6) "
            "or see docs/visualisation.md"
        ),
    )


def require_rendering() -> GLInfo:
    """Make sure off-screen rendering works here, and select the window type.

    Raises
    ------
    BonesimError
        One sentence saying that no OpenGL is available and what to install.
    """
    from bonesim._optional import require

    require("pyvista", "rendering")  # in this process first: one sentence naming the extra
    info = probe()
    if not info.ok:
        raise BonesimError(f"cannot render: {info.reason}")
    if info.window:
        os.environ[ENV_WINDOW] = info.window
    os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")
    return info
