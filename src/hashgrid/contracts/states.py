"""Statuses and the transitions allowed between them: the one place they are written down.

See docs/states.md for the same tables with the reasons behind each edge.
"""

from enum import StrEnum


class NodeStatus(StrEnum):
    READY = "ready"  # beating within its TTL
    LOST = "lost"  # missed its TTL; its replicas are lost with it


class NodeAdmission(StrEnum):
    """Whether a node may take customer traffic (`nodes.admission`), set only through
    `server/nodes/admission.py: set_admission`, each move with its reason."""

    PENDING = "pending"  # not verified yet, or re-verification asked: no placements, no traffic
    ADMITTED = "admitted"  # its verification passed: placed on and routed to
    REFUSED = "refused"  # its verification failed; `admission_reason` says which claim and figure
    QUARANTINED = "quarantined"  # admitted, then its answers failed spot-checks


class NodePower(StrEnum):
    """Whether hashgrid keeps a GPU node powered (`nodes.power`), for nodes whose BMC the site's
    power model names: on -> standby (idle long enough: its BMC turns it off) -> waking (work
    needs it: its BMC turns it on) -> on (its agent is back). A node heard from again is on,
    whoever powered it."""

    ON = "on"  # powered; schedulable when ready
    STANDBY = "standby"  # ordered off while idle; takes no replicas
    WAKING = "waking"  # ordered on for work that fits nowhere else; takes replicas once ready


class SitePowerState(StrEnum):
    """How a site's power is going, stored per site (`sites.power_state`). A curtailment or the
    hour's power plan sets it (`server/power/service.py`); placement and routing obey it."""

    ACTIVE = "active"  # GPUs powered as planned: route here
    FLEX_PAUSED = "flex_paused"  # the hour's plan: flex work does not pay here; firm as active
    CURTAILED = "curtailed"  # the grid or the plan took power back: route here only if nowhere else
    DRAINING = "draining"  # GPU nodes going back to mining soon: route here only if nowhere else


class CurtailmentStatus(StrEnum):
    """Where a curtailment is, read from its times (`server/power/tables.py: Curtailment`):
    scheduled -> in_force -> ended, or scheduled -> cancelled."""

    SCHEDULED = "scheduled"  # accepted; shedding begins at `starts_at`, ahead of its `by`
    IN_FORCE = "in_force"  # shedding since `started_at`
    ENDED = "ended"  # restored or replaced after it began
    CANCELLED = "cancelled"  # restored or replaced before it began


class ContractStatus(StrEnum):
    """Where a compute contract is (`server/contracts/tables.py: ComputeContract`): pending ->
    active -> ended, or cancelled before it ends. The clock moves the first two edges (the
    hour-accounting pass, `billing.contracts.due_status`); the platform admin cancels."""

    PENDING = "pending"  # before its start; its replicas are placed a little ahead of it
    ACTIVE = "active"  # in its term: replicas reserved, hours watched and billed
    ENDED = "ended"  # its term is over
    CANCELLED = "cancelled"  # stopped early; billed through the hour it was cancelled in


class MinerAction(StrEnum):
    """What one ASIC miner is told to do (the control plane's target, the site agent's act)."""

    SLEEP = "sleep"  # stop hashing; the miner draws only its idle power
    RESUME = "resume"  # hash, at whatever power limit the miner has
    POWER = "power"  # hash, drawing at most `watts` (0: sleep)


class ReplicaStatus(StrEnum):
    SCHEDULED = "scheduled"  # placed on a node; the agent has not acted yet
    STARTING = "starting"  # engine process launched, not yet healthy
    READY = "ready"  # healthy; routable
    STOPPING = "stopping"  # unassigned; the agent is stopping the engine
    STOPPED = "stopped"  # stopped on purpose
    FAILED = "failed"  # engine failed to start or died; its agent restarts it; `reason` says why
    LOST = "lost"  # its node was lost


# Assigned to its node: the agent runs it (a failed one, it restarts in place).
ACTIVE_REPLICA = frozenset(
    {ReplicaStatus.SCHEDULED, ReplicaStatus.STARTING, ReplicaStatus.READY, ReplicaStatus.FAILED}
)
TERMINAL_REPLICA = frozenset({ReplicaStatus.STOPPED, ReplicaStatus.LOST})

REPLICA_TRANSITIONS: dict[ReplicaStatus, frozenset[ReplicaStatus]] = {
    # SCHEDULED -> STOPPED: removed before its agent acted, so there is nothing to stop.
    ReplicaStatus.SCHEDULED: frozenset(
        {ReplicaStatus.STARTING, ReplicaStatus.READY, ReplicaStatus.FAILED}
        | {ReplicaStatus.STOPPING, ReplicaStatus.STOPPED, ReplicaStatus.LOST}
    ),
    # STARTING/READY -> STOPPED: the agent stopped it on its own, shutting down.
    ReplicaStatus.STARTING: frozenset(
        {ReplicaStatus.READY, ReplicaStatus.FAILED, ReplicaStatus.STOPPING}
        | {ReplicaStatus.STOPPED, ReplicaStatus.LOST}
    ),
    ReplicaStatus.READY: frozenset(
        {ReplicaStatus.FAILED, ReplicaStatus.STOPPING, ReplicaStatus.STOPPED, ReplicaStatus.LOST}
    ),
    # FAILED -> STARTING/READY: the agent restarted the engine in place (READY when the
    # starting report was superseded before it was sent). FAILED -> STOPPING: placement gave up
    # on it after `replica_retry_after_s` and places it elsewhere.
    ReplicaStatus.FAILED: frozenset(
        {ReplicaStatus.STARTING, ReplicaStatus.READY, ReplicaStatus.STOPPING}
        | {ReplicaStatus.STOPPED, ReplicaStatus.LOST}
    ),
    # No STOPPING -> FAILED: a replica on its way out is not restarted, so its engine's end is
    # reported as STOPPED.
    ReplicaStatus.STOPPING: frozenset({ReplicaStatus.STOPPED, ReplicaStatus.LOST}),
    ReplicaStatus.STOPPED: frozenset(),
    ReplicaStatus.LOST: frozenset(),
}

NODE_TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    NodeStatus.READY: frozenset({NodeStatus.LOST}),
    NodeStatus.LOST: frozenset({NodeStatus.READY}),
}

# Any state -> PENDING: re-verification asked (`hashgrid nodes verify`); the agent benchmarks again.
NODE_ADMISSION_TRANSITIONS: dict[NodeAdmission, frozenset[NodeAdmission]] = {
    NodeAdmission.PENDING: frozenset({NodeAdmission.ADMITTED, NodeAdmission.REFUSED}),
    # ADMITTED -> REFUSED: a later verification of the node (its GPUs changed) failed.
    NodeAdmission.ADMITTED: frozenset(
        {NodeAdmission.PENDING, NodeAdmission.REFUSED, NodeAdmission.QUARANTINED}
    ),
    # REFUSED -> ADMITTED: its agent verified again by itself (GPUs changed, `agent --verify`).
    NodeAdmission.REFUSED: frozenset({NodeAdmission.PENDING, NodeAdmission.ADMITTED}),
    # A quarantined node's own reports change nothing: only a re-verification asked for frees it.
    NodeAdmission.QUARANTINED: frozenset({NodeAdmission.PENDING}),
}


def admission_can_move(current: NodeAdmission, new: NodeAdmission) -> bool:
    """True when a node's admission may go from `current` to `new` (staying put is allowed)."""
    return new == current or new in NODE_ADMISSION_TRANSITIONS[current]


CONTRACT_TRANSITIONS: dict[ContractStatus, frozenset[ContractStatus]] = {
    ContractStatus.PENDING: frozenset({ContractStatus.ACTIVE, ContractStatus.CANCELLED}),
    ContractStatus.ACTIVE: frozenset({ContractStatus.ENDED, ContractStatus.CANCELLED}),
    ContractStatus.ENDED: frozenset(),
    ContractStatus.CANCELLED: frozenset(),
}
# Holding (or about to hold) replicas: what placement and the gateways' view read.
LIVE_CONTRACT = frozenset({ContractStatus.PENDING, ContractStatus.ACTIVE})


def contract_can_move(current: ContractStatus, new: ContractStatus) -> bool:
    """True when a contract may go from `current` to `new` (staying put is always allowed)."""
    return new == current or new in CONTRACT_TRANSITIONS[current]


def replica_can_move(current: ReplicaStatus, new: ReplicaStatus) -> bool:
    """True when a replica may go from `current` to `new` (staying put is always allowed)."""
    return new == current or new in REPLICA_TRANSITIONS[current]


class InvoiceStatus(StrEnum):
    """Where a customer's invoice of one period is (`server/billing/`): draft -> issued -> paid,
    or issued -> void. A draft is never stored: it is computed on read from the records not yet
    invoiced, so it is always live; issuing stores it, numbered, and it never changes after."""

    DRAFT = "draft"  # computed on read; no number
    ISSUED = "issued"  # numbered and stored with its lines; its records name it; immutable
    PAID = "paid"  # the platform recorded the payment
    VOID = "void"  # cancelled by the platform: its records are free again, billed anew


INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.ISSUED}),
    # ISSUED -> VOID: issued in error (a wrong price, a wrong customer); its records go on the
    # period's next issue, or on the next invoice as adjustments.
    InvoiceStatus.ISSUED: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    # No PAID -> VOID: money was received against it; a correction is a credit on a later one.
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}


def invoice_can_move(current: InvoiceStatus, new: InvoiceStatus) -> bool:
    """True when an invoice may go from `current` to `new`."""
    return new in INVOICE_TRANSITIONS[current]
