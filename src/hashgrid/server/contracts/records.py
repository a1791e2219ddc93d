"""The pure billing core's values (`billing.contracts`) from the stored rows, and back: one
place that knows how a contract and a watched hour are kept."""

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.contracts import Hour, Terms
from hashgrid.server.contracts.tables import ComputeContract, ContractHour

NOWHERE = ""  # `ContractHour.missed`'s key for replicas placed nowhere (JSON keys are strings)


def terms_of(contract: ComputeContract) -> Terms:
    return Terms(
        contract.id,
        contract.model,
        contract.replicas,
        contract.price_pico,
        contract.starts_at,
        contract.ends_at,
        contract.sla_credit_percent,
        contract.cancelled_at,
    )


def hour_of_row(row: ContractHour) -> Hour:
    return Hour(
        row.hour,
        row.reserved,
        row.min_ready,
        row.samples,
        dict(row.hosted),
        {(node or None): n for node, n in row.missed.items()},
    )


def store(row: ContractHour, hour: Hour) -> None:
    """Write `hour` into `row` (JSON columns are replaced whole, so the change is seen)."""
    row.reserved = hour.reserved
    row.min_ready = hour.min_ready
    row.samples = hour.samples
    row.hosted = dict(hour.hosted)
    row.missed = {(node or NOWHERE): n for node, n in hour.missed.items()}


async def watched_hours(
    session: AsyncSession, contract_ids: Iterable[str], start: datetime, end: datetime
) -> dict[str, list[Hour]]:
    """The watched hours from `start` to `end` of each contract of `contract_ids`."""
    ids = list(contract_ids)
    found: dict[str, list[Hour]] = {i: [] for i in ids}
    if not ids:
        return found
    rows: Sequence[ContractHour] = (
        await session.scalars(
            select(ContractHour).where(
                ContractHour.contract_id.in_(ids),
                ContractHour.hour >= start,
                ContractHour.hour < end,
            )
        )
    ).all()
    for row in rows:
        found[row.contract_id].append(hour_of_row(row))
    return found
