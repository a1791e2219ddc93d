"""Whose node earned a line's part: its operator, site and the operator's share, now (a draft)
or as stored with an issued invoice's line (so an issued period's statements never change)."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.billing.ledger import Owner
from hashgrid.billing.lines import Line, LineKind
from hashgrid.server.billing.tables import InvoiceLineRow
from hashgrid.server.nodes.tables import Node
from hashgrid.server.organizations.tables import Organization
from hashgrid.server.sites.tables import Site


async def owners_now(session: AsyncSession, lines: Iterable[Line]) -> dict[str, Owner]:
    """The owners of the nodes `lines` name, as they are now."""
    nodes = {node for line in lines for node, _ in line.sources if node is not None}
    if not nodes:
        return {}
    rows = await session.execute(
        select(Node.id, Site.operator_id, Site.name, Organization.operator_share_bps)
        .join(Site, Site.id == Node.site_id)
        .join(Organization, Organization.id == Site.operator_id)
        .where(Node.id.in_(nodes))
    )
    return {node: Owner(operator, site, share) for node, operator, site, share in rows}


def stored_sources(line: Line, owners: dict[str, Owner]) -> list[dict[str, Any]]:
    """A line's sources as an issued invoice keeps them: each node's part and its owner."""
    kept = []
    for node, pico in line.sources:
        owner = owners.get(node) if node is not None else None
        kept.append(
            {
                "node": node,
                "pico": pico,
                "operator": owner.operator if owner else None,
                "site": owner.site if owner else None,
                "share_bps": owner.share_bps if owner else None,
            }
        )
    return kept


def line_row(line: Line, position: int, owners: dict[str, Owner]) -> InvoiceLineRow:
    return InvoiceLineRow(
        position=position,
        kind=line.kind.value,
        description=line.description,
        model=line.model,
        tier=line.tier,
        ref=line.ref,
        quantity=line.quantity,
        unit=line.unit,
        unit_price_pico=line.unit_price_pico,
        amount_pico=line.amount_pico,
        cents=line.cents,
        sources=stored_sources(line, owners),
    )


def stored_line(row: InvoiceLineRow) -> Line:
    return Line(
        kind=LineKind(row.kind),
        description=row.description,
        quantity=row.quantity,
        unit=row.unit,
        unit_price_pico=row.unit_price_pico,
        amount_pico=row.amount_pico,
        model=row.model,
        tier=row.tier,
        ref=row.ref,
        sources=tuple((s["node"], int(s["pico"])) for s in row.sources),
    )


def owners_at_issue(rows: Iterable[InvoiceLineRow]) -> dict[str, Owner]:
    """The owners of the nodes of an issued invoice's lines, as they were when it was issued."""
    return {
        s["node"]: Owner(s["operator"], s["site"], int(s["share_bps"]))
        for row in rows
        for s in row.sources
        if s["node"] is not None and s["operator"] is not None
    }
