"""The agent keeps one tunnel per gateway the control plane lists (`agent/tunnel.py: Tunnels`),
and drops one only after its gateway has been missing from the list for a while."""

import asyncio

from hashgrid.agent.tunnel import Tunnels

# Nothing listens there: the clients dial and back off, which is all these tests need.
A, B = "ws://127.0.0.1:9/tunnel", "ws://127.0.0.1:10/tunnel"


async def test_a_tunnel_is_kept_per_listed_gateway_and_dropped_only_after_the_grace() -> None:
    now = [0.0]
    tunnels = Tunnels(asyncio.Event(), lambda: "c", dict, forget_after_s=60.0, clock=lambda: now[0])
    try:
        tunnels.follow([A, B])
        assert {c.url for c in tunnels.clients} == {A, B}
        tunnels.follow([A])  # a restarted control plane may not list B yet
        now[0] = 59.0
        tunnels.follow([A])
        assert {c.url for c in tunnels.clients} == {A, B}
        now[0] = 60.0
        tunnels.follow([A])
        assert [c.url for c in tunnels.clients] == [A]
    finally:
        await tunnels.close()


async def test_a_gateway_listed_again_within_the_grace_keeps_its_tunnel() -> None:
    now = [0.0]
    tunnels = Tunnels(asyncio.Event(), lambda: "c", dict, forget_after_s=60.0, clock=lambda: now[0])
    try:
        tunnels.follow([A])
        (client,) = tunnels.clients
        tunnels.follow([])
        now[0] = 30.0
        tunnels.follow([A])
        now[0] = 100.0
        tunnels.follow([A])
        assert tunnels.clients == [client]
    finally:
        await tunnels.close()
