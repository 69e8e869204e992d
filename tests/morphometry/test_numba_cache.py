"""The Numba kernels of the morphometry and the mechanics load from Numba's disk cache in every new process (issue 17).

A kernel defined inside a function, or calling one, is keyed by its closure
cells, which differ per process: it was compiled again by every ``analyze``
(9-15 s for the ball painter on 2 cores). Module-level kernels are cached
once; measured: painter 9.5-15 s -> 0.15 s in a later process.
"""

from __future__ import annotations

import pytest

numba = pytest.importorskip("numba")

from numba.core.caching import NullCache  # noqa: E402

from bonesim.morphometry import _thickness_kernels as k  # noqa: E402
from bonesim.morphometry import thickness  # noqa: E402

KERNELS = ("ridge", "ridge_far", "block_masks", "paint", "histogram", "_find", "_isqrt_below")


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_are_module_level_and_disk_cached(name):
    d = getattr(k, name)
    assert "<locals>" not in d.py_func.__qualname__
    assert d.py_func.__closure__ is None
    assert not isinstance(d._cache, NullCache)


def test_thickness_uses_the_module_level_kernels(monkeypatch):
    monkeypatch.setattr(thickness, "_NUMBA_RIDGE", None)
    monkeypatch.setattr(thickness, "_NUMBA_KERNEL", None)
    assert thickness._numba_ridge() == (k.ridge, k.ridge_far)
    assert thickness._numba_kernel() == (k.block_masks, k.paint, k.histogram)


def test_mechanics_kernels_are_module_level_and_disk_cached():
    from bonesim.mechanics import _fast_kernels as fk
    from bonesim.mechanics import fast

    names = ("gather", "scatter", "product", "element_range", "hex8_matvec_serial", "hex8_matvec")
    for name in (*names, "packed_range", "hex8_matvec_packed_serial", "hex8_matvec_packed"):
        d = getattr(fk, name)
        assert "<locals>" not in d.py_func.__qualname__ and d.py_func.__closure__ is None, name
        assert not isinstance(d._cache, NullCache), name
    if fast._numba() is not None:
        assert fast.kernel() is fk.hex8_matvec_serial and fast.kernel(True) is fk.hex8_matvec
        assert fast.kernel_packed() is fk.hex8_matvec_packed_serial
        assert fast.kernel_packed(True) is fk.hex8_matvec_packed
