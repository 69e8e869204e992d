"""CA backends: one protocol, a NumPy reference and a CuPy (CUDA RawKernel) implementation.

>>> b = resolve_backend("numpy")
>>> b.name
'numpy'
"""

from __future__ import annotations

import enum
import logging

from bonesim.ca.backends.base import COUNTERS, Backend, StepInputs, pack, unpack
from bonesim.errors import BonesimError, InputError

__all__ = [
    "COUNTERS",
    "Backend",
    "BackendName",
    "StepInputs",
    "make_backend",
    "pack",
    "resolve_backend",
    "unpack",
]

log = logging.getLogger(__name__)


class BackendName(str, enum.Enum):
    AUTO = "auto"
    NUMPY = "numpy"
    CUPY = "cupy"


def _cupy_problem() -> str | None:
    """None if CuPy imports and a CUDA device answers, else why not."""
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "cupy":
            return f"CuPy is not importable ({exc.__class__.__name__}: {exc})"
        return "CuPy is not installed (pip install 'bonesim[gpu]'; CUDA 13 drivers: 'bonesim[gpu13]')"
    except Exception as exc:  # a broken CUDA install
        return f"CuPy is not importable ({exc.__class__.__name__}: {exc})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device found"
    except Exception as exc:
        return f"no usable CUDA device ({exc})"
    return None


def resolve_backend(name: str | BackendName = "auto") -> Backend:
    """Return a backend by name: 'numpy', 'cupy', or 'auto' (CuPy when a device works, else NumPy).

    Logs which backend and device were chosen.

    Raises
    ------
    BonesimError
        'cupy' asked for but CuPy or a device is missing.
    """
    try:
        choice = BackendName(name if isinstance(name, str) else name.value)
    except ValueError:
        raise InputError(f"`backend` must be one of 'auto', 'numpy', 'cupy', got {name!r}") from None
    if choice is BackendName.NUMPY:
        from bonesim.ca.backends.numpy_backend import NumpyBackend

        backend: Backend = NumpyBackend()
    elif choice is BackendName.CUPY:
        problem = _cupy_problem()
        if problem:
            raise BonesimError.fix(
                f"backend 'cupy' is not available: {problem}", "use backend='numpy'", "use --backend numpy"
            )
        from bonesim.ca.backends.cupy_backend import CupyBackend

        backend = CupyBackend()
    else:
        problem = _cupy_problem()
        if problem is None:
            from bonesim.ca.backends.cupy_backend import CupyBackend

            backend = CupyBackend()
        else:
            log.info("backend auto: %s; using NumPy", problem)
            from bonesim.ca.backends.numpy_backend import NumpyBackend

            backend = NumpyBackend()
    log.info("backend %s on %s", backend.name, backend.device)
    return backend


def make_backend(name: str = "auto", *, chunks=None, steps_per_exchange: int = 16) -> Backend:
    """The backend a run asks for: ``name`` on the whole volume, or chunked with halos when ``chunks`` is set.

    The one place the CLI and batch choose a backend (chunked runs need the ``[hpc]`` extra).
    """
    if chunks is None:
        return resolve_backend(name)
    from bonesim._optional import require

    require("dask.array", "--chunks")  # before any output exists: no .partial left behind
    from bonesim.ca.backends.chunked import ChunkedBackend

    return ChunkedBackend(name, chunks=chunks, steps_per_exchange=steps_per_exchange)
