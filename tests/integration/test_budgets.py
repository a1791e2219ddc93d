"""Budgets as the control plane keeps them: integer micro-dollars, shown as decimal USD, with
the float budgets older servers stored converted exactly (on SQLite and PostgreSQL)."""

import asyncio
from decimal import Decimal
from pathlib import Path

from alembic import command
from sqlalchemy import text

from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine
from hashgrid.server.db.migrate import alembic_config

from support.live import LiveServer, server_settings


def test_float_budgets_stored_before_become_exact_micro_dollars(
    database_url: str, tmp_path: Path
) -> None:
    """Migration 0026 turns each float budget into micro-dollars: the float's shortest decimal
    rounded half-even (12.3456785 is 12.345678), never the float's binary error (0.1 is
    exactly $0.10); no budget stays none."""
    orgs = {"tenth": 0.1, "odd": 12.3456785, "none": None}

    async def store_before_0026() -> None:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0023"))
                await conn.execute(
                    text(
                        "INSERT INTO organizations (id, name, kind, created_at,"
                        " monthly_budget_usd) VALUES (:name, :name, 'customer', :at, :budget)"
                    ),
                    [{"name": n, "budget": b, "at": utcnow()} for n, b in orgs.items()],
                )
                await conn.execute(
                    text(
                        "INSERT INTO api_keys (id, customer_id, name, key_hash, prefix,"
                        " created_at, monthly_budget_usd) VALUES ('k1', 'tenth', 'k', 'h',"
                        " 'sk-hg-1', :at, 50.0)"
                    ),
                    {"at": utcnow()},
                )
        finally:
            await engine.dispose()

    asyncio.run(store_before_0026())
    settings = server_settings(tmp_path / "home", database_url)
    with LiveServer(settings) as live, live.client() as admin:
        budgets = {o.name: o.limits.monthly_budget_usd for o in admin.list_organizations()}
        (key,) = admin.list_keys()
    assert {n: budgets[n] for n in orgs} == {
        "tenth": Decimal("0.1"),
        "odd": Decimal("12.345678"),
        "none": None,
    }
    assert key.limits.monthly_budget_usd == Decimal(50)
