"""What a busy GPU node draws: the power model's figure, else its GPUs' NVML power limits plus
the host's draw, averaged over the site's ready nodes."""

from typing import Any

import pytest

from hashgrid.contracts.api.power import GpuEconomics, PowerModel
from hashgrid.server.power.gpu_power import DEFAULT_BUSY_KW, busy_power, node_busy_kw
from hashgrid.server.power.planning import NodeWork, node_kw


def _node(*limits_w: float | None) -> dict[str, Any]:
    gpus = [{"index": i, "power_limit_w": w} for i, w in enumerate(limits_w)]
    return {"hostname": "rig", "gpus": gpus}


def test_a_node_draws_its_gpus_limits_plus_its_host() -> None:
    assert node_busy_kw(_node(*[700.0] * 8), 1.5) == pytest.approx(7.1)
    assert node_busy_kw(_node(700.0, None), 1.5) is None  # a GPU that reports no limit
    assert node_busy_kw(_node(), 1.5) is None  # NVML saw no GPU


def test_a_node_whose_limits_are_too_small_to_be_real_reports_nothing() -> None:
    """Plans divide by the figure: a node reporting 0 W and no host draw is left out."""
    assert node_busy_kw(_node(0.0, 5e-324), 0.0) is None
    assert busy_power(GpuEconomics(host_kw=0.0), [_node(0.0)]).kw == DEFAULT_BUSY_KW


def test_the_site_counts_the_mean_of_its_nodes_that_report() -> None:
    nodes = [_node(*[700.0] * 8), _node(*[350.0] * 4), _node(None), _node()]
    busy = busy_power(GpuEconomics(host_kw=1.0), nodes)
    assert busy.kw == pytest.approx(((1.0 + 5.6) + (1.0 + 1.4)) / 2)
    assert busy.source == "NVML power limits of 2 nodes, plus 1 kW host"


def test_the_power_model_wins_and_the_default_stands_in_for_no_report() -> None:
    nodes = [_node(*[700.0] * 8)]
    assert busy_power(GpuEconomics(busy_kw=9.0), nodes).kw == 9.0
    assert busy_power(GpuEconomics(busy_kw=9.0), nodes).source == "power model"
    assert busy_power(GpuEconomics(), [_node()]).kw == DEFAULT_BUSY_KW


def test_a_node_idles_at_no_more_than_it_draws_busy() -> None:
    model = PowerModel.model_validate(
        {
            "gpus": {"idle_kw": 1.6},
            "price": {"kind": "fixed", "usd_per_mwh": 30.0},
            "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
        }
    )
    assert node_kw(model, NodeWork(idle=1, busy_kw=1.2)) == (1.2, 1.2)
    assert node_kw(model, NodeWork(idle=1)) == (DEFAULT_BUSY_KW, 1.6)
