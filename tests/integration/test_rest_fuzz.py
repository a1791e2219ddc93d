"""schemathesis against the live control plane on SQLite and PostgreSQL: every generated
request, valid or not, is answered as the OpenAPI document says, and never with a 5xx."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fuzz import LONG_POLL_MAX_S, fuzz
from support.live import LiveServer, server_settings

# Per operation and generation mode (tests/support/fuzz.py): about 1,150 cases per database.
EXAMPLES = 10


@pytest.fixture
def fuzzed_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = server_settings(tmp_path / "home", database_url, long_poll_max_s=LONG_POLL_MAX_S)
    with LiveServer(settings) as live:
        yield live


def test_rest_api_answers_every_generated_request_as_documented(
    fuzzed_server: LiveServer,
) -> None:
    """No 5xx; each status, content type and body as the OpenAPI document says."""
    report = fuzz(fuzzed_server, EXAMPLES)
    assert report.cases > 0
    assert not report.server_errors, report.failures()
    assert not report.violations, report.failures()
