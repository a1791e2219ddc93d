"""The fleet simulator, pure: replays demand, prices and latencies hour by hour through the
scheduler (placement), the router's site order and the power planner's online policy, over
many sites and weeks to a year, and answers what-if questions by running a changed fleet beside
the baseline; `joint_hindsight` is the most any run could earn. No I/O: `hashgrid.sim_data`
reads the data sets, `hashgrid.cli.sim` the rest.
"""

from hashgrid.sim.figures import difference, site_figures, totals
from hashgrid.sim.fleet import FleetResult, SiteResult, joint_hindsight, simulate
from hashgrid.sim.model import Clients, DemandSpec, Fleet, NodeType, SimSite, convert_asics
from hashgrid.sim.scenario import Scenario, ScenarioError, SiteSpec, parse_scenario

__all__ = [
    "Clients",
    "DemandSpec",
    "Fleet",
    "FleetResult",
    "NodeType",
    "Scenario",
    "ScenarioError",
    "SimSite",
    "SiteResult",
    "SiteSpec",
    "convert_asics",
    "difference",
    "joint_hindsight",
    "parse_scenario",
    "simulate",
    "site_figures",
    "totals",
]
