"""A live control plane on each database backend."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.live import LiveServer, server_settings


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(server_settings(tmp_path / "home", database_url)) as live:
        yield live
