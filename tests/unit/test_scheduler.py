"""The pure placement planner: where missing replicas go (node and GPUs), which go away, and why
some wait. Invariants over random snapshots are in test_scheduler_properties.py."""

import random
from dataclasses import replace

from hashgrid.scheduler import Place, Plan, PowerState, Remove, Snapshot, Tier, Unplaced, plan

from support.scheduler import GIB, L4, MIB, apply, cpu, dep, gpu, rep, site, snap


def placed_nodes(p: Plan) -> list[str]:
    return [x.node_id for x in p.places]


# --- placing on CPU nodes (RAM in place of GPU memory) -------------------------------------


def test_places_missing_replica_on_the_only_node_that_fits() -> None:
    p = plan(snap([cpu("small", memory=GIB // 2), cpu("big")], [dep(memory=GIB)]))
    assert p.places == [Place("d", "big")]
    assert p.removes == []
    assert p.unplaced == []


def test_places_only_the_missing_count() -> None:
    p = plan(snap([cpu("a"), cpu("b")], [dep(replicas=3)], [rep("r1", "d", "a")]))
    assert len(p.places) == 2
    assert p.removes == []


def test_exact_fit_is_allowed() -> None:
    p = plan(snap([cpu("a", memory=GIB)], [dep(memory=GIB)]))
    assert p.places == [Place("d", "a")]


def test_stacks_on_one_node_when_it_is_the_only_fit() -> None:
    p = plan(snap([cpu("a", memory=3 * GIB)], [dep(replicas=3)]))
    assert placed_nodes(p) == ["a", "a", "a"]


def test_memory_placed_for_one_deployment_counts_against_the_next() -> None:
    p = plan(snap([cpu("a", memory=GIB)], [dep("d1"), dep("d2")]))
    assert p.places == [Place("d1", "a")]
    assert p.unplaced == [Unplaced("d2", 1, "no node with 1024 MiB free")]


def test_bigger_deployments_are_placed_first() -> None:
    """First-fit decreasing: the big one gets the only node it fits; the small one fits beside."""
    nodes = [cpu("a", memory=4 * GIB), cpu("b", memory=GIB)]
    p = plan(snap(nodes, [dep("a-small", memory=GIB), dep("z-big", memory=4 * GIB)]))
    assert sorted(p.places, key=lambda x: x.deployment_id) == [
        Place("a-small", "b"),
        Place("z-big", "a"),
    ]


def test_firm_deployments_are_placed_before_flex_ones() -> None:
    nodes = [cpu("a", memory=GIB)]
    p = plan(snap(nodes, [dep("a-flex", tier=Tier.FLEX), dep("z-firm", tier=Tier.FIRM)]))
    assert p.places == [Place("z-firm", "a")]
    assert [u.deployment_id for u in p.unplaced] == ["a-flex"]


# --- spread over sites, pack within them ---------------------------------------------------


def test_spreads_a_deployment_across_sites_before_nodes() -> None:
    # Two nodes at site s1, one at s2: the second replica goes to s2, not to s1's other node.
    nodes = [cpu("a1", site="s1"), cpu("a2", site="s1"), cpu("b1", site="s2")]
    p = plan(snap(nodes, [dep(replicas=2)]))
    assert sorted(placed_nodes(p)) == ["a1", "b1"]


def test_prefers_a_site_without_replicas_of_the_deployment() -> None:
    nodes = [cpu("a1", site="s1"), cpu("a2", site="s1"), cpu("b1", site="s2", memory=2 * GIB)]
    p = plan(snap(nodes, [dep(replicas=2)], [rep("r1", "d", "a1")]))
    assert p.places == [Place("d", "b1")]


def test_a_third_replica_goes_back_to_a_site_once_every_site_has_one() -> None:
    nodes = [cpu("a1", site="s1"), cpu("b1", site="s2", memory=3 * GIB)]
    p = plan(snap(nodes, [dep(replicas=3)]))
    assert sorted(placed_nodes(p)) == ["a1", "b1", "b1"]


def test_spreads_a_deployment_over_the_nodes_of_a_site() -> None:
    nodes = [cpu("a"), cpu("b")]
    p = plan(snap(nodes, [dep(replicas=2)]))
    assert placed_nodes(p) == ["a", "b"]


def test_doubles_up_on_a_node_only_once_every_node_of_the_site_has_one() -> None:
    nodes = [cpu("a", memory=2 * GIB), cpu("b", memory=GIB)]
    p = plan(snap(nodes, [dep(replicas=3)], [rep("r1", "d", "a")]))
    assert placed_nodes(p) == ["b", "a"]


def test_packs_within_a_site_filling_a_node_in_use_before_opening_another() -> None:
    """Another deployment goes beside the first, leaving node b whole for a big one."""
    nodes = [cpu("a"), cpu("b")]
    p = plan(snap(nodes, [dep("d1", memory=2 * GIB), dep("d2")]))
    assert p.places == [Place("d1", "a"), Place("d2", "a")]


def test_prefers_a_node_in_use_over_a_tighter_empty_one() -> None:
    nodes = [cpu("roomy", memory=8 * GIB), cpu("tight", memory=2 * GIB)]
    other = dep("other", memory=GIB)
    p = plan(snap(nodes, [dep(memory=GIB), other], [rep("o1", "other", "roomy")]))
    assert p.places == [Place("d", "roomy")]


def test_packs_into_the_tightest_fit_among_empty_nodes() -> None:
    nodes = [cpu("roomy", memory=8 * GIB), cpu("tight", memory=2 * GIB)]
    p = plan(snap(nodes, [dep(memory=GIB)]))
    assert p.places == [Place("d", "tight")]


def test_tightest_fit_counts_memory_already_used() -> None:
    # "big" has more capacity but less left after its existing replica of another deployment.
    nodes = [cpu("big", memory=8 * GIB), cpu("mid", memory=4 * GIB)]
    other = dep("other", memory=7 * GIB)
    p = plan(snap(nodes, [dep(memory=GIB), other], [rep("o1", "other", "big", 7 * GIB)]))
    assert p.places == [Place("d", "big")]


def test_ties_break_by_node_id() -> None:
    p = plan(snap([cpu("z"), cpu("m"), cpu("b")], [dep()]))
    assert p.places == [Place("d", "b")]


# --- constraints ---------------------------------------------------------------------------


def test_respects_regions() -> None:
    sites = [site("s-eu", "eu"), site("s-us", "us")]
    nodes = [cpu("eu1", site="s-eu", memory=GIB), cpu("us1", site="s-us", memory=9 * GIB)]
    p = plan(snap(nodes, [dep(regions=("us",))], sites=sites))
    assert p.places == [Place("d", "us1")]
    p = plan(snap(nodes, [dep(regions=("eu", "ap"))], sites=sites))
    assert p.places == [Place("d", "eu1")]


def test_no_regions_means_anywhere() -> None:
    p = plan(snap([cpu("x", site="far")], [dep()], sites=[site("far", "ap")]))
    assert p.places == [Place("d", "x")]


def test_skips_non_schedulable_nodes() -> None:
    nodes = [cpu("down", memory=2 * GIB, schedulable=False), cpu("up", memory=9 * GIB)]
    p = plan(snap(nodes, [dep()]))
    assert p.places == [Place("d", "up")]


def test_a_node_of_an_unknown_site_is_not_schedulable() -> None:
    s = snap([cpu("a")], [dep()])
    p = plan(Snapshot((), s.nodes, s.deployments, s.replicas))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 1, "no ready node")]


def test_skips_cooling_pairs_but_not_other_deployments_there() -> None:
    # d2 (bigger, so placed first) takes the tight node a whole; d1 would fit a too, but not b.
    nodes = [cpu("a", memory=3 * GIB), cpu("b", memory=9 * GIB)]
    deployments = [dep("d1"), dep("d2", memory=2 * GIB)]
    p = plan(snap(nodes, deployments, cooling=[("d1", "a")]))
    assert p.places == [Place("d2", "a"), Place("d1", "b")]
    assert plan(snap(nodes, deployments)).places == [Place("d2", "a"), Place("d1", "a")]


# --- GPUs ----------------------------------------------------------------------------------


def test_a_replica_on_a_gpu_node_gets_one_gpu() -> None:
    p = plan(snap([gpu("g")], [dep(memory=10 * GIB, gpu_only=True)]))
    assert p.places == [Place("d", "g", (0,))]


def test_tensor_parallel_two_gets_two_distinct_gpus_on_one_node() -> None:
    # "one" has a single GPU free; "two" has both free: the replica cannot straddle nodes.
    nodes = [gpu("one", count=1), gpu("two", count=2)]
    p = plan(snap(nodes, [dep(memory=100 * GIB, tp=2, gpu_only=True)]))
    assert p.places == [Place("d", "two", (0, 1))]


def test_tensor_parallelism_splits_the_memory_between_the_gpus() -> None:
    # 120 GiB over two 80 GiB GPUs is 60 GiB each: it fits, though no one GPU holds it.
    p = plan(snap([gpu("g", count=2)], [dep(memory=120 * GIB, tp=2, gpu_only=True)]))
    assert p.places == [Place("d", "g", (0, 1))]


def test_small_replicas_share_a_gpu_while_its_memory_lasts() -> None:
    p = plan(snap([gpu("g", count=2)], [dep(memory=30 * GIB, replicas=3, gpu_only=True)]))
    assert [x.gpus for x in p.places] == [(0,), (0,), (1,)]


def test_a_gpu_shared_by_replicas_is_never_over_committed() -> None:
    nodes = [gpu("g", count=1)]
    p = plan(snap(nodes, [dep(memory=50 * GIB, replicas=2, gpu_only=True)]))
    assert p.places == [Place("d", "g", (0,))]
    assert p.unplaced == [Unplaced("d", 1, "no node with 51200 MiB free")]


def test_chooses_the_tightest_gpus_of_a_node() -> None:
    other = dep("other", memory=60 * GIB, gpu_only=True)
    replicas = [rep("o", "other", "g", 60 * GIB, (1,))]
    d = dep(memory=15 * GIB, gpu_only=True)
    p = plan(snap([gpu("g", count=3)], [d, other], replicas))
    assert p.places == [Place("d", "g", (1,))]


def test_quarantined_gpus_are_never_used() -> None:
    nodes = [gpu("g", count=2, quarantined=[0])]
    p = plan(snap(nodes, [dep(memory=10 * GIB, gpu_only=True)]))
    assert p.places == [Place("d", "g", (1,))]
    p = plan(snap(nodes, [dep(memory=10 * GIB, tp=2, gpu_only=True)]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 1, "no node with 2 usable GPUs")]


def test_a_node_whose_gpus_are_all_quarantined_does_not_fall_back_to_its_ram() -> None:
    p = plan(snap([gpu("g", count=1, quarantined=[0])], [dep()]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 1, "no node with usable memory (every GPU quarantined)")]


def test_a_gpu_only_engine_never_lands_on_a_cpu_node() -> None:
    p = plan(snap([cpu("c", memory=999 * GIB), gpu("g")], [dep(gpu_only=True)]))
    assert p.places == [Place("d", "g", (0,))]
    p = plan(snap([cpu("c", memory=999 * GIB)], [dep(gpu_only=True)]))
    assert p.unplaced == [Unplaced("d", 1, "no node with a usable GPU")]


def test_a_cpu_capable_engine_may_use_a_cpu_node_or_a_gpu() -> None:
    p = plan(snap([cpu("c")], [dep()]))
    assert p.places == [Place("d", "c")]
    p = plan(snap([gpu("g")], [dep()]))
    assert p.places == [Place("d", "g", (0,))]


def test_tensor_parallelism_needs_gpus_whatever_the_engine() -> None:
    p = plan(snap([cpu("c", memory=999 * GIB)], [dep(tp=2)]))
    assert p.unplaced == [Unplaced("d", 1, "no node with 2 usable GPUs")]


def test_gpu_type_is_matched_in_the_gpu_name_in_any_case() -> None:
    nodes = [gpu("l4", count=1, memory=24 * GIB, name=L4), gpu("h100", count=1)]
    p = plan(snap(nodes, [dep(gpu_type="h100")]))
    assert p.places == [Place("d", "h100", (0,))]
    p = plan(snap(nodes, [dep(gpu_type="B200", tp=2)]))
    assert p.unplaced == [Unplaced("d", 1, "no node with 2 usable B200 GPUs")]


def test_unplaced_names_the_memory_each_gpu_needs() -> None:
    p = plan(snap([gpu("g", count=2)], [dep(memory=200 * GIB, tp=2, gpu_only=True)]))
    assert p.unplaced == [Unplaced("d", 1, "no node with 2 GPUs of 102400 MiB free each")]


# --- existing replicas that no longer hold -------------------------------------------------


def test_a_replica_on_a_quarantined_gpu_moves_to_a_healthy_one() -> None:
    nodes = [gpu("g", count=2, quarantined=[0])]
    d = dep(memory=10 * GIB, gpu_only=True)
    p = plan(snap(nodes, [d], [rep("r1", "d", "g", 10 * GIB, (0,), ready=True)]))
    assert p.removes == [Remove("r1", "GPU 0 quarantined")]
    assert p.places == [Place("d", "g", (1,))]


def test_a_replica_on_a_gpu_that_is_gone_is_removed() -> None:
    d = dep(memory=10 * GIB, gpu_only=True)
    p = plan(snap([gpu("g", count=1)], [d], [rep("r1", "d", "g", 10 * GIB, (5,))]))
    assert p.removes == [Remove("r1", "GPU 5 is gone")]


def test_a_replica_with_the_wrong_number_of_gpus_is_removed() -> None:
    d = dep(memory=10 * GIB, tp=2, gpu_only=True)
    p = plan(snap([gpu("g", count=2)], [d], [rep("r1", "d", "g", 10 * GIB, (0,))]))
    assert p.removes == [Remove("r1", "needs 2 distinct GPU(s), has [0]")]
    assert p.places == [Place("d", "g", (0, 1))]


def test_a_replica_without_gpus_on_a_gpu_node_is_replaced_with_one() -> None:
    p = plan(snap([gpu("g")], [dep()], [rep("r1", "d", "g")]))
    assert p.removes == [Remove("r1", "assigned no GPU on a GPU node")]
    assert p.places == [Place("d", "g", (0,))]


def test_a_replica_on_a_gpu_of_another_type_is_removed() -> None:
    nodes = [gpu("l4", count=1, memory=24 * GIB, name=L4), gpu("h100", count=1)]
    d = dep(gpu_type="H100")
    p = plan(snap(nodes, [d], [rep("r1", "d", "l4", gpus=(0,))]))
    assert p.removes == [Remove("r1", "GPU 0 (NVIDIA L4) is not a H100")]
    assert p.places == [Place("d", "h100", (0,))]


def test_a_replica_outside_the_deployments_regions_is_removed() -> None:
    sites = [site("s-eu", "eu"), site("s-us", "us")]
    nodes = [cpu("eu1", site="s-eu"), cpu("us1", site="s-us")]
    p = plan(snap(nodes, [dep(regions=("us",))], [rep("r1", "d", "eu1")], sites=sites))
    assert p.removes == [Remove("r1", "outside the deployment's regions")]
    assert p.places == [Place("d", "us1")]


def test_over_committed_replicas_lose_the_not_ready_one() -> None:
    replicas = [
        rep("r1", "d", "g", 50 * GIB, (0,), ready=False),
        rep("r2", "d", "g", 50 * GIB, (0,), ready=True),
    ]
    d = dep(memory=50 * GIB, replicas=2, gpu_only=True)
    p = plan(snap([gpu("g", count=1)], [d], replicas))
    assert p.removes == [Remove("r1", "does not fit beside the other replicas on its GPUs")]


# --- site power ----------------------------------------------------------------------------


def test_a_draining_site_takes_no_replica_and_loses_those_it_has() -> None:
    sites = [site("mine", power=PowerState.DRAINING), site("other")]
    nodes = [cpu("a", site="mine"), cpu("b", site="other")]
    firm = dep("firm", tier=Tier.FIRM)
    p = plan(snap(nodes, [firm], [rep("r1", "firm", "a")], sites=sites))
    assert p.removes == [Remove("r1", "site draining")]
    assert p.places == [Place("firm", "b")]


def test_a_curtailed_site_keeps_firm_replicas_loses_flex_ones_and_takes_none() -> None:
    sites = [site("mine", power=PowerState.CURTAILED), site("other")]
    nodes = [cpu("a", site="mine"), cpu("b", site="other", memory=GIB)]
    deployments = [dep("firm", replicas=2), dep("flex", tier=Tier.FLEX)]
    replicas = [rep("r1", "firm", "a"), rep("r2", "flex", "a")]
    p = plan(snap(nodes, deployments, replicas, sites=sites))
    assert p.removes == [Remove("r2", "site curtailed")]
    # The firm deployment's second replica may not go to the curtailed site either.
    assert p.places == [Place("firm", "b")]
    assert p.unplaced == [Unplaced("flex", 1, "no node with 1024 MiB free")]


def test_unplaced_when_every_site_is_draining_or_curtailed() -> None:
    sites = [site("a", power=PowerState.DRAINING), site("b", power=PowerState.CURTAILED)]
    p = plan(snap([cpu("n1", site="a"), cpu("n2", site="b")], [dep()], sites=sites))
    assert p.unplaced == [Unplaced("d", 1, "every site within reach is draining or curtailed")]


# --- warm nodes ----------------------------------------------------------------------------


def test_prefers_a_node_that_holds_the_model_over_a_tighter_one() -> None:
    nodes = [cpu("roomy", memory=8 * GIB, holds=["hf://m"]), cpu("tight", memory=2 * GIB)]
    p = plan(snap(nodes, [dep(source="hf://m")]))
    assert p.places == [Place("d", "roomy")]


def test_spread_over_sites_comes_before_a_warm_node() -> None:
    nodes = [cpu("a1", site="s1", holds=["hf://m"]), cpu("b1", site="s2", holds=[])]
    p = plan(snap(nodes, [dep(source="hf://m")], [rep("r1", "d", "a1")]))
    assert p.places == []
    p = plan(snap(nodes, [dep(source="hf://m", replicas=2)], [rep("r1", "d", "a1")]))
    assert p.places == [Place("d", "b1")]


def test_unknown_holdings_give_no_preference() -> None:
    nodes = [cpu("roomy", memory=8 * GIB, holds=None), cpu("tight", memory=2 * GIB)]
    p = plan(snap(nodes, [dep(source="hf://m")]))
    assert p.places == [Place("d", "tight")]


def test_a_warm_node_that_is_full_is_passed_over() -> None:
    nodes = [cpu("warm", memory=GIB // 2, holds=["hf://m"]), cpu("cold")]
    p = plan(snap(nodes, [dep(source="hf://m")]))
    assert p.places == [Place("d", "cold")]


# --- removing ------------------------------------------------------------------------------


def test_scale_down_removes_non_ready_replicas_first() -> None:
    replicas = [
        rep("r1", "d", "a", ready=True),
        rep("r2", "d", "a", ready=False),
        rep("r3", "d", "b", ready=True),
        rep("r4", "d", "b", ready=False),
    ]
    p = plan(snap([cpu("a"), cpu("b")], [dep(replicas=2)], replicas))
    assert sorted(p.removes, key=lambda r: r.replica_id) == [
        Remove("r2", "scaled down"),
        Remove("r4", "scaled down"),
    ]
    assert p.places == []


def test_scale_down_takes_from_the_most_crowded_site_first() -> None:
    nodes = [cpu("a1", site="s1"), cpu("a2", site="s1"), cpu("b1", site="s2")]
    replicas = [rep("r1", "d", "a1"), rep("r2", "d", "a2"), rep("r3", "d", "b1")]
    p = plan(snap(nodes, [dep(replicas=2)], replicas))
    assert p.removes == [Remove("r1", "scaled down")]


def test_scale_down_takes_from_the_most_crowded_node_of_a_site_first() -> None:
    nodes = [cpu("a"), cpu("b")]
    replicas = [rep("r1", "d", "b"), rep("r2", "d", "a"), rep("r3", "d", "a")]
    p = plan(snap(nodes, [dep(replicas=2)], replicas))
    assert p.removes == [Remove("r2", "scaled down")]


def test_scale_down_removes_ready_ones_only_when_not_enough_non_ready() -> None:
    replicas = [
        rep("r1", "d", "a", ready=True),
        rep("r2", "d", "a"),
        rep("r3", "d", "a", ready=True),
    ]
    p = plan(snap([cpu("a")], [dep(replicas=1)], replicas))
    removed = {r.replica_id for r in p.removes}
    assert len(removed) == 2
    assert "r2" in removed


def test_scale_to_zero_removes_every_replica() -> None:
    replicas = [rep("r1", "d", "a", ready=True), rep("r2", "d", "a")]
    p = plan(snap([cpu("a")], [dep(replicas=0)], replicas))
    assert {r.replica_id for r in p.removes} == {"r1", "r2"}
    assert p.unplaced == []


def test_removes_replicas_of_deleted_deployments() -> None:
    p = plan(snap([cpu("a")], [], [rep("r1", "gone", "a")]))
    assert p.removes == [Remove("r1", "deployment deleted")]


def test_removes_replicas_on_unschedulable_or_unknown_nodes_and_replaces_them() -> None:
    nodes = [cpu("down", schedulable=False), cpu("up")]
    replicas = [rep("r1", "d", "down", ready=True), rep("r2", "d", "ghost")]
    p = plan(snap(nodes, [dep(replicas=2)], replicas))
    assert sorted(p.removes, key=lambda r: r.replica_id) == [
        Remove("r1", "node not schedulable"),
        Remove("r2", "node not schedulable"),
    ]
    assert placed_nodes(p) == ["up", "up"]


def test_a_node_not_admitted_takes_no_replica_and_loses_those_it_runs() -> None:
    refused = replace(cpu("refused", memory=50 * GIB), admitted=False)
    replicas = [rep("r1", "d", "refused", ready=True)]
    p = plan(snap([refused, cpu("ok")], [dep(replicas=2)], replicas))
    assert p.removes == [Remove("r1", "node not admitted")]
    assert placed_nodes(p) == ["ok", "ok"]


def test_unplaced_when_no_ready_node_is_admitted_says_so() -> None:
    p = plan(snap([replace(cpu("a"), admitted=False)], [dep(replicas=1)]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 1, "no admitted node (awaiting or failed verification)")]


def test_a_failed_replica_its_agent_restarts_keeps_its_place() -> None:
    """A failed replica counts as placed while its agent restarts it: no second one appears."""
    p = plan(snap([cpu("a"), cpu("b")], [dep()], [rep("r1", "d", "a")], cooling=[("d", "a")]))
    assert p.empty


def test_a_replica_failed_too_long_moves_to_another_node() -> None:
    failing = rep("r1", "d", "a", failed_too_long=True)
    p = plan(snap([cpu("a", memory=20 * GIB), cpu("b")], [dep()], [failing]))
    assert p.removes == [Remove("r1", "kept failing on its node")]
    assert p.places == [Place("d", "b")]  # not back on "a", though it has more room


def test_a_replica_failed_too_long_is_not_replaced_on_its_node_in_that_pass() -> None:
    failing = rep("r1", "d", "a", failed_too_long=True)
    p = plan(snap([cpu("a")], [dep()], [failing]))
    assert p.removes == [Remove("r1", "kept failing on its node")]
    assert p.places == []
    assert "failed lately" in p.unplaced[0].reason


def test_keeps_replicas_that_already_fit() -> None:
    p = plan(snap([cpu("a"), cpu("b")], [dep(replicas=1)], [rep("r1", "d", "a")]))
    assert p == Plan()


def test_keeps_gpu_replicas_that_already_fit() -> None:
    d = dep(memory=100 * GIB, tp=2, gpu_only=True)
    p = plan(snap([gpu("g", count=4)], [d], [rep("r1", "d", "g", 100 * GIB, (1, 3))]))
    assert p == Plan()


def test_memory_of_removed_replicas_is_freed_for_placement() -> None:
    p = plan(snap([cpu("a", memory=GIB)], [dep("new")], [rep("old", "gone", "a")]))
    assert p.removes == [Remove("old", "deployment deleted")]
    assert p.places == [Place("new", "a")]


def test_memory_of_scaled_down_replicas_is_freed_for_placement() -> None:
    nodes = [gpu("g", count=1)]
    deployments = [dep("a", memory=60 * GIB, gpu_only=True), dep("b", replicas=0, memory=60 * GIB)]
    p = plan(snap(nodes, deployments, [rep("b1", "b", "g", 60 * GIB, (0,))]))
    assert p.removes == [Remove("b1", "scaled down")]
    assert p.places == [Place("a", "g", (0,))]


# --- unplaced reasons ----------------------------------------------------------------------


def test_unplaced_when_no_node_is_ready() -> None:
    p = plan(snap([cpu("a", schedulable=False)], [dep(replicas=2)]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 2, "no ready node")]


def test_unplaced_when_no_node_at_all() -> None:
    assert plan(snap([], [dep()])).unplaced == [Unplaced("d", 1, "no ready node")]


def test_unplaced_names_the_regions_when_none_has_a_node() -> None:
    p = plan(snap([cpu("a")], [dep(regions=("us", "ap"))]))
    assert p.unplaced == [Unplaced("d", 1, "no ready node in regions ap, us")]


def test_unplaced_when_every_eligible_node_is_cooling() -> None:
    p = plan(snap([cpu("a"), cpu("b")], [dep()], cooling=[("d", "a"), ("d", "b")]))
    assert len(p.unplaced) == 1
    assert p.unplaced[0].count == 1
    assert "failed lately" in p.unplaced[0].reason


def test_unplaced_says_how_much_memory_is_needed() -> None:
    p = plan(snap([cpu("a", memory=GIB)], [dep(memory=3 * GIB + 5 * MIB)]))
    assert p.unplaced == [Unplaced("d", 1, "no node with 3077 MiB free")]


def test_unplaced_counts_only_the_replicas_that_did_not_fit() -> None:
    p = plan(snap([cpu("a", memory=2 * GIB)], [dep(replicas=5)]))
    assert len(p.places) == 2
    assert p.unplaced == [Unplaced("d", 3, "no node with 1024 MiB free")]


def test_unplaced_is_not_a_change() -> None:
    p = plan(snap([], [dep()]))
    assert p.unplaced
    assert p.empty


# --- cordon and drain ----------------------------------------------------------------------


def test_a_cordoned_node_keeps_its_replicas_but_takes_no_new_ones() -> None:
    nodes = [cpu("a", cordoned=True), cpu("b")]
    p = plan(snap(nodes, [dep(replicas=2)], [rep("r1", "d", "a")]))
    assert p.removes == []
    assert p.places == [Place("d", "b")]


def test_a_deployment_waits_when_every_ready_node_is_cordoned() -> None:
    p = plan(snap([cpu("a", cordoned=True)], [dep()]))
    assert p.places == []
    assert p.unplaced == [Unplaced("d", 1, "every ready node is cordoned")]


def test_a_draining_node_loses_its_replicas_to_other_nodes() -> None:
    """Draining marks a node unschedulable: its replicas are removed and placed elsewhere."""
    nodes = [cpu("a", schedulable=False, cordoned=True), cpu("b")]
    p = plan(snap(nodes, [dep()], [rep("r1", "d", "a")]))
    assert p.removes == [Remove("r1", "node not schedulable")]
    assert p.places == [Place("d", "b")]


# --- determinism ---------------------------------------------------------------------------


def test_same_plan_whatever_the_input_order() -> None:
    nodes = [
        gpu(f"g{i}", site=f"s{i % 3}", count=1 + i % 4, memory=(20 + 10 * i) * GIB)
        if i % 2
        else cpu(f"c{i}", site=f"s{i % 3}", memory=(i + 1) * GIB)
        for i in range(10)
    ]
    deployments = [
        dep(f"d{i}", memory=(i % 3 + 1) * GIB, replicas=i % 4, tp=1 + i % 2, gpu_only=i % 3 == 0)
        for i in range(6)
    ]
    replicas = [rep(f"r{i}", f"d{i % 7}", f"c{2 * (i % 5)}", ready=i % 2 == 0) for i in range(10)]
    expected = plan(snap(nodes, deployments, replicas))
    rng = random.Random(1)
    for _ in range(20):
        rng.shuffle(nodes)
        rng.shuffle(deployments)
        rng.shuffle(replicas)
        assert plan(snap(nodes, deployments, replicas)) == expected


def test_applying_a_plan_with_a_scale_down_then_replanning_yields_an_empty_plan() -> None:
    nodes = [cpu("n1", memory=GIB), cpu("n2", memory=GIB)]
    deployments = [dep("a", replicas=1), dep("b", replicas=1)]
    replicas = [rep("b1", "b", "n1"), rep("b2", "b", "n2")]
    s = snap(nodes, deployments, replicas)
    assert plan(apply(s, plan(s))).empty
