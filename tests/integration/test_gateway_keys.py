"""A key works at the gateway from the moment the control plane has it. The gateway's view
follows the control plane a few milliseconds behind, so a key the view lacks is looked at again
when the next view arrives (the control plane answers the gateway's long poll at once when a
key is added); a key still unknown then is refused."""

import asyncio

import aiohttp
import pytest

from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.gateway.auth import authenticate, authenticate_current
from hashgrid.gateway.errors import InvalidKey
from hashgrid.gateway.view import ViewWatcher

from support.live import LiveServer


async def test_a_key_used_the_moment_it_is_created_is_accepted(server: LiveServer) -> None:
    with server.client() as admin:
        admin.create_organization(OrganizationCreate(name="acme", kind="customer"))
        token = admin.create_token(TokenCreate(name="gw", role="gateway")).token
        async with aiohttp.ClientSession() as session:
            watcher = ViewWatcher(session, server.url, token)
            await watcher.fetch(0.0)  # the view before the key
            created = admin.create_key(KeyCreate(customer="acme"))
            key = created.key
            with pytest.raises(InvalidKey):
                authenticate(f"Bearer {key}", watcher.view)  # the view is behind

            poll = asyncio.create_task(watcher.fetch(5.0))  # the gateway's long poll
            entry = await authenticate_current(f"Bearer {key}", watcher)
            await poll
            assert entry.key_id == created.id

            with pytest.raises(InvalidKey):  # a wrong key is refused once the wait is over
                await authenticate_current("Bearer sk-hg-not-a-key", watcher, wait_s=0.2)
            with pytest.raises(InvalidKey):  # no key: nothing to wait for
                await authenticate_current(None, watcher, wait_s=30.0)
