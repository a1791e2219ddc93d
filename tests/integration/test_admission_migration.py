"""Migration 0027 admits the nodes an older server had verified without a problem, and leaves
every other node pending, so its agent is asked to benchmark again (on SQLite and PostgreSQL)."""

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from hashgrid.agent.fingerprint import collect
from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine
from hashgrid.server.db.migrate import alembic_config

from support.admission import report_for
from support.live import LiveServer, server_settings

FINGERPRINT = collect().model_dump(mode="json")
PASSED = {
    **report_for(FINGERPRINT),
    "error": None,
    "capacity_class": "cpu",
    "problems": [],
    "verified_at": "2026-01-01T00:00:00Z",
}
VERIFICATIONS: dict[str, dict[str, Any] | None] = {
    "passed": PASSED,
    "flagged": {**PASSED, "problems": ["reports 0 CPUs"]},
    "failed": {**PASSED, "benchmark": None, "error": "llama.cpp could not load the model"},
    "never": None,
}

_orgs = sa.table(
    "organizations",
    sa.column("id"),
    sa.column("name"),
    sa.column("kind"),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_sites = sa.table(
    "sites",
    sa.column("id"),
    sa.column("name"),
    sa.column("operator_id"),
    sa.column("region"),
    sa.column("country"),
    sa.column("power_mw", sa.Float),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_nodes = sa.table(
    "nodes",
    sa.column("id"),
    sa.column("name"),
    sa.column("site_id"),
    sa.column("status"),
    sa.column("credential_hash"),
    sa.column("fingerprint", sa.JSON),
    sa.column("capacity_bytes", sa.BigInteger),
    sa.column("joined_at", sa.DateTime(timezone=True)),
    sa.column("status_changed_at", sa.DateTime(timezone=True)),
    sa.column("last_seen_at", sa.DateTime(timezone=True)),
    sa.column("verification", sa.JSON),
)


def test_nodes_verified_without_a_problem_are_admitted_and_the_rest_pending(
    database_url: str, tmp_path: Path
) -> None:
    async def store_before_0027() -> None:
        engine = make_engine(database_url)
        now = utcnow()
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0026"))
                await conn.execute(
                    _orgs.insert().values(id="op", name="op", kind="operator", created_at=now)
                )
                await conn.execute(
                    _sites.insert().values(
                        id="s",
                        name="tx",
                        operator_id="op",
                        region="us",
                        country="US",
                        power_mw=1.0,
                        created_at=now,
                    )
                )
                for name, verification in VERIFICATIONS.items():
                    await conn.execute(
                        _nodes.insert().values(
                            id=name,
                            name=name,
                            site_id="s",
                            status="ready",
                            credential_hash=f"hash-{name}",
                            fingerprint=FINGERPRINT,
                            capacity_bytes=2**30,
                            joined_at=now,
                            status_changed_at=now,
                            last_seen_at=now,
                            verification=verification,
                        )
                    )
        finally:
            await engine.dispose()

    asyncio.run(store_before_0027())
    settings = server_settings(tmp_path / "home", database_url)
    with LiveServer(settings) as live, live.client() as admin:
        nodes = {n.name: n for n in admin.list_nodes()}
    assert {name: n.admission for name, n in nodes.items()} == {
        "passed": "admitted",
        "flagged": "pending",
        "failed": "pending",
        "never": "pending",
    }
    assert nodes["never"].admission_reason == (
        "awaiting a verification: none passed before admission existed"
    )
