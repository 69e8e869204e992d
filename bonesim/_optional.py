"""Optional packages: one sentence naming the pip extra when one is missing.

Every command that needs a package outside the core set imports it through
:func:`require` (or lets :func:`bonesim.cli._common.user_errors` turn a stray
``ModuleNotFoundError`` into the same sentence), so a missing package reads

    bonesim plot needs matplotlib: pip install 'bonesim[viz]'

and exits 1, never with a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bonesim.errors import BonesimError

#: top-level module -> (package name on PyPI, extra that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "viz"),
    "pyvista": ("pyvista", "viz"),
    "vtk": ("vtk", "viz"),
    "vtkmodules": ("vtk", "viz"),
    "imageio": ("imageio", "viz"),
    "imageio_ffmpeg": ("imageio-ffmpeg", "viz"),
    "numba": ("numba", "morph"),
    "edt": ("edt", "morph"),
    "cc3d": ("connected-components-3d", "morph"),
    "dask": ("dask[array]", "hpc"),
    "distributed": ("distributed", "hpc"),
    "dask_jobqueue": ("dask-jobqueue", "hpc"),
    "dask_cuda": ("dask-cuda", "hpc-gpu"),
    "cupy": ("cupy-cuda12x", "gpu"),
    "cupyx": ("cupy-cuda12x", "gpu"),
    "tifffile": ("tifffile", "io"),
    "hdf5plugin": ("hdf5plugin", "io"),
    "nibabel": ("nibabel", "io"),
    "pydicom": ("pydicom", "io"),
    "SimpleITK": ("SimpleITK", "io"),
    "aimio": ("aimio-py", "io"),
}


class MissingDependencyError(BonesimError, ImportError):
    """An optional package a feature needs is not installed (message names the pip extra).

    ``module`` is the missing top-level module; ``feature`` what needed it
    (``None``: the CLI names the command being run).
    """

    def __init__(self, module: str, feature: str | None = None):
        self.module, self.feature = module, feature
        super().__init__(missing_message(module, feature))
        self.name = module

    def sentence(self, command: str) -> str:
        """The message naming the CLI ``command`` (plus the feature when it is an option, ``--chunks``)."""
        if self.feature and self.feature.startswith("--"):
            command = f"{command} {self.feature}"
        return missing_message(self.module, command) or str(self)


def missing_message(module: str, feature: str | None = None) -> str | None:
    """The one sentence for a missing ``module`` (``None`` if it is not an optional package).

    >>> missing_message("matplotlib", "bonesim plot")
    "bonesim plot needs matplotlib: pip install 'bonesim[viz]'"
    >>> missing_message("dask.array", "simulate --chunks")
    "simulate --chunks needs dask: pip install 'bonesim[hpc]'"
    >>> missing_message("numpy") is None
    True
    """
    top = module.split(".")[0]
    if top not in OPTIONAL:
        return None
    _, extra = OPTIONAL[top]
    what = feature or "this feature"
    note = " (or cupy-cuda13x for CUDA 13: 'bonesim[gpu13]')" if extra == "gpu" else ""
    shown = {"cupy": "CuPy", "cupyx": "CuPy"}.get(top, top)
    return f"{what} needs {shown}: pip install 'bonesim[{extra}]'{note}"


def require(module: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    A module set to ``None`` in ``sys.modules`` (how tests hide a package)
    counts as missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = getattr(exc, "name", None) or module
        top = name.split(".")[0]
        if top not in OPTIONAL:  # the package is there but one of *its* dependencies is broken
            top = module.split(".")[0]
        if top not in OPTIONAL:
            raise
        raise MissingDependencyError(top, feature) from None


def available(module: str) -> bool:
    """Whether ``module`` imports (without raising)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


_warned: set[str] = set()


def warn_fallback(module: str, what: str) -> None:
    """Log once per process that ``what`` runs on a slower path because ``module`` is missing.

    >>> warn_fallback("numba", "doctest")  # doctest: +SKIP
    WARNING bonesim._optional: numba is not installed: doctest uses the slow fallback; pip install 'bonesim[morph]'
    """
    if module in _warned:
        return
    _warned.add(module)
    import logging

    extra = OPTIONAL.get(module.split(".")[0], (module, "all"))[1]
    logging.getLogger(__name__).warning(
        "%s is not installed: %s uses the slow fallback; pip install 'bonesim[%s]'", module, what, extra
    )
