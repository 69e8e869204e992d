"""bonesim.physiology: the systemic model that turns a scenario into the CA's daily parameter table.

Public API: :class:`Scenario`, :func:`load_scenario`, :func:`list_scenarios`,
:func:`run_physiology`, :func:`scenario_table` (what ``simulate(..., scenario=...)``
takes). Rooms: ``cells`` (bone-cell module), ``calcium`` (Ca/PTH/calcitriol loop),
``factors`` (scenario inputs -> model parameters), ``scenario`` (TOML presets),
``model`` (coupling, daily table), ``calibration`` (clinical targets), ``ca_validation``
(the scenarios through the CA engine).
"""

from bonesim.physiology.model import CA_COLUMNS, ScenarioTable, run_physiology, scenario_table
from bonesim.physiology.scenario import SCHEMA, Scenario, list_scenarios, load_scenario

__all__ = [
    "CA_COLUMNS",
    "SCHEMA",
    "Scenario",
    "ScenarioTable",
    "list_scenarios",
    "load_scenario",
    "run_physiology",
    "scenario_table",
]
