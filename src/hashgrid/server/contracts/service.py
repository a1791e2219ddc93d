"""Compute contracts: made by the platform admin for a customer organization, read by that
customer (`scope`); another organization's contract is as absent as a missing one.

A contract reserves replicas of one deployment the customer may call (public, or private to
it). Placement reads the live ones (`reservations`): an active contract's, and a pending one's
from `lead` before its start, so that its replicas are ready when its first hour begins.
"""

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.contracts import due_status, hour_of, lines
from hashgrid.billing.lines import LineKind
from hashgrid.billing.money import PICO_PER_MICRO, cents, cents_usd, micros_of, usd
from hashgrid.billing.periods import Period
from hashgrid.contracts.api.compute_contracts import (
    ContractCreate,
    ContractDetail,
    ContractOut,
    ContractPeriod,
)
from hashgrid.contracts.api.organizations import OrgKind
from hashgrid.contracts.states import LIVE_CONTRACT, ContractStatus, ReplicaStatus
from hashgrid.scheduler import Reservation
from hashgrid.server import pages
from hashgrid.server.contracts.records import terms_of, watched_hours
from hashgrid.server.contracts.tables import ComputeContract
from hashgrid.server.deployments import service as deployments
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.errors import Conflict, Invalid, NotFound
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization


async def create(session: AsyncSession, body: ContractCreate, now: datetime) -> ComputeContract:
    """A contract as `body` asks, pending (or active, if it starts this hour). Raises NotFound
    for a customer or a deployment it may not call, Invalid for the rest; stores nothing then."""
    customer = await organizations.get(session, body.customer, OrgKind.CUSTOMER)
    deployment = await deployments.get(session, body.model, scope=customer.id)
    if deployment.endpoint is not None:
        raise Invalid(
            f"model: {body.model!r} is an external endpoint, run outside hashgrid: it has no "
            "replicas to reserve"
        )
    regions = sorted(set(body.regions))
    outside = set(regions) - set(deployment.regions) if deployment.regions else set()
    if outside:
        raise Invalid(
            f"regions: {', '.join(sorted(outside))} outside the deployment's "
            f"({', '.join(deployment.regions)})"
        )
    if body.starts_at < hour_of(now):
        raise Invalid("starts_at: a contract starts this hour or later, never in the past")
    starts_at, ends_at = hour_of(body.starts_at), hour_of(body.ends_at)
    contract = ComputeContract(
        customer_id=customer.id,
        deployment_id=deployment.id,
        model=deployment.name,
        replicas=body.replicas,
        regions=regions,
        price_pico=micros_of(body.price_per_replica_hour) * PICO_PER_MICRO,
        sla_credit_percent=body.sla_credit_percent,
        starts_at=starts_at,
        ends_at=ends_at,
        status=due_status(ContractStatus.PENDING, starts_at, ends_at, now),
    )
    session.add(contract)
    await session.commit()
    return contract


async def get(session: AsyncSession, contract_id: str, scope: str | None = None) -> ComputeContract:
    """The contract `contract_id`, if it is of customer `scope` (None: of any customer)."""
    contract = await session.get(ComputeContract, contract_id)
    if contract is None or (scope is not None and contract.customer_id != scope):
        raise NotFound(f"no contract {contract_id!r}")
    return contract


ORDER = pages.Order(pages.By(ComputeContract.created_at), pages.By(ComputeContract.id))


async def list_visible(
    session: AsyncSession,
    scope: str | None,
    cursor: str | None,
    limit: int,
    status: ContractStatus | None = None,
    customer: str | None = None,
) -> pages.Items[Row[ComputeContract, str]]:
    """A page of the contracts of customer `scope` (None: all), oldest first, each with its
    customer's name; of one `status` and of the customer named `customer`, where given."""
    query = select(ComputeContract, Organization.name).join(
        Organization, ComputeContract.customer_id == Organization.id
    )
    if scope is not None:
        query = query.where(ComputeContract.customer_id == scope)
    if status is not None:
        query = query.where(ComputeContract.status == status)
    if customer is not None:
        query = query.where(Organization.name == customer)
    return await pages.rows(session, query, ORDER, cursor, limit)


async def cancel(
    session: AsyncSession, contract_id: str, now: datetime, scope: str | None = None
) -> ComputeContract:
    """End a pending or active contract now: billed through this hour (nothing, if it had not
    started). Raises Conflict for one already over."""
    contract = await get(session, contract_id, scope)
    if contract.status not in LIVE_CONTRACT:
        raise Conflict(f"contract {contract_id!r} is {contract.status}: there is nothing to cancel")
    contract.status = ContractStatus.CANCELLED
    contract.cancelled_at = now
    await session.commit()
    return contract


async def out(session: AsyncSession, contract: ComputeContract) -> ContractOut:
    customer = await organizations.get_by_id(session, contract.customer_id)
    return as_out(contract, customer.name)


def as_out(contract: ComputeContract, customer: str) -> ContractOut:
    return ContractOut(
        id=contract.id,
        customer=customer,
        model=contract.model,
        replicas=contract.replicas,
        regions=contract.regions,
        price_per_replica_hour=usd(contract.price_pico),
        sla_credit_percent=contract.sla_credit_percent,
        starts_at=contract.starts_at,
        ends_at=contract.ends_at,
        status=ContractStatus(contract.status),
        created_at=contract.created_at,
        cancelled_at=contract.cancelled_at,
    )


async def detail(session: AsyncSession, contract: ComputeContract, now: datetime) -> ContractDetail:
    """`contract` with its replicas ready now and this period's hours, as its invoice counts
    them (the same lines)."""
    period = Period.of(now)
    hours = await watched_hours(session, [contract.id], period.start, period.end)
    found = lines(terms_of(contract), hours[contract.id], period, now)
    billed = [x for x in found if x.kind == LineKind.CONTRACT]
    credits = [x for x in found if x.kind == LineKind.CREDIT]
    ready = await session.scalar(
        select(func.count())
        .select_from(Replica)
        .where(Replica.contract_id == contract.id, Replica.status == ReplicaStatus.READY)
    )
    summary = await out(session, contract)
    return ContractDetail(
        **summary.model_dump(),
        replicas_ready=ready or 0,
        this_period=ContractPeriod(
            period=str(period),
            replica_hours=sum(x.quantity for x in billed),
            replica_hours_missed=sum(x.quantity for x in credits),
            amount_usd=cents_usd(sum(cents(x.amount_pico) for x in billed)),
            credit_usd=cents_usd(sum(cents(x.amount_pico) for x in credits)),
        ),
    )


def reserves(contract: ComputeContract, now: datetime, lead: timedelta) -> bool:
    """Whether placement keeps replicas for `contract` now: in its term, or within `lead` of
    its start."""
    status = ContractStatus(contract.status)
    if status == ContractStatus.PENDING:
        return now >= contract.starts_at - lead
    return status == ContractStatus.ACTIVE


async def live(session: AsyncSession) -> list[ComputeContract]:
    """Every pending or active contract."""
    query = select(ComputeContract).where(ComputeContract.status.in_(LIVE_CONTRACT))
    return list((await session.scalars(query)).all())


async def reservations(
    session: AsyncSession, now: datetime, lead: timedelta
) -> dict[str, tuple[Reservation, ...]]:
    """What each deployment's contracts reserve now (see `reserves`), by deployment id."""
    found: defaultdict[str, list[Reservation]] = defaultdict(list)
    for c in await live(session):
        if reserves(c, now, lead):
            found[c.deployment_id].append(Reservation(c.id, c.replicas, frozenset(c.regions)))
    return {d: tuple(r) for d, r in found.items()}
