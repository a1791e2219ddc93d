"""`hashgrid contracts` as the platform admin runs it: a real subprocess against a live control
plane."""

import pytest

from support.cli import failed, ok, ok_json, server_env
from support.live import LiveServer

sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite
def test_contracts_create_list_show_and_cancel(server: LiveServer) -> None:
    """A contract from next hour for a day; prices are decimals as typed; bad terms are one
    readable line each; its deployment stays, callable by its holder, while it is live; a
    cancelled one cannot be cancelled again."""
    env = server_env(server)
    ok("orgs", "create", "acme", "--kind", "customer", env=env)
    ok("models", "add", "llama", "--source", "https://h/m.gguf", "--size", "1000", env=env)
    ok("deploy", "llama", "--replicas", "0", env=env)

    made = ok_json(
        "contracts", "create", "acme", "llama", "--replicas", "2", "--price", "2.75",
        "--hours", "24", "--sla-credit", "50", env=env,
    )  # fmt: skip
    assert (made["customer"], made["model"], made["replicas"]) == ("acme", "llama", 2)
    assert (made["price_per_replica_hour"], made["sla_credit_percent"]) == ("2.75", 50)
    assert made["status"] == "pending"

    [listed] = ok_json("contracts", "list", env=env)
    assert listed["id"] == made["id"]
    assert made["id"] in ok("contracts", "list", env=env)

    shown = ok_json("contracts", "show", made["id"], env=env)
    assert (shown["replicas_ready"], shown["this_period"]["replica_hours"]) == (0, 0)
    assert "ready now: 0 of 2" in ok("contracts", "show", made["id"], env=env)

    too_fine = failed(
        "contracts", "create", "acme", "llama", "--replicas", "1", "--price", "0.0000001",
        "--hours", "1", env=env,
    )  # fmt: skip
    assert "price_per_replica_hour" in too_fine.stderr, too_fine.stderr
    mid_hour = failed(
        "contracts", "create", "acme", "llama", "--replicas", "1", "--price", "1",
        "--start", "2099-01-01T00:30:00Z", "--hours", "1", env=env,
    )  # fmt: skip
    assert "whole hour" in mid_hour.stderr, mid_hour.stderr
    elsewhere = failed(
        "contracts", "create", "acme", "nothing", "--replicas", "1", "--price", "1",
        "--hours", "1", env=env,
    )  # fmt: skip
    assert "404" in elsewhere.stderr, elsewhere.stderr

    held = failed("deployments", "delete", "llama", env=env)
    assert "cancel it first" in held.stderr, held.stderr
    ok("orgs", "create", "globex", "--kind", "customer", env=env)
    taken = failed("deployments", "update", "llama", "--customer", "globex", env=env)
    assert "cancel it first" in taken.stderr, taken.stderr
    assert "cancelled" in ok("contracts", "cancel", made["id"], env=env)
    again = failed("contracts", "cancel", made["id"], env=env)
    assert "409" in again.stderr, again.stderr
    # A deployment with no live contract left may go.
    ok("deployments", "delete", "llama", env=env)
