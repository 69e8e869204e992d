"""``bonesim compare`` and :func:`bonesim.compare.compare`: changes since day 0 and net effects."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from bonesim.cli import main
from bonesim.compare import compare, format_table
from bonesim.errors import BonesimError
from tests.viz._results import write_result


@pytest.fixture
def runs(tmp_path):
    a = write_result(tmp_path / "a.h5", scenario="healthy-adult", loss=False, morphometry=True)
    b = write_result(tmp_path / "b.h5", scenario="postmenopausal", morphometry=True, bvtv_scale=0.9)
    return a, b


def test_change_and_net_effect_are_computed_from_the_tables(runs):
    a, b = runs
    c = compare([a, b])
    assert c.day == 360.0 and c.scenarios == ["healthy-adult", "postmenopausal"]
    rows = {r["quantity"]: r for r in c.rows}
    assert {"bv_tv", "tb_th_um", "tb_n_per_mm", "acf_per_year"} <= set(rows)
    bv = rows["bv_tv"]
    assert bv["change_pct"][0] == pytest.approx(0.0, abs=1e-12)  # nothing changes in run a
    want = 100 * (bv["end"][1] / bv["day0"][1] - 1)
    assert bv["change_pct"][1] == pytest.approx(want) and want < 0
    assert bv["net_pp"] == [0.0, pytest.approx(want)]
    th = rows["tb_th_um"]  # linspace(160, 150): -6.25 % in both runs, so no net effect
    assert th["change_pct"] == [pytest.approx(-6.25), pytest.approx(-6.25)]
    assert th["net_pp"][1] == pytest.approx(0.0)
    # physiology is daily: acf goes 0.3 -> 0.3 + 0.1·360/361
    acf = rows["acf_per_year"]
    assert acf["end"][0] == pytest.approx(0.3 + 0.1 * 360 / 361)


def test_a_day_between_frames_takes_the_last_frame_before_it(runs):
    a, b = runs
    c = compare([a, b], day=200.0)  # frames at 0, 120, 240, 360
    th = {r["quantity"]: r for r in c.rows}["tb_th_um"]
    assert th["end"][0] == pytest.approx(np.linspace(160, 150, 4)[1])
    with pytest.raises(BonesimError, match="outside 0"):
        compare([a, b], day=400.0)


def test_the_common_day_is_the_shortest_run(tmp_path, runs):
    a, _ = runs
    short = write_result(tmp_path / "s.h5", frames=3, morphometry=True)
    assert compare([a, short]).day == 240.0


def test_missing_columns_are_left_out_and_nan_is_null_in_json(tmp_path, runs):
    a, _ = runs
    plain = write_result(tmp_path / "p.h5", morphometry=False, physiology=False)
    c = compare([a, plain])
    assert [r["quantity"] for r in c.rows] == ["bv_tv"]
    c.rows[0]["end"][0] = float("nan")
    assert json.loads(json.dumps(c.to_dict()))["rows"][0]["end"][0] is None
    assert not c.same_input  # hand-made fixtures record no input digest


def test_table_text_names_runs_and_net_effect(runs):
    text = format_table(compare(list(runs)))
    assert "reference: healthy-adult" in text and "postmenopausal" in text
    assert "net " in text and "Tb.Th" in text
    assert "did not all start from the same input bone" in text


def test_text_table_and_report_share_every_cell(runs):
    """One formatting for both: each cell of the text table appears, HTML-escaped, in the report's table."""
    import html

    from bonesim.compare import comparison_text
    from bonesim.viz.report import _comparison_html

    c = compare(list(runs))
    text, page = format_table(c), _comparison_html(list(runs))
    cells = [x for _, row in comparison_text(c).rows for x in row]
    assert len(cells) == 2 * len(c.rows) and any("net " in x and " pp)" in x for x in cells)
    for x in cells:
        assert x in text and f"<td>{html.escape(x)}</td>" in page


def test_cli_table_json_and_figure(runs, tmp_path):
    a, b = runs
    js, png = tmp_path / "c.json", tmp_path / "c.png"
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--json", str(js), "-o", str(png)])
    assert r.exit_code == 0, r.output
    data = json.loads(js.read_text())
    assert data["runs"] == [str(a), str(b)] and data["day"] == 360.0
    bv = next(x for x in data["rows"] if x["quantity"] == "bv_tv")
    assert math.isclose(bv["net_pp"][1], compare([a, b]).rows[0]["net_pp"][1])
    assert png.stat().st_size > 1000
    again = CliRunner().invoke(main, ["compare", str(a), str(b), "--json", str(js)])
    assert again.exit_code == 1 and "--overwrite" in again.output  # nothing overwritten silently


def test_cli_refuses_one_file_and_bad_day(runs):
    a, b = runs
    one = CliRunner().invoke(main, ["compare", str(a)])
    assert one.exit_code == 2 and "at least two" in one.output
    bad = CliRunner().invoke(main, ["compare", str(a), str(b), "--day", "-3"])
    assert bad.exit_code == 1 and "outside 0" in bad.output and "Traceback" not in bad.output


def test_same_input_is_recognised_on_real_runs(tmp_path):
    from bonesim import Volume, phantom, write_volume

    bone = tmp_path / "bone.h5"
    write_volume(bone, Volume(phantom.trabecular((20, 20, 20), 25.0, bvtv=0.25, seed=1), 25.0), xdmf=False)
    outs = []
    for name in ("healthy-adult", "postmenopausal"):
        out = tmp_path / f"{name}.h5"
        args = ["simulate", str(bone), str(out), "--years", "0.1", "--spinup-years", "0"]
        r = CliRunner().invoke(main, [*args, "--backend", "numpy", "--no-progress", "--scenario", name])
        assert r.exit_code == 0, r.output
        outs.append(out)
    c = compare(outs)
    assert c.same_input and c.scenarios == ["healthy-adult", "postmenopausal"]
    assert {"bv_tv", "bmd_rel"} <= {r["quantity"] for r in c.rows}
