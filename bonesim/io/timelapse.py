"""Export a run as a simulated time-lapse study, in the layout of the time-lapse HR-pQCT tools.

Every saved frame from day 0 on (the spin-up is left out) becomes one
*session* of one subject, and every pair of consecutive sessions a map of
remodeling labels (:mod:`bonesim.morphometry.labels`: 1 resorption,
2 quiescent, 3 formation, 0 marrow; resorption and formation clusters under
12 voxels, 6-connected, dropped). The folder is a dataset root in the
MIDS-like layout and schema-1 manifest of the ``bone-imaging-derivatives``
contract package (family ``Timelapse``)::

    OUT/sub-S/ses-001/xct/sub-S_ses-001_voi-V_image.mha        bone fraction (uint8 0-255)
    OUT/sub-S/ses-001/xct/sub-S_ses-001_voi-V_mask-seg.mha     bone (uint8 0/1, the 127.5 level)
    OUT/sub-S/ses-00k/xct/...                                   one session per saved frame
    OUT/derivatives/Timelapse/sub-S/ses-00k/xct/sub-S_ses-00k_voi-V_desc-remodelling_map.mha
                                                                labels from session k-1 to k (k >= 2)
    OUT/derivatives/Timelapse/sub-S/xct/sub-S_voi-V_remodelling.csv
                                                                volumes per pair (voxels, % of BV)
    OUT/derivatives/Timelapse/manifest.json                     schema-1 manifest of those records

Each image has a JSON sidecar (``FILE.mha.json``) with the day, the frame
and the source. Images are MetaImage (:mod:`bonesim.io.metaimage`): no
package is needed to write them. The simulation has no motion, so every
session is already in the space of the first (``space: native``); no
registration is written.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonesim._version import __version__
from bonesim.errors import BonesimError, InputError
from bonesim.io.metaimage import write_mha
from bonesim.io.result import Result
from bonesim.morphometry.labels import FORMATION, MIN_CLUSTER, QUIESCENT, RESORPTION, remodeling_labels
from bonesim.volume import BONE_LEVEL

FAMILY = "Timelapse"
PAIR_COLUMNS = (
    "session_from",
    "session_to",
    "day_from",
    "day_to",
    "bone_from_vox",
    "resorption_vox",
    "quiescent_vox",
    "formation_vox",
    "resorption_pct_bv",
    "formation_pct_bv",
)


@dataclass
class TimelapseExport:
    """What :func:`export_timelapse` wrote (paths under ``root``)."""

    root: Path
    images: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)
    labels: list[Path] = field(default_factory=list)
    table: Path | None = None
    manifest: Path | None = None


def _token(text: str, what: str) -> str:
    """An identifier the layout accepts: letters and digits only.

    >>> _token("pm_s0-run", "subject")
    'pms0run'
    """
    t = re.sub(r"[^A-Za-z0-9]", "", str(text))
    if not t:
        raise InputError(f"`{what}` needs letters or digits, got {text!r}")
    return t


def pair_row(before: np.ndarray, after: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Voxel counts of one pair's labels and resorption/formation as % of the earlier bone volume.

    >>> a = np.zeros((1, 1, 4), np.uint8); a[..., :2] = 255
    >>> b = np.zeros_like(a); b[..., 1:3] = 255
    >>> pair_row(a, b, remodeling_labels(a, b, min_cluster=1))["formation_pct_bv"]
    50.0
    """
    n0 = int(np.count_nonzero(np.asarray(before) > BONE_LEVEL))
    counts = np.bincount(labels.ravel(), minlength=4)
    row = {
        "bone_from_vox": n0,
        "resorption_vox": int(counts[RESORPTION]),
        "quiescent_vox": int(counts[QUIESCENT]),
        "formation_vox": int(counts[FORMATION]),
    }
    row["resorption_pct_bv"] = 100.0 * row["resorption_vox"] / n0 if n0 else float("nan")
    row["formation_pct_bv"] = 100.0 * row["formation_vox"] / n0 if n0 else float("nan")
    return row


def _record(
    role, subject, site, session, path, root, *, space="native", inputs=(), metadata=None, kind="image"
):
    rec = {
        "derivative": FAMILY,
        "role": role,
        "subject_id": subject,
        "site": site,
        "session_id": session,
        "stack_index": None,
        "space": space,
        "path": str(Path(path).relative_to(root)),
        "source": "generated",
        "inputs": [str(Path(p).relative_to(root)) for p in inputs],
        "metadata": metadata or {},
        "content_type": kind,
    }
    return rec


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BonesimError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BonesimError(
            f"folder {out} is not empty; pass overwrite=True to write into it",
            cli=f"folder {out} is not empty; pass --overwrite to write into it",
        )
    if not out.parent.is_dir():
        raise BonesimError(f"output folder {out.parent} does not exist")


def export_timelapse(
    result: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    subject: str | None = None,
    site: str = "sim",
    min_cluster: int = MIN_CLUSTER,
    overwrite: bool = False,
) -> TimelapseExport:
    """Write ``result``'s frames from day 0 on as a time-lapse dataset under ``out_dir`` (see the module).

    ``subject`` defaults to the result's file name (letters and digits);
    ``site`` is the VOI token of the file names. With ``overwrite`` files of
    the same names in a non-empty ``out_dir`` are replaced (nothing else is
    removed).

    Examples
    --------
    >>> export_timelapse("run.h5", "run-timelapse")  # doctest: +SKIP
    """
    info = Result.open(result)
    if not info.has_series:
        raise BonesimError(f"{result} is a plain volume: a time-lapse needs a simulation result")
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    sub = _token(subject if subject is not None else Path(result).stem, "subject")
    voi = _token(site, "site").lower()
    idx = list(range(info.reference_index, info.n_frames))
    h = info.voxel_size_um / 1000.0
    done = TimelapseExport(root=out)
    records: list[dict] = []
    rows: list[dict] = []
    prev = None
    for k, i in enumerate(idx, start=1):
        ses = f"{k:03d}"
        bone = info.frame(i)
        day = float(info.days[i])
        where = out / f"sub-{sub}" / f"ses-{ses}" / "xct"
        where.mkdir(parents=True, exist_ok=True)
        stem = f"sub-{sub}_ses-{ses}_voi-{voi}"
        side = {"day": day, "frame": i, "source": f"bonesim {__version__} simulation {Path(result).name}"}
        img = write_mha(where / f"{stem}_image.mha", bone, h)
        seg = write_mha(where / f"{stem}_mask-seg.mha", (bone > BONE_LEVEL).astype(np.uint8), h)
        for p in (img, seg):
            p.with_name(p.name + ".json").write_text(json.dumps(side, indent=1), encoding="utf-8")
        done.images.append(img)
        done.masks.append(seg)
        if prev is not None:
            pbone, pses, pday, pseg = prev
            lab = remodeling_labels(pbone, bone, min_cluster=min_cluster)
            lwhere = out / "derivatives" / FAMILY / f"sub-{sub}" / f"ses-{ses}" / "xct"
            lwhere.mkdir(parents=True, exist_ok=True)
            lp = write_mha(lwhere / f"{stem}_desc-remodelling_map.mha", lab, h)
            meta = {
                "labels": {"0": "marrow", "1": "resorption", "2": "quiescent", "3": "formation"},
                "from_session_id": pses,
                "to_session_id": ses,
                "day_from": pday,
                "day_to": day,
                "min_cluster_voxels": int(min_cluster),
                "connectivity": 6,
            }
            lp.with_name(lp.name + ".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            done.labels.append(lp)
            records.append(
                _record("classification_map", sub, voi, ses, lp, out, inputs=(pseg, seg), metadata=meta)
            )
            rows.append(
                {
                    "session_from": pses,
                    "session_to": ses,
                    "day_from": pday,
                    "day_to": day,
                    **pair_row(pbone, bone, lab),
                }
            )
        prev = (bone, ses, day, seg)
    fam = out / "derivatives" / FAMILY
    if rows:
        twhere = fam / f"sub-{sub}" / "xct"
        twhere.mkdir(parents=True, exist_ok=True)
        table = twhere / f"sub-{sub}_voi-{voi}_remodelling.csv"
        with open(table, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=PAIR_COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        done.table = table
        records.append(
            _record(
                "remodelling_pairwise_table",
                sub,
                voi,
                None,
                table,
                out,
                space="table",
                kind="table",
                inputs=done.labels,
                metadata={"columns": list(PAIR_COLUMNS)},
            )
        )
    fam.mkdir(parents=True, exist_ok=True)
    manifest = {
        "schema_version": 1,
        "derivative_family": FAMILY,
        "software": {"name": "bonesim", "version": __version__},
        "dataset_root": ".",
        "created_at": _dt.datetime.now(_dt.timezone.utc)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z"),
        "records": records,
    }
    done.manifest = fam / "manifest.json"
    tmp = done.manifest.with_name(f".manifest.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, done.manifest)
    return done
