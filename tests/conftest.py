"""Fixtures shared by every test directory."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hashgrid.models.tiny import make_tiny_gguf

from support import postgres
from support.engines import kill_engines_under

# The suite runs llama.cpp as llama-cpp-python's server, which the project installs, on every
# machine: agents never pick up a llama-server that happens to be on PATH. Tests of llama-server
# name the binary found here (HASHGRID_LLAMA_SERVER, else on PATH) and skip where there is none.
# (Set before any test imports the agent, which reads it when its engines module loads.)
LLAMA_SERVER = os.environ.get("HASHGRID_LLAMA_SERVER") or shutil.which("llama-server")
os.environ["HASHGRID_LLAMA_SERVER"] = ""


@pytest.fixture
def llama_server() -> str:
    """The llama-server binary on this machine; the test is skipped where there is none."""
    if not LLAMA_SERVER:
        pytest.skip("llama-server is not installed (set HASHGRID_LLAMA_SERVER or put it on PATH)")
    return LLAMA_SERVER


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
