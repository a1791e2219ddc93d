"""Node liveness with a fake clock, and the change counter long polls wait on."""

import asyncio

from hashgrid.server.changes import Changes
from hashgrid.server.nodes.liveness import Liveness


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_node_never_seen_starts_its_ttl_now() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    assert live.expired(["n1"]) == []
    clock.now += 10
    assert live.expired(["n1"]) == []  # exactly at the TTL is still alive
    clock.now += 0.5
    live.heard()
    assert live.expired(["n1"]) == ["n1"]


def test_a_node_first_seen_late_is_not_expired_for_the_servers_absence() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    assert live.expired(["old"]) == []
    clock.now += 1000
    live.heard()
    assert live.expired(["old", "new"]) == ["old"]


def test_beats_keep_a_node_alive() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    live.beat("n1")
    for _ in range(20):
        clock.now += 9
        assert live.expired(["n1"]) == []
        live.beat("n1")


def test_node_expires_after_the_ttl_since_its_last_beat() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    live.beat("n1")
    live.beat("n2")
    clock.now += 6
    live.beat("n2")
    clock.now += 6
    assert live.expired(["n1", "n2"]) == []  # nothing heard since n1's deadline passed
    live.heard()
    assert live.expired(["n1", "n2"]) == ["n1"]


def test_expired_reports_only_the_nodes_asked_about() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=1, clock=clock)
    live.beat("a")
    live.beat("b")
    clock.now += 5
    live.heard()  # other traffic: the server is not the one cut off
    assert live.expired(["b"]) == ["b"]
    assert live.expired([]) == []


def test_a_beat_after_expiry_revives_the_node() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    live.beat("n1")
    clock.now += 11
    live.heard()
    assert live.expired(["n1"]) == ["n1"]
    live.beat("n1")
    assert live.expired(["n1"]) == []


# --- Changes -------------------------------------------------------------------------------


async def test_bump_makes_the_revision_grow() -> None:
    changes = Changes()
    seen = [changes.revision]
    for _ in range(3):
        seen.append(await changes.bump())
        assert changes.revision == seen[-1]
    assert seen == sorted(set(seen))


def test_revision_starts_from_the_clock_so_a_restart_does_not_go_back() -> None:
    first = Changes().revision
    assert first > 1_600_000_000_000  # milliseconds since the epoch, after 2020
    assert Changes().revision >= first


async def test_wait_newer_returns_at_once_when_already_newer() -> None:
    changes = Changes()
    old = changes.revision
    await changes.bump()
    # A long wait would make the test hang past its timeout if it did not return at once.
    got = await asyncio.wait_for(changes.wait_newer(old, within_s=60), timeout=5)
    assert got == old + 1


async def test_wait_newer_returns_the_current_revision_when_nothing_changed() -> None:
    changes = Changes()
    current = changes.revision
    assert await changes.wait_newer(current, within_s=0.05) == current


async def test_wait_newer_wakes_when_another_task_bumps() -> None:
    changes = Changes()
    current = changes.revision
    waiter = asyncio.create_task(changes.wait_newer(current, within_s=60))
    await asyncio.sleep(0)  # let the waiter start waiting
    assert not waiter.done()
    bumped = await changes.bump()
    assert await asyncio.wait_for(waiter, timeout=5) == bumped


async def test_bump_wakes_every_waiter() -> None:
    changes = Changes()
    current = changes.revision
    waiters = [asyncio.create_task(changes.wait_newer(current, within_s=60)) for _ in range(3)]
    await asyncio.sleep(0)
    bumped = await changes.bump()
    assert await asyncio.wait_for(asyncio.gather(*waiters), timeout=5) == [bumped] * 3


async def test_a_waiter_with_a_newer_revision_keeps_waiting_past_a_bump() -> None:
    changes = Changes()
    first = await changes.bump()
    waiter = asyncio.create_task(changes.wait_newer(first + 1, within_s=60))
    await asyncio.sleep(0)
    await changes.bump()  # reaches first + 1: not newer than what the waiter holds
    await asyncio.sleep(0.01)
    assert not waiter.done()
    last = await changes.bump()
    assert await asyncio.wait_for(waiter, timeout=5) == last


def test_no_node_expires_while_the_server_hears_nothing() -> None:
    """Silence from everyone (the server shutting down or cut off) marks no node lost; a node
    is lost only once the server heard something after that node's deadline."""
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    live.beat("n1")
    live.beat("n2")
    clock.now += 11
    assert live.expired(["n1", "n2"]) == []
    live.beat("n2")  # the server hears again: n1's silence is now evidence
    assert live.expired(["n1", "n2"]) == ["n1"]


def test_any_request_counts_as_hearing() -> None:
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    live.beat("n1")
    clock.now += 11
    live.heard()
    assert live.expired(["n1"]) == ["n1"]


def test_a_request_heard_before_the_deadline_is_no_evidence() -> None:
    """A long poll that arrived just before shutdown must not let the server judge nodes."""
    clock = FakeClock()
    live = Liveness(ttl_s=10, clock=clock)
    live.beat("n1")
    clock.now += 9.9
    live.heard()
    clock.now += 100
    assert live.expired(["n1"]) == []
