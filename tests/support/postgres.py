"""Fresh PostgreSQL databases for tests, on the server the test machine runs."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

ADMIN_URL = os.environ.get(
    "HASHGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def execute(statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def fresh_database(prefix: str = "hg_test") -> Iterator[str]:
    """The name of a new, empty database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(database: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{database}"


BACKENDS = ("sqlite", "postgresql")


@contextmanager
def database_url(backend: str, folder: Path, prefix: str = "hg_test") -> Iterator[str]:
    """The URL of a fresh, empty database on `backend`: SQLite in a file under `folder`, or a new
    PostgreSQL database, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'hashgrid.db'}"
        return
    with fresh_database(prefix) as name:
        yield sqlalchemy_url(name)
