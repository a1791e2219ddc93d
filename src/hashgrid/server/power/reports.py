"""What each site agent last said its miners did: one stored row per site, replaced by every
report, shown to operators with the site's power. GPU nodes' BMCs are ordered only while a node
goes to standby or wakes, so for them the row keeps each node's last result, whichever report
brought it: a refused power-off stays in view after the node is back in use."""

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession

from hashgrid.contracts.agent import MinerResults
from hashgrid.contracts.api.power import MinersOut
from hashgrid.server.db.base import utcnow
from hashgrid.server.power.tables import MinerReport


async def record(session: AsyncSession, site_id: str, report: MinerResults) -> None:
    done = Counter(r.done for r in report.results)
    failed = [r for r in report.results if r.done is None]
    row = await session.get(MinerReport, site_id)
    if row is None:
        row = MinerReport(site_id=site_id)
        session.add(row)
    row.reported_at = utcnow()
    row.revision = report.revision
    row.by_action = {str(action): n for action, n in done.items() if action is not None}
    row.failed = len(failed)
    row.first_failure = f"{failed[0].address}: {failed[0].detail}" if failed else None
    row.nodes = {
        **(row.nodes or {}),
        **{
            n.node: f"failed: {n.detail}" if n.on is None else ("on" if n.on else "off")
            for n in report.nodes
        },
    } or None
    await session.commit()


async def summary(session: AsyncSession, site_id: str) -> MinersOut | None:
    row = await session.get(MinerReport, site_id)
    return None if row is None else MinersOut.model_validate(row)
