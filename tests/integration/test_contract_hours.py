"""A compute contract's hours on each database: the real placement reconciler reserves its
replica, the real hour-accounting pass samples it on a controlled clock, its node is lost (the
liveness path) and the replica replaced; `contract_lines` then bills every reserved hour and
credits the missed one to the node that lost it, on the customer's draft invoice and, in the
ledger, to that node's operator."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hashgrid.billing.contracts import HOUR, hour_of
from hashgrid.billing.ledger import Owner, split
from hashgrid.billing.lines import LineKind
from hashgrid.billing.money import PICO_PER_USD
from hashgrid.billing.periods import Period
from hashgrid.contracts.api.compute_contracts import ContractCreate
from hashgrid.contracts.states import ContractStatus, NodeAdmission, NodeStatus, ReplicaStatus
from hashgrid.server.billing.service import draft, issue, recompute
from hashgrid.server.billing.statements import ledger_of
from hashgrid.server.catalog.tables import CatalogModel
from hashgrid.server.changes import Changes
from hashgrid.server.contracts import service
from hashgrid.server.contracts.hours import ContractHours
from hashgrid.server.contracts.invoicing import contract_lines
from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine, make_sessionmaker
from hashgrid.server.db.migrate import upgrade
from hashgrid.server.deployments.tables import Deployment, Replica
from hashgrid.server.feed.service import view
from hashgrid.server.nodes.service import set_status
from hashgrid.server.nodes.tables import Node
from hashgrid.server.organizations import service as organizations
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.reconcile.placement import PlacementReconciler
from hashgrid.server.sites.tables import Site

PRICE = Decimal("2.50")  # per replica-hour
P = 25 * PICO_PER_USD // 10


@dataclass
class Fleet:
    sessions: async_sessionmaker[AsyncSession]
    changes: Changes
    customer: str  # acme's id
    start: datetime  # a contract's first hour: two hours ago or more, its next in one month

    async def place(self) -> None:
        await PlacementReconciler(self.sessions, self.changes, retry_after_s=30).reconcile()

    async def reserved(self) -> list[Replica]:
        async with self.sessions() as s:
            query = select(Replica).where(Replica.contract_id.is_not(None)).order_by(Replica.id)
            return list((await s.scalars(query)).all())

    async def ready(self, replica_id: str) -> None:
        async with self.sessions() as s:
            replica = await s.get(Replica, replica_id)
            assert replica is not None
            replica.status, replica.endpoint = ReplicaStatus.READY, "http://127.0.0.1:1"
            await s.commit()

    async def lose(self, node_id: str) -> None:
        async with self.sessions() as s:
            node = await s.get(Node, node_id)
            assert node is not None
            assert await set_status(s, node, NodeStatus.LOST)


@pytest.fixture
async def fleet(database_url: str) -> AsyncIterator[Fleet]:
    """Two CPU nodes at one site, customer acme, a deployment of nothing on demand."""
    engine = make_engine(database_url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    start = hour_of(utcnow()) - 2 * HOUR
    if Period.of(start) != Period.of(start + 2 * HOUR):  # the term and its end in one month
        start -= 3 * HOUR
    async with sessions() as s:
        operator = Organization(name="op", kind="operator")
        acme = Organization(name="acme", kind="customer")
        s.add_all([operator, acme])
        await s.flush()
        site = Site(name="tx", operator_id=operator.id, region="us", country="US", power_mw=1.0)
        s.add(site)
        await s.flush()
        for name in ("n1", "n2"):
            s.add(
                Node(
                    name=name,
                    site_id=site.id,
                    credential_hash=f"hash-{name}",
                    fingerprint={},
                    capacity_bytes=8 * 2**30,
                    admission=NodeAdmission.ADMITTED,
                )
            )
        model = CatalogModel(
            name="tiny", source="/models/tiny.gguf", format="gguf", engine="llamacpp",
            size_bytes=2**20, context_length=512,
        )  # fmt: skip
        s.add(model)
        await s.flush()
        s.add(
            Deployment(
                name="tiny",
                model_id=model.id,
                replicas=0,
                min_replicas=0,
                max_replicas=0,
                regions=[],
                tier="flex",
            )
        )
        await s.commit()
        customer = acme.id
    try:
        yield Fleet(sessions, Changes(), customer, start)
    finally:
        await engine.dispose()


async def test_a_missed_hour_is_credited_to_the_node_that_lost_its_replica(fleet: Fleet) -> None:
    start = fleet.start
    async with fleet.sessions() as s:
        body = ContractCreate(
            customer="acme", model="tiny", replicas=1, price_per_replica_hour=PRICE,
            starts_at=start, ends_at=start + 2 * HOUR,
        )  # fmt: skip
        contract = await service.create(s, body, now=start)
        assert contract.status == ContractStatus.ACTIVE
        contract_id = contract.id
    clock = [start]
    hours = ContractHours(fleet.sessions, fleet.changes, timedelta(0), clock=lambda: clock[0])

    async def sample(at_minute: int) -> None:
        clock[0] = start + timedelta(minutes=at_minute)
        await hours.reconcile()

    # Placement reserves a replica for the contract (the deployment wants none on demand).
    await fleet.place()
    [first] = await fleet.reserved()
    assert first.contract_id == contract_id
    lost_node = first.node_id
    await fleet.ready(first.id)
    await sample(10)  # ready on its node

    # The gateways' view names acme as the replica's holder.
    async with fleet.sessions() as s:
        routed = {m.name: m for m in (await view(s, 1)).models}["tiny"]
    assert [(r.replica_id, r.holder) for r in routed.replicas] == [(first.id, fleet.customer)]

    await fleet.lose(lost_node)
    await sample(20)  # its node lost it: missing, the node's fault
    await fleet.place()
    second = next(r for r in await fleet.reserved() if r.id != first.id)
    assert second.node_id != lost_node
    await sample(30)  # its replacement starting
    await fleet.ready(second.id)
    await sample(40)
    await sample(70)  # the second hour: ready throughout
    await sample(121)  # the term is over
    async with fleet.sessions() as s:
        ended = await service.get(s, contract_id)
        assert ended.status == ContractStatus.ENDED

        contract_line, credit = await contract_lines(s, fleet.customer, Period.of(start))
        assert (contract_line.kind, contract_line.quantity, contract_line.cents) == (
            LineKind.CONTRACT, 2, 500,
        )  # fmt: skip
        # Hour 1: 4 samples, the lost node and the replacement ready in one each; hour 2: the
        # replacement throughout. Nobody hosted the rest.
        assert contract_line.sources == (
            *sorted([(lost_node, P // 4), (second.node_id, P // 4 + P)]),
            (None, P // 2),
        )
        assert (credit.kind, credit.quantity, credit.cents) == (LineKind.CREDIT, 1, -250)
        assert credit.sources == ((lost_node, -P),)
        assert (credit.ref, credit.model) == (contract_id, "tiny")

        # The customer's draft invoice holds them, and the ledger charges the credit to the
        # operator of the node that lost the replica.
        acme = await organizations.get(s, "acme")
        drafted = await draft(s, (contract_lines,), acme, Period.of(start))
        assert [x for x in drafted.lines if x.ref == contract_id] == [contract_line, credit]
        owners = {n: Owner("op", "tx") for n in (lost_node, second.node_id)}
        assert split([(drafted.lines, owners)]).operators["op"].credits == 250

        # The customer's view of the month counts the same hours.
        shown = await service.detail(s, ended, now=start + 2 * HOUR)
        period = shown.this_period
        assert (period.replica_hours, period.replica_hours_missed) == (2, 1)
        assert (period.amount_usd, period.credit_usd) == (Decimal("5.00"), Decimal("-2.50"))

        # Issued once the month is over: the same lines, equal to their recomputation, and the
        # month's ledger balances with the credit charged to the operator.
        month = Period.of(start)
        invoice = await issue(s, (contract_lines,), "acme", month, month.end + HOUR)
        assert (invoice.subtotal_cents, invoice.credits_cents, invoice.total_cents) == (
            500, 250, 250,
        )  # fmt: skip
        again = await recompute(s, invoice)
        assert (again.difference_cents, again.recomputed_total_usd) == (0, Decimal("2.50"))
        books = await ledger_of(s, month)
        assert (books.gross_usd, books.credits_usd, books.difference_usd) == (
            Decimal("5.00"), Decimal("2.50"), 0,
        )  # fmt: skip
        # The operator earns 70% of the $3.75 of hours its nodes hosted ($2.62) and bears the
        # whole credit ($2.50); the platform keeps the rest, with the $1.25 no node hosted.
        assert (books.earnings_usd, books.platform_share_usd) == (Decimal("0.12"), Decimal("2.38"))


async def test_placement_keeps_reserved_replicas_for_an_active_contract_only(
    fleet: Fleet,
) -> None:
    """Cancelled, the contract's replica is on demand again: the deployment wants none, so it
    goes; and the view names no holder meanwhile."""
    async with fleet.sessions() as s:
        body = ContractCreate(
            customer="acme", model="tiny", replicas=2, price_per_replica_hour=PRICE,
            starts_at=fleet.start, ends_at=fleet.start + 100 * HOUR,
        )  # fmt: skip
        contract = await service.create(s, body, now=fleet.start)
    await fleet.place()
    reserved = await fleet.reserved()
    assert len({r.node_id for r in reserved}) == 2  # spread over the nodes
    async with fleet.sessions() as s:
        await service.cancel(s, contract.id, utcnow())
    await fleet.place()
    async with fleet.sessions() as s:
        statuses = {
            r.status
            for r in await s.scalars(select(Replica).where(Replica.contract_id.is_not(None)))
        }
    assert statuses == {ReplicaStatus.STOPPED}  # removed before any agent acted
