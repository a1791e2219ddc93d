"""How fast and how well the pure scheduler places a big fleet, beside a naive first-fit.

    python bench/scheduler_scale.py [--sites 40] [--nodes 250] [--deployments 5000] [--runs 3]
                                    [--data /work/shared/data]

The fleet: `--sites` sites in five regions, each with `--nodes` nodes of 8 GPUs, half its nodes
of one GPU model and half of another, drawn from the GPU rows (name, memory) of
`hardware-power-specs/asic_gpu_power_specs.csv`. The deployments: models drawn from the
ML.ENERGY configurations (`mlenergy-llm-energy/mlenergy_llm_configs.csv`: parameters, weight
precision, and the fewest H100s each was measured on, which becomes its tensor parallel size),
sized by `hashgrid.scheduler.estimate` for an 8,192-token context and 4 sequences at once, with
1 to 4 replicas, some bound to regions or to a GPU type, some flex. Both tables are read from
`--data` at run time.

Two scenes, each timed over `--runs` runs (the median is the figure):
1. full placement: every deployment placed on an empty fleet;
2. re-plan after the first site (2,000 GPUs at the defaults) is lost, its nodes unschedulable,
   every other replica as placed and ready, nodes holding the models they serve.
Printed for the scheduler and for a naive first-fit (deployments in id order, each replica on
the first node in id order with enough free GPUs, no spread, no packing preference): GPUs used,
fragmentation (free GPU memory outside whole free nodes, and on GPUs partly used), spread,
what losing the site cost, and replicas moved. Only `plan(snapshot)` is timed; building the
snapshot is not. Wall time is the figure; CPU time is printed beside it because on a machine
that other work shares, wall time also counts the time this process waited for a core.

Goals (issue 5): full placement under 1 s; re-plan after losing a 2,000-GPU site under 0.5 s.
"""

import argparse
import csv
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hashgrid.scheduler import (
    DeploymentView,
    GpuView,
    NodeView,
    Plan,
    ReplicaView,
    SiteView,
    Snapshot,
    Tier,
    estimate,
    plan,
)

GIB = 2**30
GOAL_FULL_S = 1.0
GOAL_REPLAN_S = 0.5
REGIONS = ("us-east", "us-south", "eu-north", "eu-west", "latam")
CONTEXT = 8192
SEQUENCES = 4
OVERHEAD_PER_RANK = 2 * GIB  # CUDA context, activations, CUDA graphs of a GPU engine
BYTES_PER_PARAM = {"bfloat16": 2.0, "fp8": 1.0, "mxfp4": 0.55}
GPUS_PER_NODE = 8
T = TypeVar("T")


@dataclass(frozen=True)
class ModelKind:
    name: str
    weights_bytes: int
    tensor_parallel_size: int


def load_gpus(data: Path) -> list[tuple[str, int]]:
    """(name, memory bytes) of every GPU in the hardware table."""
    path = data / "hardware-power-specs" / "asic_gpu_power_specs.csv"
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["category"] == "gpu"]
    return [(f"{r['vendor']} {r['model']}", int(float(r["gpu_memory_gb"]) * GIB)) for r in rows]


def load_models(data: Path) -> list[ModelKind]:
    """Each model of the ML.ENERGY table with its weights and the fewest H100s it ran on (twice
    the fewest B200s, at most 8, for those measured on B200 only)."""
    path = data / "mlenergy-llm-energy" / "mlenergy_llm_configs.csv"
    fewest: dict[str, dict[str, int]] = defaultdict(dict)
    weights: dict[str, int] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            name = r["model_id"]
            per_param = BYTES_PER_PARAM.get(r["weight_precision"], 2.0)
            weights[name] = int(float(r["total_params_b"]) * 1e9 * per_param)
            gpus = int(r["num_gpus"])
            known = fewest[name].get(r["gpu_model"])
            fewest[name][r["gpu_model"]] = gpus if known is None else min(known, gpus)
    kinds = []
    for name in sorted(weights):
        tp = fewest[name].get("H100") or min(8, 2 * fewest[name]["B200"])
        kinds.append(ModelKind(name, weights[name], tp))
    return kinds


def build_fleet(
    rng: random.Random, gpus: list[tuple[str, int]], sites: int, nodes: int
) -> tuple[list[SiteView], list[NodeView]]:
    site_views, node_views = [], []
    for s in range(sites):
        site = SiteView(f"s{s:02d}", REGIONS[s * len(REGIONS) // sites])
        site_views.append(site)
        kinds = rng.sample(gpus, 2)
        for i in range(nodes):
            name, memory = kinds[0] if i < nodes // 2 else kinds[1]
            node_id = f"{site.id}-n{i:03d}"
            node_gpus = tuple(GpuView(g, name, memory) for g in range(GPUS_PER_NODE))
            node_views.append(NodeView(node_id, site.id, 2048 * GIB, node_gpus))
    return site_views, node_views


def build_deployments(
    rng: random.Random, kinds: list[ModelKind], count: int
) -> list[DeploymentView]:
    # Small models are deployed far more often than big ones.
    weights = [1.0 / k.tensor_parallel_size**0.5 for k in kinds]
    out = []
    for i in range(count):
        kind = rng.choices(kinds, weights)[0]
        tp = kind.tensor_parallel_size
        memory = estimate(
            kind.weights_bytes,
            CONTEXT,
            sequences=SEQUENCES,
            overhead_bytes_per_rank=OVERHEAD_PER_RANK,
            tensor_parallel_size=tp,
        ).total_bytes
        roll = rng.random()
        regions = (
            frozenset(rng.sample(REGIONS, 1))
            if roll < 0.3
            else frozenset(rng.sample(REGIONS, 2))
            if roll < 0.4
            else frozenset()
        )
        gpu_type = rng.choice(("H100", "H200")) if rng.random() < 0.05 else None
        out.append(
            DeploymentView(
                id=f"d{i:04d}",
                replicas=rng.choice((1, 2, 2, 3, 3, 4, 6, 8)),
                memory_bytes=memory,
                tensor_parallel_size=tp,
                gpu_only=tp > 1 or rng.random() < 0.5,  # vLLM/SGLang, else llama.cpp
                gpu_type=gpu_type,
                regions=regions,
                tier=Tier.FLEX if rng.random() < 0.3 else Tier.FIRM,
                source=f"hf://{kind.name}",
            )
        )
    return out


# --- placements and their figures --------------------------------------------------------

Layout = list[tuple[str, str, tuple[int, ...]]]  # (deployment, node, gpus)


def figures(
    nodes: list[NodeView], deployments: dict[str, DeploymentView], layout: Layout
) -> dict[str, float]:
    """GPUs used, fragmentation and spread of a layout; checks that no GPU is over-committed."""
    used: dict[tuple[str, int], int] = Counter()
    for d_id, node_id, gpus in layout:
        for g in gpus:
            used[(node_id, g)] += deployments[d_id].gpu_memory_bytes
    total_free = free_outside_whole = free_on_partial = 0
    whole_free_nodes = 0
    for n in nodes:
        if not n.schedulable:
            continue
        node_used = [used.get((n.id, g.index), 0) for g in n.gpus]
        whole = not any(node_used)
        whole_free_nodes += whole
        for g, u in zip(n.gpus, node_used, strict=True):
            if u > g.memory_bytes:
                raise SystemExit(f"over-committed: GPU {g.index} of {n.id}")
            free = g.memory_bytes - u
            total_free += free
            free_outside_whole += 0 if whole else free
            free_on_partial += free if u else 0
    sites_of: dict[str, list[str]] = defaultdict(list)
    for d_id, node_id, _ in layout:
        sites_of[d_id].append(node_id.split("-")[0])
    multi = [s for s in sites_of.values() if len(s) > 1]
    return {
        "replicas": len(layout),
        "gpus_used": len(used),
        "whole_free_nodes": whole_free_nodes,
        "frag_outside_whole": free_outside_whole / total_free if total_free else 0.0,
        "frag_partial_gpus": free_on_partial / total_free if total_free else 0.0,
        "one_site_share": sum(len(set(s)) == 1 for s in multi) / len(multi) if multi else 0.0,
    }


def site_loss(layout: Layout, site: str, deployments: dict[str, DeploymentView]) -> tuple[int, int]:
    """(replicas on `site`, deployments that had replicas and lose every one with it)."""
    on_site = [d for d, n, _ in layout if n.startswith(site + "-")]
    elsewhere = {d for d, n, _ in layout if not n.startswith(site + "-")}
    return len(on_site), len({d for d in on_site if d not in elsewhere})


def layout_of(p: Plan) -> Layout:
    return [(x.deployment_id, x.node_id, x.gpus) for x in p.places]


# --- the naive first-fit -------------------------------------------------------------------


class FirstFit:
    """Each replica on the first node in id order with k GPUs of the wanted type and enough
    free memory, its first k such GPUs by index; deployments in id order. Constraints (regions,
    GPU type, tensor parallel size, schedulable) are respected, preferences ignored. A max-tree
    per (region, GPU name, k) over nodes in id order finds that first node in O(log n)."""

    def __init__(self, sites: list[SiteView], nodes: list[NodeView], ks: set[int]) -> None:
        region = {s.id: s.region for s in sites}
        self.nodes = sorted((n for n in nodes if n.schedulable), key=lambda n: n.id)
        self.free = {n.id: [g.memory_bytes for g in n.gpus] for n in self.nodes}
        self.rank = {n.id: i for i, n in enumerate(self.nodes)}
        groups: dict[tuple[str, str], list[NodeView]] = defaultdict(list)
        for n in self.nodes:
            groups[(region[n.site], n.gpus[0].name)].append(n)
        self.trees = {
            (r, name, k): _MaxTree([_kth(self.free[n.id], k) for n in members], members)
            for (r, name), members in groups.items()
            for k in ks
        }
        self.slot: dict[str, list[tuple[tuple[str, str, int], int]]] = defaultdict(list)
        for key, tree in self.trees.items():
            for i, n in enumerate(tree.nodes):
                self.slot[n.id].append((key, i))

    def take(self, layout: Layout, deployments: dict[str, DeploymentView]) -> None:
        for d_id, node_id, gpus in layout:
            if node_id in self.free:
                self._charge(node_id, gpus, deployments[d_id].gpu_memory_bytes)

    def place(self, ds: list[DeploymentView], missing: dict[str, int]) -> tuple[Layout, int]:
        layout: Layout = []
        unplaced = 0
        for d in sorted(ds, key=lambda d: d.id):
            k, need = d.tensor_parallel_size, d.gpu_memory_bytes
            keys = [
                key
                for key in self.trees
                if key[2] == k and (not d.regions or key[0] in d.regions) and d.wants(key[1])
            ]
            for _ in range(missing.get(d.id, 0)):
                best: NodeView | None = None
                for key in keys:
                    n = self.trees[key].first_at_least(need)
                    if n is not None and (best is None or self.rank[n.id] < self.rank[best.id]):
                        best = n
                if best is None:
                    unplaced += 1
                    continue
                free = self.free[best.id]
                gpus = tuple([g for g, f in enumerate(free) if f >= need][:k])
                self._charge(best.id, gpus, need)
                layout.append((d.id, best.id, gpus))
        return layout, unplaced

    def _charge(self, node_id: str, gpus: tuple[int, ...], need: int) -> None:
        free = self.free[node_id]
        for g in gpus:
            free[g] -= need
        for key, i in self.slot[node_id]:
            self.trees[key].set(i, _kth(free, key[2]))


def _kth(free: list[int], k: int) -> int:
    return sorted(free, reverse=True)[k - 1] if k <= len(free) else -1


class _MaxTree:
    def __init__(self, values: list[int], nodes: list[NodeView]) -> None:
        self.nodes = nodes
        self.size = 1
        while self.size < len(values):
            self.size *= 2
        self.tree = [-1] * (2 * self.size)
        self.tree[self.size : self.size + len(values)] = values
        for i in range(self.size - 1, 0, -1):
            self.tree[i] = max(self.tree[2 * i], self.tree[2 * i + 1])

    def set(self, i: int, value: int) -> None:
        i += self.size
        self.tree[i] = value
        while i > 1:
            i //= 2
            self.tree[i] = max(self.tree[2 * i], self.tree[2 * i + 1])

    def first_at_least(self, x: int) -> NodeView | None:
        if self.tree[1] < x:
            return None
        i = 1
        while i < self.size:
            i = 2 * i if self.tree[2 * i] >= x else 2 * i + 1
        return self.nodes[i - self.size]


# --- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    wall_s: float  # median over the runs: the figure the goals are about
    cpu_s: float  # median CPU time of this process: steadier on a machine others share

    def __str__(self) -> str:
        return f"{self.wall_s:.3f} s (CPU {self.cpu_s:.3f} s)"


def timed(fn: Callable[[], T], runs: int) -> tuple[T, Timing]:
    """The last result, and the median wall and CPU seconds over `runs` calls."""
    wall, cpu = [], []
    result: T | None = None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert result is not None
    return result, Timing(statistics.median(wall), statistics.median(cpu))


def show(label: str, f: dict[str, float]) -> None:
    print(
        f"  {label:<10} replicas {f['replicas']:>6,.0f}  GPUs used {f['gpus_used']:>6,.0f}  "
        f"whole free nodes {f['whole_free_nodes']:>5,.0f}  "
        f"free memory outside whole free nodes {100 * f['frag_outside_whole']:5.1f}%  "
        f"on part-used GPUs {100 * f['frag_partial_gpus']:5.1f}%  "
        f"multi-replica deployments on one site {100 * f['one_site_share']:5.1f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--nodes", type=int, default=250, help="nodes per site (8 GPUs each)")
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    gpu_table = load_gpus(args.data)
    sites, nodes = build_fleet(rng, gpu_table, args.sites, args.nodes)
    kinds = load_models(args.data)
    deployments = build_deployments(rng, kinds, args.deployments)
    by_id = {d.id: d for d in deployments}
    wanted = sum(d.replicas for d in deployments)
    gpu_count = sum(len(n.gpus) for n in nodes)
    tp_counts = Counter(d.tensor_parallel_size for d in deployments)
    print(
        f"fleet: {len(sites)} sites, {len(nodes):,} nodes, {gpu_count:,} GPUs "
        f"({len(gpu_table)} GPU models); {len(deployments):,} deployments of {len(kinds)} models "
        f"(tensor parallel {dict(sorted(tp_counts.items()))}), "
        f"{wanted:,} replicas wanted, "
        f"{sum(d.replicas * d.memory_bytes for d in deployments) / GIB / 1024:,.0f} TiB of "
        f"{sum(g.memory_bytes for n in nodes for g in n.gpus) / GIB / 1024:,.0f} TiB"
    )

    # 1. Full placement.
    empty = Snapshot(tuple(sites), tuple(nodes), tuple(deployments), ())
    ours, ours_s = timed(lambda: plan(empty), args.runs)
    ks = {d.tensor_parallel_size for d in deployments}

    def naive_full() -> tuple[Layout, int]:
        return FirstFit(sites, nodes, ks).place(
            deployments, {d.id: d.replicas for d in deployments}
        )

    (naive, naive_unplaced), naive_s = timed(naive_full, args.runs)
    print(f"\nfull placement ({args.runs} runs, median):")
    print(
        f"  scheduler  {ours_s}, {len(ours.places):,} placed, "
        f"{sum(u.count for u in ours.unplaced):,} unplaced"
    )
    print(f"  first-fit  {naive_s}, {len(naive):,} placed, {naive_unplaced:,} unplaced")
    why = Counter(u.reason for u in ours.unplaced for _ in range(u.count))
    print(f"  scheduler's unplaced replicas, by reason: {dict(why.most_common(4))}")
    show("scheduler", figures(nodes, by_id, layout_of(ours)))
    show("first-fit", figures(nodes, by_id, naive))

    # 2. Lose the first site.
    lost = sites[0].id
    lost_gpus = sum(len(n.gpus) for n in nodes if n.site == lost)
    after_nodes = [
        NodeView(n.id, n.site, n.memory_bytes, n.gpus, schedulable=n.site != lost) for n in nodes
    ]
    holds: dict[str, set[str]] = defaultdict(set)
    for x in ours.places:
        holds[x.node_id].add(f"{by_id[x.deployment_id].source}")
    warm_nodes = [
        NodeView(n.id, n.site, n.memory_bytes, n.gpus, n.schedulable, holds=frozenset(holds[n.id]))
        for n in after_nodes
    ]
    replicas = tuple(
        ReplicaView(
            f"r{i:06d}",
            x.deployment_id,
            x.node_id,
            by_id[x.deployment_id].memory_bytes,
            x.gpus,
            True,
        )
        for i, x in enumerate(ours.places)
    )
    down = Snapshot(tuple(sites), tuple(warm_nodes), tuple(deployments), replicas)
    replan, replan_s = timed(lambda: plan(down), args.runs)
    on_lost = {r.id for r in replicas if r.node_id.startswith(lost + "-")}
    moved_healthy = sum(1 for r in replan.removes if r.replica_id not in on_lost)
    kept = [(r.deployment_id, r.node_id, r.gpus) for r in replicas if r.id not in on_lost]
    ours_after = kept + layout_of(replan)
    warm_hits = sum(1 for x in replan.places if by_id[x.deployment_id].source in holds[x.node_id])

    def naive_replan() -> tuple[Layout, int]:
        ff = FirstFit(sites, after_nodes, ks)
        keep = [x for x in naive if not x[1].startswith(lost + "-")]
        ff.take(keep, by_id)
        missing = Counter(d for d, n, _ in naive if n.startswith(lost + "-"))
        missing.update(
            {d.id: d.replicas - c for d in deployments if (c := _count(naive, d.id)) < d.replicas}
        )
        layout, unplaced = ff.place(deployments, missing)
        return keep + layout, unplaced

    (naive_after, naive_after_unplaced), naive_replan_s = timed(naive_replan, args.runs)
    naive_lost = sum(1 for x in naive if x[1].startswith(lost + "-"))
    stateless, _ = FirstFit(sites, after_nodes, ks).place(
        deployments, {d.id: d.replicas for d in deployments}
    )
    stateless_moved = _moved(naive, stateless)

    ours_loss = site_loss(layout_of(ours), lost, by_id)
    naive_loss = site_loss(naive, lost, by_id)
    print(f"\nre-plan after losing site {lost} ({lost_gpus:,} GPUs; {args.runs} runs, median):")
    print(
        f"  scheduler  {replan_s}: {ours_loss[0]:,} replicas were there, "
        f"{ours_loss[1]:,} deployments lost every replica; {len(replan.places):,} re-placed "
        f"({warm_hits:,} on nodes holding the model), "
        f"{moved_healthy:,} moved off healthy nodes, "
        f"{sum(u.count for u in replan.unplaced):,} unplaced"
    )
    print(
        f"  first-fit  {naive_replan_s}: {naive_loss[0]:,} replicas were there, "
        f"{naive_loss[1]:,} deployments lost every replica; "
        f"{len(naive_after) - (len(naive) - naive_lost):,} re-placed, 0 moved off healthy nodes, "
        f"{naive_after_unplaced:,} unplaced "
        f"(re-run from scratch instead, it would move {stateless_moved:,})"
    )
    show("scheduler", figures(after_nodes, by_id, ours_after))
    show("first-fit", figures(after_nodes, by_id, naive_after))

    # Sanity: a second plan over the result changes nothing.
    settled = Snapshot(
        tuple(sites),
        tuple(after_nodes),
        tuple(deployments),
        tuple(
            ReplicaView(f"q{i:06d}", d, n, by_id[d].memory_bytes, g, True)
            for i, (d, n, g) in enumerate(ours_after)
        ),
    )
    settled_plan = plan(settled)
    print(f"\nre-planning the result changes nothing: {settled_plan.empty}")
    met_full = ours_s.wall_s < GOAL_FULL_S
    met_replan = replan_s.wall_s < GOAL_REPLAN_S
    print(f"goal: full placement under {GOAL_FULL_S:.1f} s: {'met' if met_full else 'NOT met'}")
    print(
        f"goal: re-plan after losing a {lost_gpus:,}-GPU site under {GOAL_REPLAN_S:.1f} s: "
        f"{'met' if met_replan else 'NOT met'}"
    )
    sys.exit(0 if met_full and met_replan and settled_plan.empty else 1)


def _count(layout: Layout, d_id: str) -> int:
    return sum(1 for d, _, _ in layout if d == d_id)


def _moved(before: Layout, after: Layout) -> int:
    """Replicas of `after` that are not where one of the same deployment was `before`."""
    was = Counter(before)
    moved = 0
    for x in after:
        if was[x] > 0:
            was[x] -= 1
        else:
            moved += 1
    return moved


if __name__ == "__main__":
    main()
