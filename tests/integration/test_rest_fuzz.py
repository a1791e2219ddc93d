"""schemathesis against the live control plane on SQLite and PostgreSQL: every generated
request, valid or not, is answered as the OpenAPI document says, and never with a 5xx; sent as
the admin, and as the admin of a customer and of an operator that signed up, whose answers hold
no id of what another organization owns."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fuzz import CALLERS, LONG_POLL_MAX_S, Caller, fuzz
from support.live import LiveServer, server_settings

# Per operation and generation mode (tests/support/fuzz.py): about 1,150 cases per database as
# the admin; about 250 as a tenant (valid cases of the operations its role may call).
EXAMPLES: dict[Caller, int] = {"admin": 10, "customer": 10, "operator": 10}


@pytest.fixture
def fuzzed_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = server_settings(tmp_path / "home", database_url, long_poll_max_s=LONG_POLL_MAX_S)
    with LiveServer(settings) as live:
        yield live


@pytest.mark.parametrize("caller", CALLERS)
def test_rest_api_answers_every_generated_request_as_documented(
    fuzzed_server: LiveServer, caller: Caller
) -> None:
    """No 5xx; each status, content type and body as the OpenAPI document says; as a tenant,
    nothing of another organization's."""
    report = fuzz(fuzzed_server, EXAMPLES[caller], caller=caller)
    assert report.cases > 0
    assert not report.server_errors, report.failures()
    assert not report.leaks, report.failures()
    assert not report.violations, report.failures()
