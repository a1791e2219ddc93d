"""Replica placement: which node and GPUs run each replica a deployment still needs, which go.

One pass, deterministic for a given snapshot (whatever the order of its tuples):
1. Every active replica is checked: its deployment, node, site power, GPUs (present, not
   quarantined, as many as the tensor parallel size, of the wanted type) and regions. Those that
   still hold are charged to their GPUs, ready ones first; one that would over-commit a GPU goes.
   Nothing that holds moves: a satisfied snapshot yields an empty plan.
2. Rolling: replicas of an older generation of their deployment (its model, engine, GPUs or
   regions changed since) are checked only for their node and site, and keep their memory.
   They are replaced a few at a time, as a Kubernetes Deployment rolls (max unavailable 0): one
   that is not ready goes at once; a ready one goes when the new generation's ready replicas
   make up for it; new ones are placed while all together stay within `replicas + max_surge`.
   When there is no room for even one new replica beside the old, one old replica goes first
   (capacity dips by one while its successor starts where it was).
3. Deployments with more on-demand replicas than wanted lose the surplus: not-ready ones first,
   then those on the site, then the node, with most replicas of the deployment. Replicas a
   compute contract holds (`Reservation`) are never part of it.
4. Missing replicas are placed: every contract's reserved replicas first, then on-demand ones;
   firm deployments first, then the biggest (GPUs times memory per GPU) first, which packs
   better. For each replica the best node is the least by: replicas of
   the deployment already at its site (spread over sites: they are failure domains), whether it
   runs a replica of it (spread over the site's nodes: a node fails alone too), whether it
   holds the model (warm: no download), whether it is in use (pack: a node already running
   replicas is filled before an empty one is opened, so whole nodes stay free for big models),
   memory the fitting GPUs keep free (the tightest fit), the node's free memory, node id.

Memory: a GPU's use is the sum of its replicas' shares (a replica's memory split evenly over
its GPUs), never more than the GPU has, so small models share GPUs. A CPU node offers its RAM
and runs replicas needing no GPU, one rank. Quarantined GPUs offer nothing; a node whose GPUs
are all quarantined runs nothing (it does not fall back to RAM). New replicas go only to
schedulable, uncordoned nodes of active sites, never to a (deployment, node) pair that failed
lately.

Compute contracts: a deployment's reserved replicas come on top of its on-demand count. They are
held to the contract's terms (firm, in its regions), charged to their GPUs before any other
replica (so an over-committed GPU loses an on-demand replica), placed before any on-demand
replica of any deployment, and never scaled down: on-demand work never moves them.
"""

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from hashgrid.scheduler.capacity import (
    CPU_SLOT,
    NodeState,
    Pool,
    best_fit,
    build_pools,
    node_rating,
    take,
)
from hashgrid.scheduler.reasons import Reasons
from hashgrid.scheduler.snapshot import (
    DeploymentView,
    Place,
    Plan,
    PowerState,
    Remove,
    ReplicaView,
    SiteView,
    Snapshot,
    Tier,
    Unplaced,
)

STALE = -1  # in place of a rating: sorts before every rating at its level
# A node scoring below this (`capacity/score.py`) takes firm and reserved replicas only when
# no node scoring at least this fits them: those are the replicas customers count on.
RELIABLE = 0.8

# (regions, gpu type, may use CPU nodes, tensor parallel size, tier where tiers differ): pools
# grouped by site.
Signature = tuple[frozenset[str], str | None, bool, int, Tier | None]
FLEX_LEAVES = (PowerState.CURTAILED, PowerState.FLEX_PAUSED)  # site states flex replicas leave
SitePools = list[tuple[int, tuple[Pool, ...]]]
Rating = tuple[int, int, int, int]  # see NodeState.rating


def plan(snapshot: Snapshot) -> Plan:
    """Bring every deployment to its replica count, moving nothing that still fits."""
    return _Planner(snapshot).run()


class _Planner:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.sites: list[SiteView] = sorted(snapshot.sites, key=lambda s: s.id)
        # Tiers see different sites only while one pauses flex work; else they share pools.
        self.tiers_differ = any(s.power == PowerState.FLEX_PAUSED for s in self.sites)
        site_index = {s.id: i for i, s in enumerate(self.sites)}
        views = sorted(snapshot.nodes, key=lambda n: n.id)
        self.nodes = [NodeState(i, n, site_index.get(n.site, -1)) for i, n in enumerate(views)]
        self.by_id = {n.view.id: n for n in self.nodes}
        # Ranks of nodes scored below RELIABLE: firm and reserved replicas go elsewhere first.
        self.unreliable = {
            n.rank for n in self.nodes if n.view.score is not None and n.view.score < RELIABLE
        }
        self.deployments = {d.id: d for d in snapshot.deployments}
        # What a reserved replica is held to: its deployment, firm, in its contract's regions.
        self.reserved_views = {
            (d.id, r.contract_id): replace(
                d, replicas=r.replicas, regions=r.regions or d.regions, tier=Tier.FIRM
            )
            for d in snapshot.deployments
            for r in d.reservations
        }
        # Of each deployment's kept replicas: how many each contract holds, how many on demand.
        self.held: dict[str, Counter[str]] = defaultdict(Counter)
        self.on_demand: Counter[str] = Counter()
        self.placed_on: dict[str, list[NodeState]] = defaultdict(list)  # new ones, this pass
        self.result = Plan()
        # Replicas of an older generation that stay while the new one rolls out (see _roll).
        self.outdated: dict[str, list[ReplicaView]] = defaultdict(list)
        self.pools: list[Pool] = []
        self.signatures: dict[Signature, SitePools] = {}
        self.version = [0] * len(self.sites)  # grows with every placement on the site
        self.memo: dict[tuple[Signature, int], dict[int, tuple[int, Rating | None]]] = {}

    def run(self) -> Plan:
        kept = self._check_replicas()
        self._roll(kept)
        kept = self._scale_down(kept)
        self.pools = build_pools((n for n in self.nodes if self._takes_new(n)), self._ks())
        self._place_missing(kept)
        return self.result

    # --- existing replicas -------------------------------------------------------------------

    def _check_replicas(self) -> dict[str, list[ReplicaView]]:
        """Replicas of each deployment's current generation that stay; older ones that may
        stay while they are replaced go to `self.outdated`."""
        kept: dict[str, list[ReplicaView]] = {d: [] for d in self.deployments}
        # Reserved replicas are charged first: a GPU they would over-commit loses another one.
        order = sorted(
            self.snapshot.replicas, key=lambda r: (not self._reserved(r), not r.ready, r.id)
        )
        for r in order:
            d = self.deployments.get(r.deployment_id)
            outdated = d is not None and r.generation != d.generation
            reason = self._why_not_kept(r, self._spec(r), check_spec=not outdated)
            if reason is None:
                node = self.by_id[r.node_id]
                share = -(-r.memory_bytes // max(1, len(r.gpus)))
                if not node.charge(r.gpus, share):
                    reason = "does not fit beside the other replicas on its GPUs"
            if reason is not None:
                self.result.removes.append(Remove(r.id, reason))
            elif outdated:
                self.outdated[r.deployment_id].append(r)
            else:
                kept[r.deployment_id].append(r)
        return kept

    def _reserved(self, r: ReplicaView) -> bool:
        """Whether `r` was placed for a contract its deployment still has in force."""
        return (r.deployment_id, r.contract_id) in self.reserved_views

    def _spec(self, r: ReplicaView) -> DeploymentView | None:
        """What `r` is held to: its contract's terms if reserved, else its deployment."""
        if r.contract_id is not None:
            held = self.reserved_views.get((r.deployment_id, r.contract_id))
            if held is not None:
                return held
        return self.deployments.get(r.deployment_id)

    def _why_not_kept(
        self, r: ReplicaView, d: DeploymentView | None, *, check_spec: bool
    ) -> str | None:
        """Why `r` must go now, or None. Without `check_spec`, only its node and site count:
        it runs an older generation, and goes by rolling."""
        if d is None:
            return "deployment deleted"
        node = self.by_id.get(r.node_id)
        if node is None or node.site < 0 or not node.view.schedulable:
            return "node not schedulable"
        if not node.view.admitted:
            return "node not admitted"
        if r.failed_too_long:
            return "kept failing on its node"
        site = self.sites[node.site]
        if site.power == PowerState.DRAINING:
            return "site draining"
        if site.power in FLEX_LEAVES and d.tier == Tier.FLEX:
            return f"site {site.power.replace('_', ' ')}"
        if not check_spec:
            return None
        if d.regions and site.region not in d.regions:
            return "outside the deployment's regions"
        if node.cpu:
            if r.gpus:
                return "assigned GPUs on a node without GPUs"
            return None if d.cpu_ok else "needs GPUs"
        gpus = node.gpus
        if not r.gpus:
            return "assigned no GPU on a GPU node"
        if len(set(r.gpus)) != len(r.gpus) or len(r.gpus) != d.tensor_parallel_size:
            return f"needs {d.tensor_parallel_size} distinct GPU(s), has {list(r.gpus)}"
        for index in r.gpus:
            gpu = gpus.get(index)
            if gpu is None:
                return f"GPU {index} is gone"
            if gpu.quarantined:
                return f"GPU {index} quarantined"
            if not d.wants(gpu.name):
                return f"GPU {index} ({gpu.name}) is not a {d.gpu_type}"
        return None

    def _roll(self, kept: dict[str, list[ReplicaView]]) -> None:
        """Retire older generations as the new one's ready replicas make up for them."""
        for d_id in sorted(self.outdated):
            d = self.deployments[d_id]
            ready_new = sum(r.ready for r in kept[d_id])
            old = sorted(self.outdated[d_id], key=lambda r: (r.ready, r.id))
            spare = ready_new + sum(r.ready for r in old) - d.total
            stay = []
            for r in old:
                if not r.ready or spare > 0:
                    spare -= r.ready
                    self._retire(r, f"replaced by generation {d.generation}")
                else:
                    stay.append(r)
            self.outdated[d_id] = stay

    def _retire(self, r: ReplicaView, reason: str) -> None:
        self._release(r)
        self.result.removes.append(Remove(r.id, reason))

    def _scale_down(self, kept: dict[str, list[ReplicaView]]) -> dict[str, list[ReplicaView]]:
        """Drop each deployment's on-demand surplus, giving its memory back before any
        placement. Replicas its contracts hold stay whatever the count."""
        for d_id in sorted(kept):
            current = kept[d_id]
            on_demand = self._hold(self.deployments[d_id], current)
            surplus = len(on_demand) - self.deployments[d_id].replicas
            if surplus <= 0:
                continue
            self.on_demand[d_id] -= surplus
            per_site = Counter(self.by_id[r.node_id].site for r in current)
            per_node = Counter(r.node_id for r in current)
            order = sorted(
                on_demand,
                key=lambda r: (
                    r.ready,
                    -per_site[self.by_id[r.node_id].site],
                    -per_node[r.node_id],
                    r.id,
                ),
            )
            for r in order[:surplus]:
                self._release(r)
                self.result.removes.append(Remove(r.id, "scaled down"))
            gone = {r.id for r in order[:surplus]}
            kept[d_id] = [r for r in current if r.id not in gone]
        return kept

    def _hold(self, d: DeploymentView, current: list[ReplicaView]) -> list[ReplicaView]:
        """Count, per contract of `d`, the kept replicas it holds (up to its count, ready ones
        first); the rest of `current` is on demand, and returned."""
        room = {r.contract_id: r.replicas for r in d.reservations}
        on_demand = []
        for r in sorted(current, key=lambda r: (not r.ready, r.id)):
            if r.contract_id is not None and room.get(r.contract_id, 0) > 0:
                room[r.contract_id] -= 1
                self.held[d.id][r.contract_id] += 1
            else:
                on_demand.append(r)
        self.on_demand[d.id] = len(on_demand)
        return on_demand

    def _release(self, r: ReplicaView) -> None:
        node = self.by_id[r.node_id]
        share = -(-r.memory_bytes // max(1, len(r.gpus)))
        for gpu in r.gpus or (CPU_SLOT,):
            node.free[node.position[gpu]] += share

    # --- new replicas ------------------------------------------------------------------------

    def _takes_new(self, node: NodeState) -> bool:
        view = node.view
        return (
            node.site >= 0
            and view.schedulable
            and view.admitted
            and not view.cordoned
            and self.sites[node.site].power in (PowerState.ACTIVE, PowerState.FLEX_PAUSED)
        )

    def _ks(self) -> set[int]:
        return {1} | {d.tensor_parallel_size for d in self.deployments.values()}

    def _place_missing(self, kept: dict[str, list[ReplicaView]]) -> None:
        # A node where a replica kept failing takes no other replica of it in this pass either.
        given_up = {
            (r.deployment_id, r.node_id) for r in self.snapshot.replicas if r.failed_too_long
        }
        failing = self.snapshot.cooling | given_up
        cooling: dict[str, set[int]] = defaultdict(set)
        for d_id, n_id in failing:
            node = self.by_id.get(n_id)
            if node is not None:
                cooling[d_id].add(node.rank)
        warm = self._warm_index()
        reasons = Reasons(self.sites, self.nodes, failing)
        order = sorted(
            self.deployments.values(),
            key=lambda d: (d.tier != Tier.FIRM, -d.tensor_parallel_size * d.gpu_memory_bytes, d.id),
        )
        # While rolling, old and new together stay within the total + max_surge.
        room = {
            d.id: d.total + d.max_surge - len(kept[d.id]) - len(old)
            if (old := self.outdated.get(d.id))
            else d.total
            for d in order
        }
        for d in order:  # every contract's reserved replicas before any on-demand one
            for held in sorted(d.reservations, key=lambda r: r.contract_id):
                missing = min(held.replicas - self.held[d.id][held.contract_id], room[d.id])
                if missing > 0:
                    view = self.reserved_views[(d.id, held.contract_id)]
                    room[d.id] -= self._place_some(
                        view, missing, kept, cooling, warm, reasons, held.contract_id
                    )
        for d in order:
            missing = min(d.replicas - self.on_demand[d.id], room[d.id])
            placed = (
                self._place_some(d, missing, kept, cooling, warm, reasons) if missing > 0 else 0
            )
            old = self.outdated.get(d.id, [])
            if (
                placed == 0
                and old
                and not self.placed_on[d.id]
                and len(kept[d.id]) < d.total
                and self._all_ready(kept, d)
            ):
                self._replace_in_place(d, old)  # no room beside the old generation

    def _place_some(
        self,
        d: DeploymentView,
        missing: int,
        kept: dict[str, list[ReplicaView]],
        cooling: dict[str, set[int]],
        warm: dict[str, dict[int, list[NodeState]]],
        reasons: Reasons,
        contract_id: str | None = None,
    ) -> int:
        """Place up to `missing` replicas of `d` (for `contract_id`, if given), saying why the
        rest wait; how many were placed.

        Firm and reserved replicas go to reliable nodes (score at least `RELIABLE`) while one
        fits, and to the others only for the rest."""
        placed = 0
        if d.tier == Tier.FIRM and self.unreliable:
            cooling_or_shunned = {d.id: cooling.get(d.id, set()) | self.unreliable}
            placed = self._place_some_among(
                d, missing, kept, cooling_or_shunned, warm, None, contract_id
            )
        return placed + self._place_some_among(
            d, missing - placed, kept, cooling, warm, reasons, contract_id
        )

    def _place_some_among(
        self,
        d: DeploymentView,
        missing: int,
        kept: dict[str, list[ReplicaView]],
        cooling: dict[str, set[int]],
        warm: dict[str, dict[int, list[NodeState]]],
        reasons: Reasons | None,
        contract_id: str | None,
    ) -> int:
        """`_place_some` avoiding the nodes `cooling` names for `d`; a pass without `reasons`
        records nothing unplaced (a later pass places the rest)."""
        if missing <= 0:
            return 0
        signature, site_pools = self._site_pools(d)
        avoid = frozenset(cooling.get(d.id, ()))
        nodes = [self.by_id[r.node_id] for r in kept[d.id]] + self.placed_on[d.id]
        ask = _Ask(
            d,
            d.gpu_memory_bytes,
            site_pools,
            Counter(n.site for n in nodes),
            {n.rank for n in nodes},
            avoid,
            warm.get(d.source) if d.source is not None else None,
            # Deployments come grouped by size: the next one often asks the same question.
            None if avoid else self.memo.setdefault((signature, d.gpu_memory_bytes), {}),
        )
        placed = self._place(ask, missing, contract_id)
        if placed < missing and reasons is not None:
            why = reasons.why(d, [p for _, pools in site_pools for p in pools])
            self.result.unplaced.append(Unplaced(d.id, missing - placed, why, contract_id))
        return placed

    def _replace_in_place(self, d: DeploymentView, old: list[ReplicaView]) -> None:
        """Retire the first old replica whose place the new generation fits into, making room
        for the next pass. None fits (the new generation cannot run where the old one does):
        the old ones stay, and the deployment says why it waits."""
        for r in old:
            node = self.by_id[r.node_id]
            pool = node.pool  # set only on nodes that take new replicas
            if pool is None or not pool.serves(d):
                continue
            if not self._site_takes(d, self.sites[node.site]):
                continue
            self._release(r)
            if node.choose(d, d.gpu_memory_bytes, d.tensor_parallel_size) is not None:
                pool.rekey(node)
                self.result.removes.append(
                    Remove(r.id, "replaced in place: no room for a new replica beside it")
                )
                old.remove(r)
                return
            node.charge(r.gpus, -(-r.memory_bytes // max(1, len(r.gpus))))

    @staticmethod
    def _site_takes(d: DeploymentView, site: SiteView) -> bool:
        """Whether a site whose nodes take new replicas takes one of `d`: in its regions, and
        for flex work, not paused by the site's plan."""
        in_regions = not d.regions or site.region in d.regions
        return in_regions and not (d.tier == Tier.FLEX and site.power == PowerState.FLEX_PAUSED)

    @staticmethod
    def _all_ready(kept: dict[str, list[ReplicaView]], d: DeploymentView) -> bool:
        """Whether every replica of `d`'s current generation is ready: none still starting."""
        return all(r.ready for r in kept[d.id])

    def _warm_index(self) -> dict[str, dict[int, list[NodeState]]]:
        """Model source -> site -> nodes taking new replicas that hold it."""
        warm: dict[str, dict[int, list[NodeState]]] = defaultdict(lambda: defaultdict(list))
        for node in self.nodes:
            if node.view.holds and node.pool is not None:
                for source in node.view.holds:
                    warm[source][node.site].append(node)
        return warm

    def _site_pools(self, d: DeploymentView) -> tuple[Signature, SitePools]:
        """Pools that could run `d` memory aside, grouped by site (shared by like deployments)."""
        tier = d.tier if self.tiers_differ else None
        signature = (d.regions, d.gpu_type, d.cpu_ok, d.tensor_parallel_size, tier)
        found = self.signatures.get(signature)
        if found is None:
            by_site: dict[int, list[Pool]] = defaultdict(list)
            for pool in self.pools:
                if self._site_takes(d, self.sites[pool.site]) and pool.serves(d):
                    by_site[pool.site].append(pool)
            found = self.signatures[signature] = [(s, tuple(p)) for s, p in sorted(by_site.items())]
        return signature, found

    def _place(self, ask: "_Ask", missing: int, contract_id: str | None) -> int:
        """Place up to `missing` replicas of `ask.d`; how many were placed."""
        d = ask.d
        heap = []
        memo, version, levels, warm = ask.memo, self.version, ask.levels, ask.warm
        for site, pools in ask.site_pools:
            if memo is not None and not levels[site] and (warm is None or site not in warm):
                known = memo.get(site)  # the common case, inline: the site is as last rated
                if known is not None and known[0] == version[site]:
                    if known[1] is not None:
                        heap.append((0, 0, 1, *known[1], site, pools))
                    continue
            best = self._best_in_site(ask, site, pools)
            if best is not None:
                heap.append((levels[site], *best, site, pools))
        heapq.heapify(heap)
        placed = 0
        while placed < missing and heap:
            entry = heapq.heappop(heap)
            level, flag, rank, site, pools = entry[0], entry[1], entry[-3], entry[-2], entry[-1]
            if flag == STALE:  # the site changed since it was rated: rate it again
                best = self._best_in_site(ask, site, pools)
                if best is not None:
                    heapq.heappush(heap, (level, *best, site, pools))
                continue
            node = self.nodes[rank]
            slots = node.choose(d, ask.need, d.tensor_parallel_size)
            assert slots is not None, "the index offered a node that does not fit"
            take(node, slots, ask.need)
            self.version[site] += 1
            ask.levels[site] += 1
            ask.holding.add(rank)
            gpus = () if node.cpu else tuple(sorted(node.gpu_ids[i] for i in slots))
            self.result.places.append(Place(d.id, node.view.id, gpus, contract_id))
            self.placed_on[d.id].append(node)
            placed += 1
            # Rated again only if reached: most deployments never come back to a site.
            heapq.heappush(heap, (level + 1, STALE, 0, 0, 0, 0, -1, site, pools))
        return placed

    def _best_in_site(
        self, ask: "_Ask", site: int, pools: tuple[Pool, ...]
    ) -> tuple[int, int, int, int, int, int] | None:
        """(1 if the node runs a replica of the deployment already, else 0; 0 if it holds the
        model, else 1; *rating) of the best node of a site, or None when none fits."""
        if ask.levels[site] == 0:
            best = self._rate(ask, site, pools, ask.cooling, ask.memo)
            return None if best is None else (0, *best)
        # Spread over the site's nodes too: a node is a failure domain as well.
        best = self._rate(ask, site, pools, ask.cooling | ask.holding, None)
        if best is not None:
            return (0, *best)
        best = self._rate(ask, site, pools, ask.cooling, None)
        return None if best is None else (1, *best)

    def _rate(
        self,
        ask: "_Ask",
        site: int,
        pools: tuple[Pool, ...],
        avoid: frozenset[int],
        memo: dict[int, tuple[int, Rating | None]] | None,
    ) -> tuple[int, int, int, int, int] | None:
        """(0 if warm else 1, *rating) of the best node of a site not in `avoid`, or None."""
        if ask.warm is not None and site in ask.warm:
            best_warm = _best_of(ask.d, ask.need, ask.warm[site], pools, avoid)
            if best_warm is not None:
                return (0, *best_warm)
        version = self.version[site]
        known = memo.get(site) if memo is not None else None
        if known is not None and known[0] == version:
            best = known[1]
        else:
            best = None
            for pool in pools:
                if pool.max_memory >= ask.need:
                    found = best_fit(pool, ask.d, ask.need, avoid)
                    if found is not None and (best is None or found < best):
                        best = found
            if memo is not None:
                memo[site] = (version, best)
        return None if best is None else (1, *best)


@dataclass
class _Ask:
    """Placing the replicas of one deployment: what it needs and where it runs already."""

    d: DeploymentView
    need: int  # bytes on each GPU (or of RAM)
    site_pools: SitePools
    levels: Counter[int]  # its replicas per site
    holding: set[int]  # ranks of nodes running one of its replicas
    cooling: frozenset[int]  # ranks of nodes where one of its replicas failed lately
    warm: dict[int, list[NodeState]] | None  # nodes holding its model, per site
    # The best node of each site as found for deployments asking the same, and the site's
    # version then; None when this deployment's answer differs (it has cooling nodes).
    memo: dict[int, tuple[int, Rating | None]] | None


def _best_of(
    d: DeploymentView,
    need: int,
    nodes: Iterable[NodeState],
    pools: tuple[Pool, ...],
    cooling: frozenset[int],
) -> tuple[int, int, int, int] | None:
    best: Rating | None = None
    for node in nodes:
        if node.pool not in pools or node.rank in cooling:
            continue
        rating = node_rating(node, d, need)
        if rating is not None and (best is None or rating < best):
            best = rating
    return best
