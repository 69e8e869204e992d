"""`export --timelapse`: a run as a simulated time-lapse study, read back by ITK and the layout contract."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.errors import BonesimError
from bonesim.io.metaimage import mha_bytes
from bonesim.io.timelapse import export_timelapse
from bonesim.morphometry.labels import remodeling_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from _results import result_frames, write_result

VOXEL_MM = 0.02


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tl")
    # four frames, the first a spin-up frame (day -120): sessions are the three from day 0
    h5 = write_result(d / "pm_s0.h5", first_day=-120.0)
    return h5, export_timelapse(h5, d / "out", subject="pm01", site="radius")


def _read(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (bonesim[io]) reads MetaImage back")
    img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img), img.GetSpacing()


def test_sessions_hold_the_frames_from_day_zero_and_labels_each_pair(run):
    _, done = run
    frames = result_frames()[1:]  # the fixture's frames 1.. are days 0, 120, 240
    assert [p.name for p in done.images] == [f"sub-pm01_ses-00{k}_voi-radius_image.mha" for k in (1, 2, 3)]
    for path, want in zip(done.images, frames, strict=True):
        got, spacing = _read(path)
        assert np.array_equal(got, want) and spacing == pytest.approx((VOXEL_MM,) * 3)
    for path, want in zip(done.masks, frames, strict=True):
        assert np.array_equal(_read(path)[0], (want > 127).astype(np.uint8))
    assert len(done.labels) == 2
    for k, path in enumerate(done.labels):
        want = remodeling_labels(frames[k], frames[k + 1])
        got = _read(path)[0]
        assert np.array_equal(got, want) and {1, 2} <= set(np.unique(got).tolist())
        side = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
        assert side["from_session_id"] == f"00{k + 1}" and side["labels"]["3"] == "formation"
    with open(done.table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    want = remodeling_labels(frames[0], frames[1])
    assert int(rows[0]["resorption_vox"]) == int((want == 1).sum()) > 0
    assert float(rows[1]["day_to"]) == 240.0


def test_the_bone_imaging_derivatives_contract_reads_the_export(run):
    bid = pytest.importorskip(
        "bone_imaging_derivatives",
        reason="the time-lapse layout contract (pip install bone-imaging-derivatives)",
    )
    _, done = run
    (manifest,) = bid.discover_manifests(done.root, strict=True)
    assert manifest.derivative_family == "Timelapse" and manifest.dataset_root == done.root.resolve()
    maps = bid.find_records([manifest], derivative="Timelapse", role="classification_map", subject_id="pm01")
    assert [r.session_id for r in maps] == ["002", "003"] and all(r.path.is_file() for r in maps)
    (table,) = bid.find_records([manifest], role="remodelling_pairwise_table")
    assert table.path == done.table.resolve()
    index = bid.discover_artifacts(done.root)
    images = [r for r in index.records if r.kind == "image" and r.role == "image"]
    assert sorted((r.subject_id, r.session_id, r.site) for r in images) == [
        ("pm01", s, "radius") for s in ("001", "002", "003")
    ]
    segs = [r for r in index.records if r.kind == "mask"]
    assert {r.role for r in segs} == {"segmentation"} and len(segs) == 3


def test_bad_targets_are_refused_with_api_or_cli_spelling(run, tmp_path):
    from bonesim.cli import main

    h5, done = run
    with pytest.raises(BonesimError, match="overwrite=True") as exc:
        export_timelapse(h5, done.root)
    assert "--" not in str(exc.value)
    res = CliRunner().invoke(main, ["export", str(h5), "--timelapse", str(done.root)])
    assert res.exit_code == 1 and "--overwrite" in res.output and "overwrite=True" not in res.output
    res = CliRunner().invoke(main, ["export", str(h5), "--timelapse", str(tmp_path / "t"), "--subject", "a1"])
    assert res.exit_code == 0, res.output
    assert "3 session(s), 2 label map(s)" in res.output
    assert (tmp_path / "t/sub-a1/ses-003/xct/sub-a1_ses-003_voi-sim_image.mha").is_file()
    res = CliRunner().invoke(main, ["export", str(h5), "--subject", "a1"])
    assert res.exit_code == 2 and "--timelapse" in res.output


def test_metaimage_header_matches_the_array():
    b = mha_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0.5)
    head = b[: b.index(b"ElementDataFile = LOCAL\n")].decode("ascii")
    assert "DimSize = 4 3 2" in head and "ElementType = MET_UCHAR" in head and "Offset = 0.25" in head
