"""What each site agent last said its miners did, kept in memory: it is replaced every time
the orders change and read only to show operators, so a restart losing it costs nothing."""

from collections import Counter
from datetime import datetime

from fastapi import Request

from hashgrid.contracts.agent import MinerResults
from hashgrid.server.auth import per_state
from hashgrid.server.db.base import utcnow
from hashgrid.server.power.schemas import MinersOut


class MinerReports:
    def __init__(self) -> None:
        self._last: dict[str, tuple[datetime, MinerResults]] = {}

    def record(self, site_id: str, results: MinerResults) -> None:
        self._last[site_id] = (utcnow(), results)

    def summary(self, site_id: str) -> MinersOut | None:
        held = self._last.get(site_id)
        if held is None:
            return None
        at, report = held
        done = Counter(r.done for r in report.results)
        failed = [r for r in report.results if r.done is None]
        return MinersOut(
            reported_at=at,
            revision=report.revision,
            by_action={str(action): n for action, n in done.items() if action is not None},
            failed=len(failed),
            first_failure=f"{failed[0].address}: {failed[0].detail}" if failed else None,
        )


def miner_reports(request: Request) -> MinerReports:
    """This process's miner reports."""
    return per_state(request, "hashgrid_miner_reports", lambda _: MinerReports())
