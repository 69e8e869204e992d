"""bonesim.physiology: the systemic model that turns a scenario into the CA's daily parameter table."""

from bonesim.physiology.model import CA_COLUMNS, run_physiology
from bonesim.physiology.scenario import SCHEMA, Scenario, list_scenarios, load_scenario

__all__ = ["CA_COLUMNS", "SCHEMA", "Scenario", "list_scenarios", "load_scenario", "run_physiology"]
