"""The scenarios through the CA engine (slow; skipped while bonesim.engine is not there)."""

from __future__ import annotations

import pytest

from bonesim.physiology import ca_validation

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ca_validation.engine_available(), reason="bonesim.engine.simulate not available"),
]


def test_ca_follows_physiology_for_healthy_aging_menopause():
    results = ca_validation.run_ca_checks(backend="numpy")
    by_id = {r.check.id: r for r in results}
    assert {"ca-healthy", "ca-aging-woman", "ca-aging-man", "ca-meno-transmeno"} <= set(by_id)
    failed = [(r.check.id, round(r.value, 3), round(r.target, 3)) for r in results if not r.passed]
    assert not failed, ca_validation.format_ca_results(results)
    assert by_id["ca-aging-woman"].ca_net < by_id["ca-aging-man"].ca_net < 0


def test_simulate_stores_scenario(tmp_path):
    import h5py
    from bonesim.engine import simulate

    from bonesim.io.hdf5 import read_table
    from bonesim.physiology import scenario_table

    st = scenario_table("postmenopausal", 0.1)
    vol = ca_validation.default_phantom(24)
    out = tmp_path / "run.h5"
    simulate(vol, years=0.1, backend="numpy", scenario=st, spinup_years=0.05, out=out)
    with h5py.File(out, "r") as f:
        assert f["scenario"].attrs["name"] == "postmenopausal"
        assert "[menopause]" in f["scenario"].attrs["toml"]
        phys = read_table(f["tables/physiology"])
    assert "pth_pM" in phys and phys["acf_per_year"][0] == pytest.approx(st.table["acf_per_year"][0])
