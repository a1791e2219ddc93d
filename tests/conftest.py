"""Fixtures shared by every test directory."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from hashgrid.models.tiny import make_tiny_gguf

POSTGRES_ADMIN_URL = os.environ.get(
    "HASHGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated tiny llama GGUF, made once per test session."""
    return make_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


async def _postgres(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: SQLite in a file, PostgreSQL as a new database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hashgrid.db'}"
        return
    name = f"hg_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
