"""What a policy decided (a `Dispatch`) and what it earned at the prices that happened (a
`Ledger`). Every policy, hindsight included, is settled here by the same arithmetic, so their
figures compare."""

from dataclasses import dataclass

import numpy as np

from hashgrid.energy.prices import Market
from hashgrid.energy.site import Floats, Site


@dataclass(frozen=True)
class Dispatch:
    """Per interval: MW to each ASIC group (T x groups), GPU nodes on, busy nodes serving firm
    and flex work, and MW of ASIC load offered to the grid as flexibility."""

    mining_mw: Floats
    nodes_on: Floats
    firm_served: Floats
    flex_served: Floats
    offered_mw: Floats

    def gpu_mw(self, site: Site) -> Floats:
        return site.gpu_mw(self.nodes_on, self.firm_served + self.flex_served)


@dataclass(frozen=True)
class Ledger:
    """Per-interval power and money of one policy on one site; totals as properties."""

    policy: str
    mining_mw: Floats
    inference_mw: Floats
    offered_mw: Floats
    mining_usd: Floats
    inference_usd: Floats
    ancillary_usd: Floats
    energy_usd: Floats

    @property
    def margin_usd(self) -> Floats:
        return np.asarray(
            self.mining_usd + self.inference_usd + self.ancillary_usd - self.energy_usd, np.float64
        )

    @property
    def revenue(self) -> float:
        return float(np.sum(self.mining_usd + self.inference_usd + self.ancillary_usd))

    @property
    def cost(self) -> float:
        return float(np.sum(self.energy_usd))

    @property
    def margin(self) -> float:
        return self.revenue - self.cost


def settle(policy: str, site: Site, market: Market, dispatch: Dispatch) -> Ledger:
    """Price a dispatch: hashing at its day's hashprice, inference per node-hour served,
    offered MW at the ancillary price, and all energy at the real-time price."""
    dt = market.interval_h
    value = site.mining_value(market.hashprice)
    mining_mw = dispatch.mining_mw.sum(axis=1)
    gpu_mw = dispatch.gpu_mw(site)
    inference = dt * (
        dispatch.firm_served * site.gpus.firm_usd_per_node_hour
        + dispatch.flex_served * site.gpus.flex_usd_per_node_hour
    )
    return Ledger(
        policy=policy,
        mining_mw=mining_mw,
        inference_mw=gpu_mw,
        offered_mw=dispatch.offered_mw,
        mining_usd=dt * (dispatch.mining_mw * value).sum(axis=1),
        inference_usd=inference,
        ancillary_usd=dt * dispatch.offered_mw * market.ancillary,
        energy_usd=dt * (mining_mw + gpu_mw) * market.rt,
    )
