"""Free memory on every GPU (or in every CPU node's RAM), indexed so that the tightest node that
fits a replica is one bisect away.

Nodes that take new replicas are grouped in pools: one per site and kind of node (CPU, or the
names of its usable GPUs). For each tensor-parallel size `k` a pool keeps a sorted list of one
integer per node, `(unused, kth_free, total_free, rank)` packed in one int: `unused` is 1 for a
node no replica uses yet, `kth_free` the node's k-th largest free GPU memory (a k-GPU replica
needing `m` per GPU fits exactly when it is at least `m`), `total_free` its free memory over all
GPUs, and `rank` its place in id order. So the list holds the nodes in use, then the unused
ones, each part sorted by free memory. The best fit is the first key at or above `m` among the
nodes in use, else among the unused ones: a node already in use is filled before another is
opened (that keeps whole nodes free for big models), then the least free memory that is enough,
then the fullest node, then node id. A placement re-keys one node.
"""

from bisect import bisect_left, insort
from collections.abc import Iterable

from hashgrid.scheduler.snapshot import DeploymentView, NodeView

RANK_BITS = 24  # node ranks below 2**24: sixteen million nodes
TOTAL_BITS = 52  # free bytes of a node below 4 PiB
MASK = (1 << RANK_BITS) - 1
TOTAL_MASK = (1 << TOTAL_BITS) - 1
KTH_SHIFT = RANK_BITS + TOTAL_BITS
KTH_BITS = 52  # free bytes of one slot below 4 PiB
KTH_MASK = (1 << KTH_BITS) - 1
UNUSED = 1 << (KTH_SHIFT + KTH_BITS)
CPU_SLOT = -1  # the one "GPU index" of a CPU node: its RAM


class NodeState:
    """One node's usable memory slots (GPUs not quarantined, or its RAM) and what is free."""

    __slots__ = (
        *("rank", "view", "site", "gpu_ids", "names", "capacity", "free", "position", "pool"),
        *("keys", "gpus", "uniform"),
    )

    def __init__(self, rank: int, view: NodeView, site: int) -> None:
        self.rank = rank
        self.view = view
        self.site = site  # index of its site, -1 when the site is unknown
        usable = sorted((g for g in view.gpus if not g.quarantined), key=lambda g: g.index)
        if view.gpus:
            self.gpu_ids = [g.index for g in usable]
            self.names = [g.name for g in usable]
            self.free = [g.memory_bytes for g in usable]
        else:
            self.gpu_ids = [CPU_SLOT]
            self.names = [""]
            self.free = [view.memory_bytes]
        self.capacity = sum(self.free)
        self.uniform = len(set(self.names)) <= 1  # one GPU name: a type matches all or none
        self.position = {gpu: i for i, gpu in enumerate(self.gpu_ids)}
        self.pool: Pool | None = None
        self.keys: dict[int, int] = {}  # its current key in its pool's list for each k
        self.gpus = {g.index: g for g in view.gpus}  # every GPU, quarantined ones too

    @property
    def cpu(self) -> bool:
        return not self.view.gpus

    def index_keys(self, ks: Iterable[int]) -> dict[int, int]:
        """Its index keys for k-GPU replicas (see the module docstring), for each k of `ks` it
        has the slots for."""
        ordered = sorted(self.free, reverse=True)
        total = sum(ordered)
        common = (UNUSED if total == self.capacity else 0) | (min(total, TOTAL_MASK) << RANK_BITS)
        return {
            k: common | (ordered[k - 1] << KTH_SHIFT) | self.rank for k in ks if k <= len(ordered)
        }

    @property
    def unused(self) -> bool:
        return sum(self.free) == self.capacity

    def rating(self, left: int) -> tuple[int, int, int, int]:
        """How good a fit leaving `left` bytes is: less is better (see the module docstring)."""
        return (int(self.unused), left, sum(self.free), self.rank)

    def charge(self, gpus: tuple[int, ...], per_slot: int) -> bool:
        """Take `per_slot` bytes on each of `gpus` (an existing replica) if all have them free."""
        slots = [self.position[CPU_SLOT]] if self.cpu else [self.position[g] for g in gpus]
        if any(self.free[i] < per_slot for i in slots):
            return False
        for i in slots:
            self.free[i] -= per_slot
        return True

    def choose(self, d: DeploymentView, need: int, k: int) -> list[int] | None:
        """Slot positions for a new replica: the k tightest slots of a wanted type that fit,
        ties by GPU index; None when fewer than k fit."""
        ids = self.gpu_ids
        if d.gpu_type is None or self.uniform:  # every slot is of a wanted type (or none is)
            fitting = [(free, ids[i], i) for i, free in enumerate(self.free) if free >= need]
        else:
            names = self.names
            fitting = [
                (free, ids[i], i)
                for i, free in enumerate(self.free)
                if free >= need and d.wants(names[i])
            ]
        if len(fitting) < k:
            return None
        if k == 1:
            return [min(fitting)[2]]
        return [i for _, _, i in sorted(fitting)[:k]]

    def leftover(self, d: DeploymentView, need: int, k: int) -> int | None:
        """How much the k-th fitting slot keeps free after the replica; None if it does not fit."""
        fitting = sorted(
            (free for i, free in enumerate(self.free) if free >= need and d.wants(self.names[i])),
            reverse=True,
        )
        if len(fitting) < k:
            return None
        return fitting[k - 1] - need


class Pool:
    """The nodes of one site and kind that take new replicas, keyed per tensor-parallel size."""

    __slots__ = ("cpu", "keys", "max_memory", "max_slots", "names", "nodes", "site")

    def __init__(self, site: int, cpu: bool, names: tuple[str, ...]) -> None:
        self.site = site
        self.cpu = cpu
        self.names = names  # distinct GPU names of its nodes' usable GPUs; () for CPU
        self.max_slots = 0
        self.max_memory = 0
        self.nodes: list[NodeState] = []
        self.keys: dict[int, list[int]] = {}

    @property
    def mixed(self) -> bool:
        """Its nodes carry GPUs of more than one name: a type constraint is checked per GPU."""
        return len(self.names) > 1

    def serves(self, d: DeploymentView) -> bool:
        """Whether some node of this kind could run `d`, memory aside."""
        if self.cpu:
            return d.cpu_ok
        if self.max_slots < d.tensor_parallel_size:
            return False
        return any(d.wants(name) for name in self.names)

    def index(self, ks: Iterable[int]) -> None:
        wanted = [k for k in ks if k <= self.max_slots]
        for node in self.nodes:
            node.keys = node.index_keys(wanted)
        for k in wanted:
            self.keys[k] = sorted(n.keys[k] for n in self.nodes if k in n.keys)

    def rekey(self, node: NodeState) -> None:
        """Move `node` to its new keys after its free memory changed."""
        for k, old in node.keys.items():
            keys = self.keys[k]
            del keys[bisect_left(keys, old)]
        node.keys = node.index_keys(self.keys)
        for k, key in node.keys.items():
            insort(self.keys[k], key)


def build_pools(nodes: Iterable[NodeState], ks: Iterable[int]) -> list[Pool]:
    """Pools of the given nodes (those taking new replicas), in a deterministic order."""
    pools: dict[tuple[int, bool, tuple[str, ...]], Pool] = {}
    for node in nodes:
        if not node.free:
            continue  # every GPU quarantined: nothing to offer
        names = tuple(sorted(set(node.names))) if not node.cpu else ()
        key = (node.site, node.cpu, names)
        pool = pools.get(key)
        if pool is None:
            pool = pools[key] = Pool(node.site, node.cpu, names)
        pool.nodes.append(node)
        pool.max_slots = max(pool.max_slots, len(node.free))
        pool.max_memory = max(pool.max_memory, max(node.free))
        node.pool = pool
    wanted = sorted(set(ks))
    ordered = [pools[key] for key in sorted(pools)]
    for pool in ordered:
        pool.index(wanted)
    return ordered


def take(node: NodeState, slots: list[int], need: int) -> None:
    """Charge a new replica's `need` bytes on each of `slots`, keeping its pool's keys right."""
    for i in slots:
        node.free[i] -= need
    if node.pool is not None:
        node.pool.rekey(node)


def best_fit(
    pool: Pool, d: DeploymentView, need: int, cooling: frozenset[int]
) -> tuple[int, int, int, int] | None:
    """The rating (`NodeState.rating`) of the best node of `pool` for `d`, or None."""
    k = d.tensor_parallel_size
    if pool.mixed and d.gpu_type is not None:
        best = None
        for node in pool.nodes:  # GPUs of several names on one node: check each (rare)
            if node.rank not in cooling and (rating := node_rating(node, d, need)) is not None:
                best = rating if best is None else min(best, rating)
        return best
    keys = pool.keys.get(k)
    if not keys:
        return None
    for unused in (0, UNUSED):
        i = bisect_left(keys, unused | (need << KTH_SHIFT))
        while i < len(keys) and keys[i] & UNUSED == unused:
            if keys[i] & MASK not in cooling:
                return rating_of(keys[i], need)
            i += 1
    return None


def rating_of(key: int, need: int) -> tuple[int, int, int, int]:
    """`NodeState.rating` read from a node's index key, for a replica needing `need` per GPU."""
    kth = (key >> KTH_SHIFT) & KTH_MASK
    return (key >> (KTH_SHIFT + KTH_BITS), kth - need, (key >> RANK_BITS) & TOTAL_MASK, key & MASK)


def node_rating(node: NodeState, d: DeploymentView, need: int) -> tuple[int, int, int, int] | None:
    """`NodeState.rating` of `node` for a replica of `d`, or None when it does not fit."""
    k = d.tensor_parallel_size
    if node.pool is not None and node.pool.mixed and d.gpu_type is not None:
        left = node.leftover(d, need, k)
        return None if left is None else node.rating(left)
    key = node.keys.get(k)
    if key is None or (key >> KTH_SHIFT) & KTH_MASK < need:
        return None
    return rating_of(key, need)
