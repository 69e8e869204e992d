"""`morphometry`: all standard trabecular indices of one bone-fraction volume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from bonesim._validation import check_choice
from bonesim.errors import InputError
from bonesim.morphometry._common import as_fraction_volume, binarise, undefined
from bonesim.volume import Volume

log = logging.getLogger(__name__)

#: Index groups accepted by ``indices=`` and the keys each adds to the result.
INDEX_KEYS: dict[str, tuple[str, ...]] = {
    "bv_tv": ("bv_tv",),
    "bs": ("bs_bv_per_mm", "bs_tv_per_mm"),
    "tb_th": ("tb_th_um", "tb_th_sd_um", "tb_th_max_um"),
    "tb_sp": ("tb_sp_um", "tb_sp_sd_um", "tb_sp_max_um"),
    "tb_n": ("tb_n_per_mm",),
    "conn_d": ("conn_d_per_mm3", "conn_d_purified_per_mm3", "n_particles", "n_cavities", "cavity_voxels"),
    "smi": ("smi",),
    "da": ("da",),
}
ALL_INDICES: tuple[str, ...] = tuple(INDEX_KEYS)
BACKENDS = ("cpu", "gpu")


def _indices(indices: Iterable[str] | str) -> list[str]:
    if isinstance(indices, str):
        indices = ALL_INDICES if indices == "all" else [indices]
    out = []
    for name in indices:
        check_choice(name, ALL_INDICES, name="indices")
        out.append(name)
    if "tb_n" in out:  # Tb.N = 1 / (Tb.Th + Tb.Sp)
        out += [n for n in ("tb_th", "tb_sp") if n not in out]
    return [n for n in ALL_INDICES if n in out]


def _crop_to_roi(data: np.ndarray, roi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` with the bone outside ``roi`` removed, both cropped to the region's box (plus one voxel).

    >>> d = np.full((4, 4, 4), 255, np.uint8); r = np.zeros((4, 4, 4), bool); r[1:3, 1:3, 1:2] = True
    >>> c, i = _crop_to_roi(d, r)
    >>> c.shape, int(c.sum() // 255), int(i.sum())
    ((4, 4, 3), 4, 4)
    """
    roi = np.asarray(roi, dtype=bool)
    if roi.shape != data.shape:
        raise InputError(f"`roi` is {roi.shape}, the volume {data.shape}")
    if not roi.any():
        raise InputError("`roi` selects no voxel")
    box = tuple(
        slice(max(int(i.min()) - 1, 0), min(int(i.max()) + 2, n))
        for i, n in zip(np.nonzero(roi), roi.shape, strict=True)
    )
    inside = roi[box]
    return np.where(inside, data[box], np.uint8(0)), inside


def morphometry(
    volume: Volume | np.ndarray,
    *,
    voxel_size_um: float | None = None,
    indices: Iterable[str] | str = ALL_INDICES,
    backend: str = "cpu",
    timings: dict[str, float] | None = None,
    maps: dict[str, np.ndarray] | None = None,
    roi: np.ndarray | None = None,
) -> dict[str, float]:
    """Standard trabecular indices (Bouxsein et al. 2010 nomenclature) of a bone volume.

    Parameters
    ----------
    volume : Volume or ndarray
        uint8 bone fraction (255 = bone), a bool mask or a float fraction in
        [0, 1]; plain arrays need ``voxel_size_um``. Bone is the part above
        the 127.5 level (the marching-cubes surface).
    voxel_size_um : float, optional
        Isotropic voxel edge (µm); anisotropic voxels are refused.
    indices : sequence of str or 'all'
        Any of ``bv_tv, bs, tb_th, tb_sp, tb_n, conn_d, smi, da``.
    backend : {'cpu', 'gpu'}
        'gpu' computes BV/TV, Tb.Th and Tb.Sp with CuPy (the rest on the CPU).
    timings : dict, optional
        Filled with seconds per index group.
    maps : dict, optional
        Filled with the local-thickness maps ``tb_th`` and ``tb_sp`` (µm) and their
        histograms ``tb_th_histogram`` / ``tb_sp_histogram`` as ``(edges_um, counts)``
        (bins one voxel of diameter wide).
    roi : ndarray of bool, optional
        Region of interest (the volume's shape), e.g. the trabecular
        compartment (:func:`bonesim.morphometry.compartments.region`): bone
        outside it is ignored, TV is the region's volume, Tb.Sp measures the
        marrow inside it only (the volume is cropped to the region's box
        first). Bone cut by the region's border shows cut faces there, which
        count as bone surface (as in a scanner's VOI). CPU only.

    Returns
    -------
    dict
        ``bv_tv``; ``bs_bv_per_mm``, ``bs_tv_per_mm``; ``tb_th_um``,
        ``tb_th_sd_um``, ``tb_th_max_um``; the same for ``tb_sp``;
        ``tb_n_per_mm`` = 1/(Tb.Th + Tb.Sp); ``conn_d_per_mm3`` (raw bone) and
        ``conn_d_purified_per_mm3`` (BoneJ-style purified bone: largest particle,
        cavities filled), ``n_particles``, ``n_cavities``, ``cavity_voxels`` (bone
        particles and enclosed marrow cavities of the raw bone); ``smi``;
        ``da`` (MIL, max/min ≥ 1). An index that is undefined for the volume
        (no bone, no marrow) is NaN with a :class:`MorphometryWarning`.

    References
    ----------
    Bouxsein ML et al. (2010). J Bone Miner Res 25:1468-1486 (nomenclature).
    Hildebrand T, Rüegsegger P (1997). J Microsc 185:67-75 (Tb.Th, Tb.Sp).
    Hildebrand T, Laib A, Müller R, et al. (1999). Direct three-dimensional
    morphometric analysis of human cancellous bone. J Bone Miner Res
    14:1167-1174 (Tb.N as the inverse mean distance between structure mid-axes,
    here estimated as 1/(Tb.Th + Tb.Sp)).
    Odgaard A, Gundersen HJG (1993). Bone 14:173-182 (Conn.D).
    Harrigan TP, Mann RW (1984). J Mater Sci 19:761-767 (MIL fabric, DA).

    Examples
    --------
    >>> from bonesim.phantom import plate
    >>> m = morphometry(plate((24, 24, 24), 6), voxel_size_um=20, indices=["bv_tv", "tb_th"])
    >>> m["bv_tv"], m["tb_th_um"]
    (0.25, 120.0)
    """
    from bonesim.morphometry import anisotropy, basic, thickness, topology

    check_choice(backend, BACKENDS, name="backend")
    vol = as_fraction_volume(volume, voxel_size_um)
    h = vol.voxel_size_um
    want = _indices(indices)
    data = vol.data
    inside = None
    if roi is not None:
        if backend != "cpu":
            raise InputError("a region of interest (`roi`) needs backend='cpu'")
        data, inside = _crop_to_roi(data, roi)
    mask = binarise(data)
    n_bone = int(np.count_nonzero(mask))
    n_all = mask.size if inside is None else int(np.count_nonzero(inside))
    tv_mm3 = n_all * (h / 1000.0) ** 3
    out: dict[str, Any] = {}
    timings = {} if timings is None else timings

    def timed(name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - t0

    gpu = None
    if backend == "gpu":
        from bonesim.morphometry import gpu as gpu

    def bv_tv() -> float:
        if inside is not None:
            return basic.bone_volume_fraction(data) * data.size / n_all
        return gpu.bone_volume_fraction(data) if gpu else basic.bone_volume_fraction(data)

    def do_bv_tv() -> None:
        out["bv_tv"] = bv_tv()

    def do_bs() -> None:
        bs_um2 = basic.bone_surface_um2(data, h)
        bv_um3 = bv_tv() * n_all * h**3
        out["bs_tv_per_mm"] = bs_um2 / (n_all * h**3) * 1000.0
        out["bs_bv_per_mm"] = bs_um2 / bv_um3 * 1000.0 if bv_um3 > 0 else undefined("BS/BV", "no bone")

    edt_cache: list[np.ndarray] = []

    def shared_edt() -> np.ndarray | None:
        # Tb.Th and Tb.Sp both wanted: one two-phase transform serves both (the first computes
        # it and keeps it, the second takes it, so it is not held for the other indices)
        if not {"tb_th", "tb_sp"} <= set(want):
            return None
        if edt_cache:
            return edt_cache.pop()
        both = thickness.edt_squared_phases(mask)
        edt_cache.append(both)
        return both

    def do_thickness(key: str, phase: np.ndarray, n_phase: int, what: str) -> None:
        if n_phase == 0 or n_phase == n_all:
            why = f"the volume has no {what}" if n_phase == 0 else f"the volume is all {what}"
            label = {"tb_th": "Tb.Th", "tb_sp": "Tb.Sp"}[key]
            out[f"{key}_um"] = undefined(label, why)
            out[f"{key}_sd_um"] = out[f"{key}_max_um"] = float("nan")
            return
        if maps is None and not gpu:  # only the statistics: no float map, no array of the values
            r2 = thickness.local_thickness_squared(phase)
            out.update(_thickness_stats_squared(r2, r2.size - n_phase, h).as_dict(key))
            return
        if gpu:
            lt = gpu.local_thickness(phase, voxel_size_um=h)
        else:
            lt = thickness.local_thickness(phase, voxel_size_um=h, edt2=shared_edt())
        st = thickness.thickness_stats(lt[phase], h)
        out.update(st.as_dict(key))
        if maps is not None:
            maps[key] = lt
            maps[f"{key}_histogram"] = (st.hist_edges_um, st.hist_counts)

    def do_tb_sp() -> None:
        marrow = ~mask if inside is None else inside & ~mask  # freed as soon as Tb.Sp is done
        do_thickness("tb_sp", marrow, n_all - n_bone, "marrow")

    def do_tb_n() -> None:
        th, sp = out.get("tb_th_um", np.nan), out.get("tb_sp_um", np.nan)
        out["tb_n_per_mm"] = 1000.0 / (th + sp) if np.isfinite(th + sp) else float("nan")

    def do_conn() -> None:
        if n_bone == 0:
            out["conn_d_per_mm3"] = undefined("Conn.D", "the volume has no bone")
            out["conn_d_purified_per_mm3"] = float("nan")
        else:
            raw = topology.connectivity(mask)
            pure = topology.purify(mask)
            same = np.array_equal(pure, mask)  # one particle, no cavity: nothing to recount
            out["conn_d_per_mm3"] = raw / tv_mm3
            out["conn_d_purified_per_mm3"] = (raw if same else topology.connectivity(pure)) / tv_mm3
        out.update(topology.particle_counts(mask).as_dict())

    def do_smi() -> None:
        smi = basic.structure_model_index(data, h) if n_bone else float("nan")
        out["smi"] = smi if np.isfinite(smi) else undefined("SMI", "the volume has no bone surface")

    def do_da() -> None:
        da = anisotropy.degree_of_anisotropy(mask) if 0 < n_bone < n_all else float("nan")
        out["da"] = da if np.isfinite(da) else undefined("DA", "the volume has no bone/marrow interface")

    steps: dict[str, Callable[[], None]] = {
        "bv_tv": do_bv_tv,
        "bs": do_bs,
        "tb_th": lambda: do_thickness("tb_th", mask, n_bone, "bone"),
        "tb_sp": do_tb_sp,
        "tb_n": do_tb_n,
        "conn_d": do_conn,
        "smi": do_smi,
        "da": do_da,
    }
    for name in want:
        timed(name, steps[name])
    log.debug("morphometry timings: %s", timings)
    return {k: float(v) for k, v in out.items()}


def _thickness_stats_squared(r2: np.ndarray, n_outside: int, h: float) -> Any:
    """:func:`~bonesim.morphometry.thickness.thickness_stats` of the phase from its squared local radii.

    ``r2`` is :func:`~bonesim.morphometry.thickness.local_thickness_squared` (0 outside the
    phase, >= 1 inside, ``n_outside`` voxels outside): the values are counted per squared
    radius, a slab at a time, and mapped to µm exactly as ``local_thickness`` maps them, so the
    maximum and the histogram are the same and the mean and SD differ only by summation order.
    """
    from bonesim.morphometry.thickness import ThicknessStats

    counts = np.zeros(1, np.int64)
    for z0 in range(0, r2.shape[0], 16):
        c = np.bincount(r2[z0 : z0 + 16].reshape(-1))
        if c.size > counts.size:
            c[: counts.size] += counts
            counts = c
        else:
            counts[: c.size] += c
    counts[0] -= n_outside
    u = np.flatnonzero(counts)
    w = counts[u]
    tau = (2.0 * np.sqrt(u.astype(np.int32), dtype=np.float32) * np.float32(h)).astype(np.float32)
    v = tau.astype(np.float64)
    n = int(w.sum())
    if n == 0:
        nan = float("nan")
        return ThicknessStats(nan, nan, nan, np.zeros(1), np.zeros(0, np.int64))
    mean = float((v * w).sum() / n)
    sd = float(np.sqrt(max((((v - mean) ** 2) * w).sum() / n, 0.0)))
    top = float(v.max())
    nb = max(1, int(np.ceil(top / h)) + 1)
    edges = np.arange(nb + 1) * h
    hist, _ = np.histogram(v, bins=edges, weights=w)
    return ThicknessStats(mean, sd, top, edges, hist.astype(np.int64))
