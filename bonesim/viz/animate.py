"""Animate every saved frame of a result to a GIF or an MP4."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bonesim.errors import BonesimError, InputError
from bonesim.io.outputs import atomic_write, check_output
from bonesim.io.result import Result
from bonesim.viz.render import iter_frames

log = logging.getLogger(__name__)

FORMATS = (".gif", ".mp4")


def animate(
    result: str | os.PathLike,
    path: str | os.PathLike,
    *,
    fps: float = 4.0,
    frames: Sequence[int] | None = None,
    camera: str = "iso",
    size: tuple[int, int] = (800, 600),
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> Path:
    """Render saved frames of ``result`` into ``path`` (``.gif`` or ``.mp4``).

    Every frame is seen from the same camera (fixed by the volume's box), with
    the same colours, relative to the first saved frame.

    Parameters
    ----------
    result : path
        A schema-1 result file.
    path : path
        Output; the extension picks the format (GIF via Pillow, MP4/H.264
        via imageio-ffmpeg). Written to a temporary name, renamed when done.
    fps : float
        Frames per second.
    frames : sequence of int, optional
        Saved frames to use (default all).
    camera, size, **kwargs
        As :func:`bonesim.viz.render_frame` (``clip``, ``downsample``, ...).
    overwrite : bool
        Replace an existing ``path``.
    progress : callable(done, total), optional
        Called after each frame is rendered.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> animate("run.h5", "run.mp4", fps=6)  # doctest: +SKIP
    """
    from bonesim._optional import require

    imageio = require("imageio.v2", "animations")

    out = Path(path)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise BonesimError(f"animation must end in .gif or .mp4, got {out.name!r}")
    if ext == ".mp4":
        require("imageio_ffmpeg", "MP4 animations")
    if not fps > 0:
        raise InputError(f"`fps` must be > 0, got {fps!r}")
    check_output(out, overwrite=overwrite, inputs=[result], suffixes=FORMATS, what="animation")
    info = Result.open(result)
    images = iter_frames(info, frames, camera=camera, size=size, progress=progress, **kwargs)
    with atomic_write(out, overwrite=overwrite, inputs=[result], suffixes=FORMATS, what="animation") as tmp:
        if ext == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = imageio.get_writer(
                tmp, fps=fps, codec="libx264", quality=8, pixelformat="yuv420p", macro_block_size=2
            )
        n = 0
        with writer:
            for img in images:
                writer.append_data(img)
                n += 1
    log.info("wrote %d frames to %s", n, out)
    return out
