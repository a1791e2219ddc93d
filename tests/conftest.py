"""Fixtures shared by every test directory."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from hashgrid.models.tiny import make_tiny_gguf

from support import postgres
from support.engines import kill_engines_under


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated tiny llama GGUF, made once per test session."""
    return make_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny_embedding_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GGUF as an embedding model: it pools token vectors by their mean."""
    path = tmp_path_factory.mktemp("models") / "tiny-embed.gguf"
    return make_tiny_gguf(path, embedding=True)


@pytest.fixture(params=postgres.BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: SQLite in a file, PostgreSQL as a new database."""
    with postgres.database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture(autouse=True)
def no_engine_left_behind(tmp_path: Path) -> Iterator[None]:
    """Engines outlive an agent that is killed (for the next one to adopt): whatever engines a
    test's agents left are killed when it ends."""
    yield
    kill_engines_under(tmp_path)
